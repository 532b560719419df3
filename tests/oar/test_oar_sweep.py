"""Issue 12: the demo sweep through `snakemake --profile profiles/oar` on the local OAR.

The .test config (tiny-heart x unet x {none, gradual} x {1, 2} GPUs: 3 runs) with
`gpus_per_node=1`, so each 2-GPU run is one OAR job on both nodes (127.0.0.2, 127.0.0.3) whose
ranks start with mpirun over oarsh. Every non-local rule must be an OAR job that oarstat shows
Terminated with exit code 0, with the rule in its name and the workflow's placement.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.oar, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
RUNS = [("none", 1), ("none", 2), ("gradual", 2)]
OAR_RULES = Counter({"demo_dataset": 1, "inspect": 1, "split": 1, "slice_store": 3,
                     "augment": 1, "train": 3, "predict": 3, "evaluate": 3})
SUBMITTED = re.compile(r"with external jobid '(\d+)'")


def oarstat(oar, job_id: int) -> dict:
    proc = oar.as_user("oarstat", "-fJ", "-j", str(job_id))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[str(job_id)]


def test_refused_submission_says_why_and_unknown_job_is_failed(oar):
    """The real oarsub through segscale.oar.submit: more hosts than exist is refused."""
    folder = Path(tempfile.mkdtemp(prefix="segscale-oar-refused-", dir="/tmp"))
    try:
        shutil.chown(folder, oar.user)
        script = (REPO / "tests/oar/data/jobscript_train_gpus2.sh").read_text()
        script = script.replace('"nodes": 2', '"nodes": 5')
        (folder / "job.sh").write_text(script)
        proc = oar.as_user("python", "-m", "segscale.oar.submit", str(folder / "job.sh"),
                           cwd=folder)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "OAR_JOB_ID=-5" in proc.stdout and "not enough resources" in proc.stdout
        proc = oar.as_user("python", "-m", "segscale.oar.status", "987654")
        assert proc.stdout == "failed\n", proc.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sweep(request):
    if not TRAIN_PYTHON.exists():
        pytest.skip(f"training environment missing ({TRAIN_PYTHON}): run scripts/setup.sh")
    if os.geteuid() != 0:
        pytest.skip("the local OAR needs root")
    oar = request.getfixturevalue("oar")
    # pytest's tmp_path is private to root: the submitting user needs its own folder. A fresh
    # one, since job ids restart when the OAR database is re-created.
    workdir = Path(tempfile.mkdtemp(prefix="segscale-oar-sweep-", dir="/tmp"))
    shutil.chown(workdir, oar.user)
    ids: list[int] = []
    try:
        proc = oar.as_user(
            str(REPO / ".venv" / "bin" / "snakemake"), "-s", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--profile", str(REPO / "profiles" / "oar"),
            "--configfile", str(TEST_CONFIG), "--config", "gpus_per_node=1", "--jobs", "4",
            # CI only: poll every 2 s (the profile's pace suits a shared frontend).
            "--seconds-between-status-checks", "2", "--max-status-checks-per-second", "10",
            cwd=workdir, timeout=900)
        output = proc.stdout + proc.stderr
        ids = [int(i) for i in SUBMITTED.findall(output)]
        assert proc.returncode == 0, f"rc {proc.returncode}\n{output[-8000:]}"
        yield {"oar": oar, "workdir": workdir, "ids": ids, "output": output}
    finally:
        if ids:  # a timeout kills snakemake, not its OAR jobs
            oar.as_user("oardel", *map(str, ids))
        shutil.rmtree(workdir, ignore_errors=True)


def run_dir(workdir: Path, policy: str, n: int, strategy: str = "horovod") -> Path:
    return (workdir / "results" / "runs" / "tiny-heart" / "unet" / strategy / policy
            / f"gpus{n}" / "rep0")


def test_every_non_local_rule_was_an_oar_job_that_succeeded(sweep):
    oar, workdir = sweep["oar"], sweep["workdir"]
    jobs = {i: oarstat(oar, i) for i in sweep["ids"]}
    rules = Counter(re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", j["name"])[1]
                    for j in jobs.values())
    assert rules == OAR_RULES, [(i, j["name"]) for i, j in jobs.items()]
    for job_id, job in jobs.items():
        assert job["state"] == "Terminated" and job["exit_code"] == 0, (job_id, job)
        assert job["launchingDirectory"] == str(workdir) and job["owner"] == oar.user, job
    assert (workdir / "results" / "figures" / "speedup.png").exists()


def test_training_runs_placed_one_rank_per_gpu_across_nodes(sweep):
    oar, workdir = sweep["oar"], sweep["workdir"]
    for policy, n in RUNS:
        folder = run_dir(workdir, policy, n)
        manifest = json.loads((folder / "run.json").read_text())
        assert manifest["status"] == "ok" and manifest["n_ranks"] == n, manifest
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "ok" and 0 <= metrics["summary"]["dice"] <= 1
        logs = Path(str(folder).replace("/results/runs/", "/results/logs/runs/"))
        # The OAR job's own stdout/stderr are in the run's log folder, named by job id.
        train_ids = [i for i in sweep["ids"] if (logs / f"oar.{i}.out").exists()
                     and oarstat(oar, i)["name"].startswith("rule_train_")]
        assert len(train_ids) == 1, (sorted(p.name for p in logs.iterdir()), sweep["ids"])
        job = oarstat(oar, train_ids[0])
        assert job["name"] == f"rule_train_wildcards_tiny-heart_unet_horovod_{policy}_{n}_0", job
        assert job["wanted_resources"].startswith(f"-l \"{{type = 'default'}}/host={n}/gpu=1,")
        assert "gpu_count > 0" in job["properties"]
        assert len(job["assigned_network_address"]) == n, job  # gpus_per_node=1
        train_log = (logs / "train.log").read_text()
        if n > 1:
            assert f"mpirun -np {n} -machinefile" in train_log
            assert "-mca plm_rsh_agent oarsh" in train_log
        else:
            assert "segscale.oar.launch" not in train_log  # the baseline runs bare


def test_tf_collective_across_both_nodes_over_oarsh(sweep):
    """Issue 13 on OAR: a tf-collective run of 2 workers, one per node, whose ranks mpirun
    starts over oarsh (segscale.oar.launch, as Horovod's); the workers agree on TF_CONFIG
    through the run directory (OpenMPI's job id names the launch) and train the same
    weights."""
    oar, workdir = sweep["oar"], sweep["workdir"]
    config = workdir / "collective.yaml"
    config.write_text("sweep: {archs: [unet], strategies: [tf-collective], policies: [none],"
                      " gpus: [2], repeats: 1}\n")
    shutil.chown(config, oar.user)
    folder = run_dir(workdir, "none", 2, "tf-collective")
    proc = oar.as_user(
        str(REPO / ".venv" / "bin" / "snakemake"), "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--profile", str(REPO / "profiles" / "oar"),
        "--configfile", str(TEST_CONFIG), str(config), "--config", "gpus_per_node=1",
        "--seconds-between-status-checks", "2", "--max-status-checks-per-second", "10",
        "--", str(folder.relative_to(workdir) / "metrics.json"), cwd=workdir, timeout=600)
    output = proc.stdout + proc.stderr
    ids = [int(i) for i in SUBMITTED.findall(output)]
    try:
        assert proc.returncode == 0, f"rc {proc.returncode}\n{output[-8000:]}"
        train = [oarstat(oar, i) for i in ids if oarstat(oar, i)["name"].startswith(
            "rule_train_")]
        assert len(train) == 1 and train[0]["exit_code"] == 0, train
        assert len(train[0]["assigned_network_address"]) == 2, train[0]
        manifest = json.loads((folder / "run.json").read_text())
        assert manifest["status"] == "ok" and manifest["strategy"] == "tf-collective"
        assert manifest["n_ranks"] == 2 and len(set(manifest["rank_weight_digests"])) == 1
        assert len(manifest["strategy_details"]["workers"]) == 2
        logs = Path(str(folder).replace("/results/runs/", "/results/logs/runs/"))
        assert "mpirun -np 2 -machinefile" in (logs / "train.log").read_text()
    finally:
        if ids:
            oar.as_user("oardel", *map(str, ids))
