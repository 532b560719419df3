"""Whether the Slurm executor can see its jobs: checked before the first job and while jobs run.

snakemake-executor-plugin-slurm 2.8 learns job states from one command, ``sacct`` (needs the
accounting daemon, slurmdbd) or ``squeue`` (``--slurm-status-command squeue``). When a poll
fails, it reports no state and drops the jobs from its list, so snakemake waits forever for
jobs nobody watches any more; with squeue, a job that ended more than MinJobAge seconds
before a poll has left squeue and is waited for forever too. The workflow (an ``onstart``
handler, workflow/rules/slurm_guard.smk) therefore refuses to start when the status command
cannot work, and stops with a clear message when it stops answering during the run.

No snakemake import: the workflow passes in what its executor was given.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping

# The plugin waits 10 s longer after every poll that finds nothing finished, up to this.
MAX_STATUS_INTERVAL_S = 180
# squeue must still list a job this long after it ended: the longest interval plus a margin
# (Slurm's default MinJobAge is 300 s).
MIN_JOB_AGE_S = 300
PROBE_TIMEOUT_S = 20
GUARD_ENV = "SEGSCALE_SLURM_GUARD_S"  # seconds between checks during the run; 0: no guard
DEFAULT_INTERVAL_S = 30.0
PROBE_NAME = "segscale-status-probe"  # a job name no job has: the probe lists nothing


def guard_interval(env: Mapping[str, str] | None = None) -> float:
    """Seconds between two checks while jobs run, from $SEGSCALE_SLURM_GUARD_S (0: off).

    Raises:
        ValueError: not a number, or negative.
    """
    raw = (os.environ if env is None else env).get(GUARD_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{GUARD_ENV}={raw!r}: want seconds (0 turns the guard off)") from None
    if value < 0:
        raise ValueError(f"{GUARD_ENV}={raw!r}: want seconds >= 0 (0 turns the guard off)")
    return value


def parse_min_job_age(scontrol_config: str) -> int | None:
    """MinJobAge in seconds from ``scontrol show config`` (``300 sec``, ``1h``, ``3600``)."""
    for line in scontrol_config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() != "MinJobAge":
            continue
        match = re.match(r"\s*(\d+)\s*([a-zA-Z]*)", value)
        if not match:
            return None
        unit = match[2].lower()
        return int(match[1]) * (3600 if unit in ("h", "hour", "hours") else 1)
    return None


def min_job_age(env: Mapping[str, str] | None = None) -> int | None:
    """The cluster's MinJobAge (seconds), or None when slurmctld does not say."""
    try:
        proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=None if env is None else dict(env),
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_min_job_age(proc.stdout) if proc.returncode == 0 else None


def effective_status_command(requested: str | None, job_age: int | None, init_seconds: float,
                             sacct_available: bool) -> str:
    """The command the plugin will really poll with (its own rules, plugin 2.8): squeue falls
    back to sacct when MinJobAge is unknown or below 3 x the first status interval, sacct to
    squeue when there is no sacct."""
    command = requested or ("sacct" if sacct_available else "squeue")
    if command == "squeue" and sacct_available and (job_age is None
                                                    or job_age < 3 * init_seconds):
        command = "sacct"
    if command == "sacct" and not sacct_available:
        command = "squeue"
    return command


def probe_command(command: str) -> list[str]:
    """A poll like the plugin's (same tool, same daemons), for a job name nobody uses."""
    if command == "sacct":
        return ["sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State",
                "--starttime", "now-1hours", "--endtime", "now", "--name", PROBE_NAME]
    return ["squeue", "--noheader", "--states=all", "--format=%i|%T", "--name", PROBE_NAME]


