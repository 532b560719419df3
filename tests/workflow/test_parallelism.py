"""Issue 13, local parallelism as sweep parameters (after Lerat et al. 2022): the parallelism
target splits a node's cores into ranks per node x threads per rank, trains each split for
real through profiles/local (same model, data, global batch and images per epoch), and
tabulates and draws images/s per split with the best one; on Slurm each split is one job on
one node with its ranks as tasks and its threads as cores per task, and no GPU."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml

from .helpers import REPO, TEST_CONFIG, snakemake

TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
DEMO_CONFIG = REPO / "config" / "config.yaml"


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    if not TRAIN_PYTHON.exists():
        pytest.skip("training environment missing: run scripts/setup.sh")
    workdir = tmp_path_factory.mktemp("parallelism")
    config = workdir / "parallelism.yaml"
    config.write_text(yaml.safe_dump({"parallelism": {"cores_per_node": 2}}))
    proc = snakemake(workdir, "--profile", str(REPO / "profiles" / "local"), "--configfile",
                     str(TEST_CONFIG), str(config), "-p", "--", "parallelism", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return workdir, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.horovod
def test_every_split_trains_the_same_work_and_the_best_is_named(splits):
    workdir, output = splits
    runs = workdir / "results" / "parallelism" / "tiny-heart" / "unet" / "horovod"
    records = {name: json.loads((runs / name / "run.json").read_text())
               for name in ("ranks1-threads2", "ranks2-threads1")}
    one, two = records["ranks1-threads2"], records["ranks2-threads1"]
    assert one["status"] == two["status"] == "ok"
    assert (one["n_ranks"], one["hparams"]["threads_per_rank"]) == (1, 2)
    assert (two["n_ranks"], two["hparams"]["threads_per_rank"]) == (2, 1)
    assert one["hparams"]["batch_size"] == 2 * two["hparams"]["batch_size"]  # same global
    assert one["images_per_epoch"] == two["images_per_epoch"]
    assert "horovodrun --gloo -n 2 python -m segscale.train" in output
    table = pd.read_csv(workdir / "results" / "tables" / "parallelism.csv")
    assert list(zip(table.ranks_per_node, table.threads_per_rank)) == [(1, 2), (2, 1)]
    assert table["equal_work"].all() and table["best"].sum() == 1
    assert table["speedup_vs_one_rank"].iloc[0] == pytest.approx(1.0)
    assert (table["images_per_s"] > 0).all()
    figure = workdir / "results" / "figures" / "parallelism.svg"
    assert "ranks per node × threads per rank" in figure.read_text()
    log = (workdir / "results" / "logs" / "parallelism" / "table.log").read_text()
    assert "best split:" in log


def test_slurm_jobs_of_the_splits(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("parallelism: {cores_per_node: 4, global_batch: 8}\n")
    proc = snakemake(tmp_path, "-n", "-p", "--profile", str(REPO / "profiles" / "slurm"),
                     "--configfile", str(DEMO_CONFIG), str(config), "--", "parallelism",
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = proc.stdout.split("rule parallelism_train:")[1:]
    found = {}
    for block in jobs:
        wild = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"wildcards: (.*)", block)[1]))
        resources = re.search(r"resources: (.*)", block)[1]
        shell = re.search(r"Shell command: (.*)", block)[1]
        n, t = int(wild["n"]), int(wild["t"])
        assert f"tasks={n}," in resources and f"cpus_per_task={t}," in resources
        assert "nodes=1," in resources and "gres=" not in resources
        assert f"--ntasks-per-node={n} " in resources
        assert (f"srun -n {n} python" in shell) == (n > 1)
        hparams = json.loads(re.search(r"--hparams '(\{.*?\})'", shell)[1])
        found[(n, t)] = (hparams["threads_per_rank"], hparams["batch_size"])
    assert found == {(1, 4): (4, 8), (2, 2): (2, 4), (4, 1): (1, 2)}


def test_a_global_batch_the_ranks_cannot_share_is_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("parallelism: {cores_per_node: 2, global_batch: 7}\n")
    proc = snakemake(tmp_path, "-n", "--configfile", str(DEMO_CONFIG), str(config),
                     "--cores", "1", "--", "parallelism", timeout=300)
    assert proc.returncode != 0
    assert "config parallelism.global_batch 7 is not a multiple of 2 ranks" in \
        proc.stdout + proc.stderr
