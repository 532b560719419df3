"""Issue 12.4: job states without slurmdbd, and a dead slurmdbd as a clear failure.

The Slurm executor (plugin 2.8) forgets its jobs when a status poll fails, so without a guard
snakemake would wait forever. Checked here with the real Snakefile and Slurm profile:

- a cluster of its own (one node, its own directory and ports) whose slurmdbd is stopped by
  its PID file: the run stops before submitting anything, within seconds, saying why;
- on the shared test cluster, the snakemake process alone loses its accounting daemon (its
  SLURM_CONF names a closed slurmdbd port; nothing is stopped, other tests go on): polling
  with squeue still runs a job to the end, and with sacct a loss during the run stops it with
  a message naming the job left in Slurm.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from slurm_helpers import REPO, SLURM_DOWN, SLURM_UP, cancel_workdir_jobs, parse_exports, run
from workflow.helpers import SNAKEMAKE, TEST_CONFIG

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TARGET = "results/demo/tiny-heart/dataset.json"  # one small job (demo_dataset)
GUARD_DIR = Path("/tmp/segscale-slurm-guardtest")
GUARD_PORT_BASE = "7117"


def command(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(TEST_CONFIG),
            "--default-resources", "slurm_account=segscale", "slurm_partition=gpu",
            "runtime=10", "mem_mb_per_cpu=500", "cpus_per_task=1", "--jobs", "1", *args,
            "--", TARGET]


def environ(env: dict[str, str], **extra: str) -> dict[str, str]:
    out = dict(env, **extra)
    out["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{out.get('PATH', '')}"
    return out


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def without_accounting(conf: Path, dest: Path) -> Path:
    """A copy of slurm.conf whose slurmdbd is a closed port: what clients see of a dead one."""
    text = re.sub(r"(?m)^AccountingStoragePort=\d+$", f"AccountingStoragePort={closed_port()}",
                  conf.read_text())
    dest.write_text(text)
    return dest


@pytest.fixture(scope="module")
def own_cluster():
    """A one-node cluster of this module's own, torn down (purged) at the end."""
    if os.geteuid() != 0:
        pytest.skip("local Slurm needs root")
    env = dict(os.environ, SEGSCALE_SLURM_DIR=str(GUARD_DIR), SEGSCALE_SLURM_NODES="1",
               SEGSCALE_SLURM_PORT_BASE=GUARD_PORT_BASE)
    try:
        proc = subprocess.run(["bash", str(SLURM_UP), "--env"], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-4000:]
        env.update(parse_exports(proc.stdout))
        yield env
    finally:
        subprocess.run(["bash", str(SLURM_DOWN), "--purge"], env=env, capture_output=True,
                       text=True, timeout=120, check=False)


def test_stopped_slurmdbd_stops_the_run_before_any_job(own_cluster, tmp_path):
    pid = int((GUARD_DIR / "run" / "slurmdbd.pid").read_text())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmdbd"
    os.kill(pid, 15)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run(["sacct", "-n", "-X"], own_cluster, check=False).returncode != 0

    start = time.monotonic()
    proc = subprocess.run(command(tmp_path), env=environ(own_cluster), capture_output=True,
                          text=True, timeout=300, check=False)
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "Slurm accounting (slurmdbd) does not answer" in out, out[-3000:]
    assert "no job was submitted" in out and "--slurm-status-command squeue" in out
    assert "has been submitted" not in out
    assert run(["squeue", "-h"], own_cluster).stdout.strip() == ""
    assert elapsed < 120, elapsed  # DAG building included; the check itself takes < 1 s


def test_squeue_follows_jobs_without_slurmdbd(slurm, tmp_path):
    conf = without_accounting(Path(slurm.env["SLURM_CONF"]), tmp_path / "slurm.conf")
    env = environ(slurm.env, SLURM_CONF=str(conf), SEGSCALE_SLURM_GUARD_S="2")
    assert run(["sacct", "-n", "-X"], env, check=False).returncode != 0
    workdir = tmp_path / "work"
    try:
        proc = subprocess.run(command(workdir, "--slurm-status-command", "squeue",
                                      "--slurm-init-seconds-before-status-checks", "1"),
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert "Falling back to 'sacct'" not in out
        assert (workdir / TARGET).exists()
    finally:
        cancel_workdir_jobs(slurm.env, workdir)


def test_slurmdbd_lost_during_the_run_stops_it_clearly(slurm, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text(Path(slurm.env["SLURM_CONF"]).read_text())
    env = environ(slurm.env, SLURM_CONF=str(conf), SEGSCALE_SLURM_GUARD_S="2")
    workdir = tmp_path / "work"
    proc = subprocess.Popen(command(workdir, "--slurm-status-command", "sacct",
                                    "--slurm-init-seconds-before-status-checks", "20"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"submitted with SLURM jobid (\d+)", line)
            if match:
                job_id = match[1]
                without_accounting(Path(slurm.env["SLURM_CONF"]), conf)
                lost = time.monotonic()
                break
        else:
            pytest.fail("".join(lines)[-4000:])
        rest, _ = proc.communicate(timeout=180)
        waited = time.monotonic() - lost
        out = "".join(lines) + rest
        assert proc.returncode != 0, out[-4000:]
        assert "Slurm accounting (slurmdbd) stopped answering while jobs ran" in out, out[-4000:]
        assert "would wait forever" in out
        # the message names the job left in Slurm, or how to list it if it already ended
        message = out[out.index("stopped answering"):]
        assert job_id in message or "squeue --name" in message, message
        assert waited < 90, waited
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cancel_workdir_jobs(slurm.env, workdir)