def probe(command: str, env: Mapping[str, str] | None = None,
          timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``command`` (sacct or squeue) answers, else what went wrong, in one line."""
    cmd = probe_command(command)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else dict(env), check=False)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(cmd)}` did not answer in {timeout:g} s"
    except OSError as exc:
        return f"`{cmd[0]}` cannot run: {exc}"
    if proc.returncode != 0:
        err = " ".join(proc.stderr.split()) or "no message"
        return f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {err[-400:]}"
    return None


def remedy(command: str) -> str:
    if command == "sacct":
        return ("Bring slurmdbd back (`sacctmgr show cluster` must answer), or poll with "
                "`--slurm-status-command squeue`, which needs no slurmdbd but MinJobAge >= "
                f"{MIN_JOB_AGE_S} s (`scontrol show config | grep MinJobAge`).")
    return "Bring slurmctld back (`scontrol ping`), or poll with sacct."


def preflight(command: str, job_age: int | None,
              env: Mapping[str, str] | None = None) -> str | None:
    """Why the executor could not follow its jobs with ``command``, or None if it can."""
    if command == "squeue" and job_age is not None and job_age < MIN_JOB_AGE_S:
        return (f"--slurm-status-command squeue: this cluster keeps finished jobs in squeue for "
                f"MinJobAge={job_age} s, but the executor may wait up to "
                f"{MAX_STATUS_INTERVAL_S} s between two polls: a job ending just after one "
                "would be gone before the next and snakemake would wait for it forever. "
                f"Ask for MinJobAge >= {MIN_JOB_AGE_S} (slurm.conf), or use sacct.")
    problem = probe(command, env)
    if problem is None:
        return None
    daemon = "Slurm accounting (slurmdbd)" if command == "sacct" else "slurmctld"
    return (f"{daemon} does not answer: {problem}. The Slurm executor reads job states with "
            f"{command}; it would lose track of its jobs and snakemake would wait forever, so "
            f"no job was submitted. {remedy(command)}")


def running_failure(command: str, problem: str, job_ids: list[str], run_uuid: str | None) -> str:
    """The message that stops a run whose status command stopped answering."""
    daemon = "Slurm accounting (slurmdbd)" if command == "sacct" else "slurmctld"
    if job_ids:
        jobs = (f"Jobs of this run still in Slurm (they go on): {' '.join(job_ids)}; wait "
                "for them or scancel them before running the same command again.")
    elif run_uuid:
        jobs = (f"Jobs of this run still in Slurm: `squeue --name {run_uuid}`; wait for them "
                "or scancel them before running the same command again.")
    else:
        jobs = "Check `squeue --me` for jobs of this run before running it again."
    return (f"{daemon} stopped answering while jobs ran: {problem}. The Slurm executor can "
            f"no longer read job states with {command} and would wait forever, so snakemake "
            f"stops here. {jobs} {remedy(command)}")


def queued_jobs(run_uuid: str | None, env: Mapping[str, str] | None = None) -> list[str]:
    """Ids of the jobs named ``run_uuid`` that squeue still lists (squeue needs no slurmdbd)."""
    if not run_uuid or shutil.which("squeue") is None:
        return []
    try:
        proc = subprocess.run(["squeue", "--noheader", "--format=%i", "--name", run_uuid],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              env=None if env is None else dict(env), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.split() if proc.returncode == 0 else []


class Watchdog(threading.Thread):
    """Calls ``check`` every ``interval_s``; a failure confirmed ``retry_s`` later is handed to
    ``on_failure`` once, and the watchdog ends. A daemon thread: it never holds up an exit."""

    def __init__(self, check: Callable[[], str | None], on_failure: Callable[[str], None],
                 interval_s: float, retry_s: float = 5.0) -> None:
        super().__init__(name="segscale-slurm-guard", daemon=True)
        self.check, self.on_failure = check, on_failure
        self.interval_s, self.retry_s = interval_s, retry_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            problem = self.check()
            if problem is None or self._halt.wait(self.retry_s):
                continue
            problem = self.check()
            if problem is not None:
                self.on_failure(problem)
                return

    def stop(self) -> None:
        self._halt.set()
