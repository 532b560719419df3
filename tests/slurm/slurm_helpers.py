"""Helpers for the local-Slurm tests: bounded subprocess calls and job polling."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SLURM_UP = REPO / "scripts" / "slurm-up.sh"
SLURM_DOWN = REPO / "scripts" / "slurm-down.sh"
SACCT_RUNS = REPO / "scripts" / "sacct-runs.sh"
SLURM_DIR = Path(os.environ.get("SEGSCALE_SLURM_DIR", "/tmp/segscale-slurm"))

# States after which a job never changes again (sacct spelling; CANCELLED may carry "by <uid>").
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                "PREEMPTED", "BOOT_FAIL", "DEADLINE")
# Binaries slurm-up.sh would have to apt-get install when absent.
REQUIRED_BINARIES = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct")


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]
    started_here: bool


def run(cmd: list[str], env: dict[str, str], timeout: float = 60,
        check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout; on failure include its output in the assertion."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, (f"{cmd} -> rc {proc.returncode}\n"
                                      f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def missing_binaries() -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [b for b in REQUIRED_BINARIES if shutil.which(b, path=path) is None]


def slurmctld_running() -> bool:
    """True if slurm-up.sh's recorded slurmctld is alive (same check as the scripts)."""
    pidfile = SLURM_DIR / "run" / "slurmctld.pid"
    try:
        pid = int(pidfile.read_text().strip())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    except (OSError, ValueError):
        return False


def parse_exports(text: str) -> dict[str, str]:
    """`export K=V` lines (as printed by slurm-up.sh --env) -> {K: V}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            out[key.strip()] = value.strip().strip("'\"")
    return out


def sbatch(env: dict[str, str], *args: str, cwd: Path) -> int:
    proc = run(["sbatch", "--parsable", *args], env, timeout=30, cwd=cwd)
    return int(proc.stdout.strip().split(";")[0])


def wait_job(env: dict[str, str], job_id: int, timeout: float = 120) -> str:
    """Poll sacct until the job reaches a final state; return it.

    slurmctld forwards job records to slurmdbd asynchronously, so sacct can lag squeue by a
    second or two; polling sacct itself avoids that race.
    """
    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        proc = run(["sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "State"], env,
                   timeout=20, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            state = proc.stdout.split()[0]
            if state.startswith(FINAL_STATES):
                return state
        time.sleep(1)
    squeue = run(["squeue", "-j", str(job_id)], env, timeout=20, check=False).stdout
    raise AssertionError(f"job {job_id} not finished after {timeout}s (last state {state})\n"
                         f"{squeue}")


def sacct_steps(env: dict[str, str], job_id: int) -> list[list[str]]:
    proc = run(["sacct", "-j", str(job_id), "--parsable2", "--noheader",
                "-o", "JobID,State,NTasks"], env, timeout=20)
    return [line.split("|") for line in proc.stdout.splitlines() if line]
