"""Helpers for the local-Slurm tests: bounded subprocess calls and job polling."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SLURM_UP = REPO / "scripts" / "local-cluster" / "slurm-up.sh"
SLURM_DOWN = REPO / "scripts" / "local-cluster" / "slurm-down.sh"
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


@dataclass(frozen=True)
class SlurmJob:
    """One job as sacct records it: the allocation line plus its steps' task counts."""

    job_id: int
    name: str
    state: str
    nodes: int
    alloc_tres: dict[str, str]
    workdir: str
    comment: str
    step_tasks: dict[str, int]

    @property
    def rule(self) -> str:
        """The Snakemake rule from the executor's --comment rule_<rule>[_wildcards_<values>]."""
        match = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", self.comment)
        return match[1] if match else ""

    @property
    def ntasks(self) -> int:
        """Most tasks of any real step (the batch and extern steps always show 1)."""
        return max((n for step, n in self.step_tasks.items()
                    if not step.endswith((".batch", ".extern"))), default=0)

    def gpus(self) -> int:
        return int(self.alloc_tres.get("gres/gpu", 0))


SACCT_FIELDS = "JobID,JobName,State,NNodes,NTasks,AllocTRES,WorkDir,Comment"


def parse_sacct(text: str) -> dict[int, SlurmJob]:
    """`sacct --parsable2 --noheader -o SACCT_FIELDS` -> {job id: SlurmJob}."""
    alloc: dict[int, list[str]] = {}
    steps: dict[int, dict[str, int]] = {}
    for line in text.splitlines():
        if not line:
            continue
        # Comment is last: a '|' inside it must not shift the other columns.
        fields = line.split("|", len(SACCT_FIELDS.split(",")) - 1)
        job_id, _, step = fields[0].partition(".")
        if not step:
            alloc[int(job_id)] = fields
        elif fields[4]:
            steps.setdefault(int(job_id), {})[fields[0]] = int(fields[4])
    return {
        job_id: SlurmJob(
            job_id=job_id, name=f[1], state=f[2].split()[0] if f[2] else "", nodes=int(f[3] or 0),
            alloc_tres=dict(kv.split("=", 1) for kv in f[5].split(",") if "=" in kv),
            workdir=f[6], comment=f[7], step_tasks=steps.get(job_id, {}))
        for job_id, f in alloc.items()
    }


def sacct_jobs(env: dict[str, str], job_ids: list[int]) -> dict[int, SlurmJob]:
    """The jobs with these ids (`sacct -j`: no time window, so no lag behind slurmctld)."""
    proc = run(["sacct", "-j", ",".join(map(str, job_ids)), "--parsable2", "--noheader",
                "-o", SACCT_FIELDS], env, timeout=30)
    return parse_sacct(proc.stdout)


def workdir_jobs(env: dict[str, str], workdir: Path, since: float,
                 expect: set[int] = frozenset(), timeout: float = 30) -> dict[int, SlurmJob]:
    """Every job submitted from ``workdir`` (sbatch -D) since the epoch time ``since``.

    A time-window sacct query lags `sacct -j` by a second or two for just-finished jobs, so it
    is retried until the ``expect``ed ids are all there.
    """
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since))
    deadline = time.monotonic() + timeout
    while True:
        proc = run(["sacct", "--allusers", "--parsable2", "--noheader", "-S", start,
                    "-o", SACCT_FIELDS], env, timeout=30)
        jobs = {i: j for i, j in parse_sacct(proc.stdout).items() if j.workdir == str(workdir)}
        if expect <= jobs.keys() or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


def cancel_workdir_jobs(env: dict[str, str], workdir: Path) -> list[str]:
    """scancel the queued/running jobs submitted from ``workdir`` (and only those)."""
    proc = run(["squeue", "--noheader", "--format=%i|%Z"], env, timeout=30, check=False)
    ours = [line.split("|", 1)[0] for line in proc.stdout.splitlines()
            if line.partition("|")[2] == str(workdir)]
    if ours:
        run(["scancel", *ours], env, timeout=30, check=False)
    return ours
