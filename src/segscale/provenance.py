"""What produced an output: software versions, hardware, host, time, code revision.

Every manifest the package writes embeds :func:`describe_environment`, so any number in a
figure can be traced back to the machine and library versions that made it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path

DEFAULT_PACKAGES = (
    "segscale", "numpy", "scipy", "nibabel", "SimpleITK", "pandas",
    "tensorflow", "tensorflow-cpu", "horovod", "snakemake",
)


def package_versions(names: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Installed distribution versions; packages that are absent are left out."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, falling back to :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_models() -> list[str]:
    """GPU names reported by ``nvidia-smi``; empty on machines without NVIDIA GPUs."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def git_revision(start: Path | None = None) -> str | None:
    """The commit of the checkout the package runs from (with ``-dirty``), if it is one."""
    start = start or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                             cwd=start, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def slurm_context() -> dict[str, str]:
    """The Slurm job variables that identify where a step ran (empty outside Slurm)."""
    keys = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NTASKS", "SLURM_JOB_PARTITION",
            "SLURM_CLUSTER_NAME", "SLURM_JOB_ACCOUNT")
    return {k: os.environ[k] for k in keys if k in os.environ}


def describe_environment(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> dict:
    """Everything about the software and hardware an output depended on."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_models(),
        "packages": package_versions(packages),
        "git": git_revision(),
        "slurm": slurm_context(),
    }
