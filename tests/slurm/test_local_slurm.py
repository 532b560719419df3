"""The local Slurm cluster of scripts/local-cluster/slurm-up.sh schedules real multi-task,
GPU-gres jobs.

What CI relies on: sbatch/srun/sacct work with SLURM_CONF only, fake gres/gpu is accepted and
exported as CUDA_VISIBLE_DEVICES, sacct records steps and task counts (the snakemake slurm
executor polls sacct), the MPI plugins listed by `srun --mpi=list` launch ranks, two emulated
nodes exist for `--nodes=2` runs, and OpenMPI's mpirun picks up a Slurm allocation.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from slurm_helpers import SACCT_RUNS, SLURM_UP, parse_exports, run, sacct_steps, sbatch, wait_job

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _mpi_plugins(env: dict[str, str]) -> set[str]:
    out = run(["srun", "--mpi=list"], env, timeout=20).stdout
    return {line.strip() for line in out.splitlines() if line.startswith(("\t", " "))
            and line.strip() and " " not in line.strip()}


def _node_count(env: dict[str, str]) -> int:
    out = run(["sinfo", "-h", "-N", "-o", "%N"], env, timeout=20).stdout
    return len(set(out.split()))


def test_sbatch_two_tasks_with_gpus(slurm, tmp_path):
    out = tmp_path / "hostname.out"
    job = sbatch(slurm.env, "--ntasks=2", "--gres=gpu:2", "--job-name=segscale-ci-hostname",
                 "--comment=rule_ci_wildcards_n=2", f"--output={out}", "--wrap", "srun hostname",
                 cwd=tmp_path)
    assert wait_job(slurm.env, job) == "COMPLETED", out.read_text() if out.exists() else ""

    rows = {r[0]: r for r in sacct_steps(slurm.env, job)}
    assert rows[str(job)][1] == "COMPLETED"
    assert rows[f"{job}.0"][1:] == ["COMPLETED", "2"], rows  # the srun step ran 2 tasks
    assert len(out.read_text().splitlines()) == 2

    # The operator listing shows it, rule comment included (AccountingStoreFlags=job_comment).
    # A time-window sacct query lags `sacct -j` by a second or two: retry briefly.
    deadline = time.monotonic() + 20
    while True:
        listing = run(["bash", str(SACCT_RUNS), "-H", "1"], slurm.env, timeout=30).stdout
        line = next((ln for ln in listing.splitlines() if ln.split()[:1] == [str(job)]), "")
        if line or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "rule_ci_wildcards_n=2" in line and "COMPLETED" in line and "gres/gpu=2" in line, \
        listing


@pytest.mark.parametrize("mpi", ["none", "pmi2", "pmix"])
def test_srun_mpi_plugins_start_ranks(slurm, tmp_path, mpi):
    if mpi not in _mpi_plugins(slurm.env):
        pytest.skip(f"srun --mpi={mpi} not available in this Slurm build")
    out = tmp_path / "ranks.out"
    script = f"srun --mpi={mpi} sh -c 'echo $SLURM_PROCID $CUDA_VISIBLE_DEVICES'"
    job = sbatch(slurm.env, "--ntasks=2", "--gres=gpu:2", f"--output={out}", "--wrap", script,
                 cwd=tmp_path)
    assert wait_job(slurm.env, job) == "COMPLETED", out.read_text() if out.exists() else ""
    lines = sorted(out.read_text().split("\n")[:-1])
    assert lines == ["0 0,1", "1 0,1"], lines


def test_two_emulated_nodes(slurm, tmp_path):
    """STYLE section 4: n=4 ranks with 2 GPUs/node submits --nodes=2 --ntasks=4 --gres=gpu:2."""
    if _node_count(slurm.env) < 2:
        pytest.skip("cluster started with SEGSCALE_SLURM_NODES=1")
    out = tmp_path / "nodes.out"
    script = "srun --mpi=pmix sh -c 'echo $SLURM_PROCID $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES'"
    if "pmix" not in _mpi_plugins(slurm.env):
        script = script.replace("--mpi=pmix", "--mpi=none")
    job = sbatch(slurm.env, "--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--gres=gpu:2",
                 f"--output={out}", "--wrap", script, cwd=tmp_path)
    assert wait_job(slurm.env, job) == "COMPLETED", out.read_text() if out.exists() else ""
    rows = sorted(line.split() for line in out.read_text().splitlines())
    assert [r[0] for r in rows] == ["0", "1", "2", "3"], rows
    assert len({r[1] for r in rows}) == 2, rows  # two distinct node names
    assert all(r[2] == "0,1" for r in rows), rows


MPI_ALLREDUCE_C = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, one = 1, sum = 0;
    MPI_Comm dup;
    MPI_Init(&argc, &argv);
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);  /* what Horovod does first; crashed here before */
    MPI_Comm_rank(dup, &rank);
    MPI_Comm_size(dup, &size);
    for (int i = 0; i < 100; i++) MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, dup);
    printf("%d %d %d\n", rank, size, sum);
    MPI_Comm_free(&dup);
    MPI_Finalize();
    return 0;
}
"""


