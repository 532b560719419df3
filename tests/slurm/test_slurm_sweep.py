"""Issue 5: the demo sweep through `snakemake --profile profiles/slurm` on the local Slurm.

The .test config (tiny-heart x unet x {none, gradual} x {1, 2} GPUs, 2 epochs; 3 runs since a
pure warmup on 1 GPU is the "none" run) is run with the Slurm profile plus CI-only flags. Every
non-local rule must become an sbatch job recorded by sacct, training jobs must run as many ranks
as GPUs, and a single-point rerun must submit exactly one training job.

Jobs are attributed to this test through sacct's WorkDir (the executor submits with
`-D <workdir>`), so other users of the cluster do not disturb the counts.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from slurm_helpers import cancel_workdir_jobs, sacct_jobs, workdir_jobs
from workflow.helpers import REPO, TEST_CONFIG, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.horovod]

TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
DATASET, ARCH = "tiny-heart", "unet"
RUNS = [("none", 1), ("none", 2), ("gradual", 2)]  # (policy, GPUs = ranks)
GPUS_PER_NODE = 2  # the local cluster's gpu:2 per node = config gpus_per_node
RERUN = ("none", 2)
# Rules that are not `localrule: True`, with their job count for the .test config.
SLURM_RULES = Counter({"demo_dataset": 1, "inspect": 1, "split": 1, "slice_store": 3,
                       "augment": 1, "train": 3, "predict": 3, "evaluate": 3})
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def run_dir(workdir: Path, policy: str, n: int, strategy: str = "horovod") -> Path:
    return (workdir / "results" / "runs" / DATASET / ARCH / strategy / policy / f"gpus{n}"
            / "rep0")


def wildcards(policy: str, n: int) -> str:
    """The executor's comment suffix: wildcard values joined by '_'."""
    return f"{DATASET}_{ARCH}_horovod_{policy}_{n}_0"


def slurm_snakemake(workdir: Path, env: dict[str, str], *args: str, timeout: float):
    """The Slurm profile as a user runs it, plus only what CI needs on the command line."""
    return snakemake(
        workdir, "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(TEST_CONFIG),
        # The executor otherwise waits 40 s before its first sacct poll of every job.
        "--slurm-init-seconds-before-status-checks", "1",
        # Replaces the profile's whole default-resources entry (its account is a placeholder):
        # the local cluster's account and partition, and small asks that fit 2 x 8 CPUs.
        "--default-resources", "slurm_account=segscale", "slurm_partition=gpu", "runtime=10",
        "mem_mb_per_cpu=500", "cpus_per_task=1",
        "--jobs", "4", *args, timeout=timeout, env=env)


def submitted_ids(output: str) -> set[int]:
    return {int(m) for m in SUBMITTED.findall(output)}


def explain(proc) -> str:
    return f"rc {proc.returncode}\nstdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"


@pytest.fixture(scope="module")
def sweep(request, tmp_path_factory):
    if not TRAIN_PYTHON.exists():
        pytest.skip(f"training environment missing ({TRAIN_PYTHON}): run scripts/setup.sh")
    if os.geteuid() != 0:
        pytest.skip("local Slurm needs root (daemons run as root, packages may need apt-get)")
    # Checked before the cluster fixture so a machine without them does not start Slurm.
    slurm = request.getfixturevalue("slurm")
    workdir = tmp_path_factory.mktemp("slurm-sweep")
    since = time.time() - 60
    try:
        proc = slurm_snakemake(workdir, slurm.env, timeout=900)
        assert proc.returncode == 0, explain(proc)
        output = proc.stdout + proc.stderr
        ids = submitted_ids(output)
        jobs = workdir_jobs(slurm.env, workdir, since, expect=ids)
        yield {"env": slurm.env, "workdir": workdir, "since": since, "ids": ids, "jobs": jobs,
               "output": output}
    finally:
        # A timeout kills snakemake, not its sbatch jobs: cancel ours so the cluster is left
        # as it was found.
        cancel_workdir_jobs(slurm.env, workdir)


def test_every_run_went_through_sbatch_with_its_rank_count(sweep):
    env, workdir, jobs = sweep["env"], sweep["workdir"], sweep["jobs"]
    for policy, n in RUNS:
        folder = run_dir(workdir, policy, n)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "ok" and 0 <= metrics["summary"]["dice"] <= 1, metrics
        manifest = json.loads((folder / "run.json").read_text())
        assert manifest["status"] == "ok" and manifest["n_ranks"] == n, manifest
        slurm = manifest["environment"]["slurm"]
        # Rank 0 saw the job's allocation: the job id, the node list and one task per GPU.
        assert slurm.get("SLURM_NTASKS") == str(n) and slurm.get("SLURM_JOB_NODELIST"), slurm
        job_id = int(slurm["SLURM_JOB_ID"])
        assert job_id in sweep["ids"], (job_id, sorted(sweep["ids"]))

        job = sacct_jobs(env, [job_id])[job_id]
        assert job.workdir == str(workdir) and job_id in jobs, job
        assert job.state == "COMPLETED", job
        assert job.comment == f"rule_train_wildcards_{wildcards(policy, n)}", job
        # Step 0 is the launch: `srun -n N python -m segscale.train` for N > 1, the executor's
        # own 1-task srun for the bare baseline.
        assert job.step_tasks.get(f"{job_id}.0") == n and job.ntasks == n, job
        assert job.gpus() == n, job
        assert job.nodes == -(-n // GPUS_PER_NODE), job


def test_every_non_local_rule_ran_as_a_slurm_job(sweep):
    jobs, workdir = sweep["jobs"], sweep["workdir"]
    # What snakemake reported submitting is exactly what Slurm accounted for this workdir.
    assert set(jobs) == sweep["ids"], (sorted(jobs), sorted(sweep["ids"]))
    assert Counter(j.rule for j in jobs.values()) == SLURM_RULES, \
        [(j.job_id, j.comment) for j in jobs.values()]
    assert all(j.state == "COMPLETED" for j in jobs.values()), \
        [(j.job_id, j.rule, j.state) for j in jobs.values()]
    # The data stage ran under the CI default-resources: 1 CPU, no GPU.
    for job in jobs.values():
        if job.rule not in ("train", "predict"):
            assert job.gpus() == 0 and job.alloc_tres.get("cpu") == "1", job
    # aggregate and plots are local rules: they ran in the snakemake process, not as jobs.
    assert (workdir / "results" / "tables" / "runs.csv").exists()
    assert (workdir / "results" / "figures" / "speedup.png").exists()


def test_single_point_rerun_submits_exactly_one_training_job(sweep):
    env, workdir = sweep["env"], sweep["workdir"]
    others = [r for r in RUNS if r != RERUN]

    def stamp(policy, n):
        folder = run_dir(workdir, policy, n)
        manifest = json.loads((folder / "run.json").read_text())
        return (manifest["environment"]["slurm"]["SLURM_JOB_ID"],
                (folder / "model.keras").stat().st_mtime_ns)

    before_runs = {r: stamp(*r) for r in RUNS}
    before = workdir_jobs(env, workdir, sweep["since"], expect=sweep["ids"])
    target = run_dir(workdir, *RERUN).relative_to(workdir) / "metrics.json"
    proc = slurm_snakemake(workdir, env, "--forcerun", "train", "--", str(target), timeout=600)
    assert proc.returncode == 0, explain(proc)
    ids = submitted_ids(proc.stdout + proc.stderr)
    after = workdir_jobs(env, workdir, sweep["since"], expect=before.keys() | ids)

    new = {i: j for i, j in after.items() if i not in before}
    assert set(new) == ids, (sorted(new), sorted(ids))
    # One training job, then its prediction and evaluation: nothing else was submitted.
    assert sorted(j.comment for j in new.values()) == sorted(
        f"rule_{rule}_wildcards_{wildcards(*RERUN)}" for rule in ("evaluate", "predict", "train")
    ), [(j.job_id, j.comment) for j in new.values()]
    train = next(j for j in new.values() if j.rule == "train")
    assert train.state == "COMPLETED" and train.ntasks == RERUN[1], train
    assert all(j.state == "COMPLETED" for j in new.values()), new

    # The rerun point now carries the new job id; no other run was retrained.
    assert stamp(*RERUN)[0] == str(train.job_id)
    assert {r: stamp(*r) for r in others} == {r: before_runs[r] for r in others}
    metrics = json.loads((run_dir(workdir, *RERUN) / "metrics.json").read_text())
    assert 0 <= metrics["summary"]["dice"] <= 1


def test_four_gpus_across_both_nodes(sweep, tmp_path):
    """The 4-GPU point: one job on both emulated 2-GPU nodes, 2 ranks per node, each rank on
    its own node's GPUs (run.json rank_devices names the Slurm node and the local rank)."""
    env, workdir = sweep["env"], sweep["workdir"]
    overlay = tmp_path / "four.yaml"
    overlay.write_text("sweep: {archs: [unet], policies: [none, gradual], gpus: [1, 2, 4],"
                       " repeats: 1}\n")
    target = run_dir(workdir, "none", 4).relative_to(workdir) / "metrics.json"
    proc = slurm_snakemake(workdir, env, "--configfile", str(TEST_CONFIG), str(overlay),
                           "--slurm-status-command", "squeue", "--", str(target), timeout=600)
    assert proc.returncode == 0, explain(proc)
    ids = submitted_ids(proc.stdout + proc.stderr)
    jobs = sacct_jobs(env, sorted(ids))
    train = next(j for j in jobs.values() if j.rule == "train")
    assert train.state == "COMPLETED", train
    assert (train.ntasks, train.nodes, train.gpus()) == (4, 2, 4), train
    assert train.step_tasks.get(f"{train.job_id}.0") == 4, train
    manifest = json.loads((run_dir(workdir, "none", 4) / "run.json").read_text())
    assert manifest["status"] == "ok" and manifest["n_ranks"] == 4
    devices = manifest["rank_devices"]
    nodes = [re.search(r"\(node (\S+)\)", d) for d in devices]
    local = [re.search(r"local_rank=(\d)", d)[1] for d in devices]
    assert sorted(local) == ["0", "0", "1", "1"], devices
    # the emulated nodes share this host: their Slurm node names tell them apart
    assert all(nodes) and sorted(m[1] for m in nodes) == ["node1", "node1", "node2", "node2"], \
        devices


def test_tf_collective_across_both_nodes(sweep, tmp_path):
    """Issue 13: a tf-collective run of 2 workers, one per emulated node (gpus_per_node 1),
    started by srun; the workers agree on TF_CONFIG through the run directory, train the
    same weights, and name their Slurm nodes."""
    env, workdir = sweep["env"], sweep["workdir"]
    overlay = tmp_path / "collective.yaml"
    overlay.write_text("sweep: {archs: [unet], strategies: [tf-collective], policies: [none],"
                       " gpus: [2], repeats: 1}\ngpus_per_node: 1\n")
    folder = run_dir(workdir, "none", 2, "tf-collective")
    target = folder.relative_to(workdir) / "metrics.json"
    proc = slurm_snakemake(workdir, env, "--configfile", str(TEST_CONFIG), str(overlay),
                           "--slurm-status-command", "squeue", "--", str(target), timeout=600)
    assert proc.returncode == 0, explain(proc)
    jobs = sacct_jobs(env, sorted(submitted_ids(proc.stdout + proc.stderr)))
    train = next(j for j in jobs.values() if j.rule == "train")
    assert train.state == "COMPLETED", train
    assert (train.ntasks, train.nodes) == (2, 2), train
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "ok" and manifest["strategy"] == "tf-collective"
    assert manifest["n_ranks"] == 2 and len(set(manifest["rank_weight_digests"])) == 1
    assert manifest["environment"]["slurm"]["SLURM_JOB_ID"] == str(train.job_id)
    nodes = sorted(re.search(r"\(node (\S+)\)", d)[1] for d in manifest["rank_devices"])
    assert nodes == ["node1", "node2"], manifest["rank_devices"]
    assert len(manifest["strategy_details"]["workers"]) == 2
    assert not (folder / ".rendezvous").exists()