def test_mpi_job_across_two_emulated_nodes(slurm, tmp_path):
    """A real MPI program over 2 nodes x 2 ranks (the n=4 training geometry).

    Both emulated nodes are one host with one hostname: OpenMPI's shared-memory segment files
    collided across them (segfault in mca_btl_vader) until slurm-up.sh's TaskProlog gave each
    node its own backing directory.
    """
    if _node_count(slurm.env) < 2:
        pytest.skip("cluster started with SEGSCALE_SLURM_NODES=1")
    if shutil.which("mpicc") is None:
        pytest.skip("mpicc (libopenmpi-dev) not installed")
    if "pmix" not in _mpi_plugins(slurm.env):
        pytest.skip("srun --mpi=pmix not available: OpenMPI ranks cannot wire up under srun")
    (tmp_path / "allreduce.c").write_text(MPI_ALLREDUCE_C)
    run(["mpicc", "-o", str(tmp_path / "allreduce"), str(tmp_path / "allreduce.c")],
        slurm.env, timeout=120)
    out = tmp_path / "allreduce.out"
    # As the workflow submits it: batch script on node1, srun spreads the ranks (the batch
    # step's environment, node1's, is what srun passes on to node2).
    job = sbatch(slurm.env, "--nodes=2", "--ntasks-per-node=2", "--gres=gpu:2",
                 f"--output={out}", "--wrap", "srun --mpi=pmix -n 4 ./allreduce", cwd=tmp_path)
    assert wait_job(slurm.env, job) == "COMPLETED", out.read_text() if out.exists() else ""
    rows = sorted(line.split() for line in out.read_text().splitlines() if line.strip())
    assert rows == [[str(r), "4", "4"] for r in range(4)], out.read_text()


def test_mpirun_uses_slurm_allocation(slurm, tmp_path):
    """OpenMPI's mpirun inside sbatch reads the allocation: no -n, still 2 ranks."""
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun (openmpi-bin) not installed")
    out = tmp_path / "mpirun.out"
    script = ("mpirun --allow-run-as-root "
              "sh -c 'echo $OMPI_COMM_WORLD_RANK $OMPI_COMM_WORLD_SIZE $SLURM_JOB_ID'")
    job = sbatch(slurm.env, "--ntasks=2", "--gres=gpu:2", f"--output={out}", "--wrap", script,
                 cwd=tmp_path)
    assert wait_job(slurm.env, job, timeout=180) == "COMPLETED", \
        out.read_text() if out.exists() else ""
    rows = sorted(line.split() for line in out.read_text().splitlines() if line.strip())
    assert rows == [["0", "2", str(job)], ["1", "2", str(job)]], out.read_text()


def test_sacct_runs_finds_jobs_without_stored_comments(slurm, tmp_path):
    """Sites that do not store job comments: the rule comes from the job's submit line (the
    executor's `--target-jobs 'rule:wildcards'`), as the comment would have given it."""
    wrap = "true python -m snakemake --target-jobs 'train:dataset=ci,arch=unet,n=2,r=0' --x"
    job = sbatch(slurm.env, "--job-name=0f1e2d3c-ci-nocomment", f"--output={tmp_path}/o.out",
                 "--wrap", wrap, cwd=tmp_path)
    assert wait_job(slurm.env, job) == "COMPLETED"
    deadline = time.monotonic() + 20
    while True:
        listing = run(["bash", str(SACCT_RUNS), "-H", "1"], slurm.env, timeout=30).stdout
        line = next((ln for ln in listing.splitlines() if ln.split()[:1] == [str(job)]), "")
        if line or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert line.split()[1:3] == ["rule_train_wildcards_ci_unet_2_0", "COMPLETED"], listing


def test_slurm_up_writes_a_missing_etc_slurm_conf(slurm):
    """A fresh machine has Debian's Slurm packages but no /etc/slurm/slurm.conf: slurm-up.sh
    (idempotent, the cluster is already up) must write it, not stop silently (a CI failure)."""
    etc_conf = Path("/etc/slurm/slurm.conf")
    saved = etc_conf.read_bytes() if etc_conf.exists() else None
    etc_conf.unlink(missing_ok=True)
    try:
        proc = subprocess.run(["bash", str(SLURM_UP), "--env"], capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert parse_exports(proc.stdout)["SLURM_CONF"] == slurm.env["SLURM_CONF"]
        assert "# segscale-local-slurm:" in etc_conf.read_text()
    finally:
        if saved is not None:
            etc_conf.write_bytes(saved)
