"""predict_scaling through the workflow (dry runs): the allreduce microbenchmark is placed
like a training run of the same rank count (launcher from the profile, nodes, gres), the
prediction waits for the sweep's tables, and the thesis config plans it on Slurm."""

from __future__ import annotations

import re

import pytest

from .helpers import REPO, TEST_CONFIG, snakemake, thesis_config_on_demo_data

pytestmark = pytest.mark.slow


def _jobs(text: str, rule: str) -> list[dict]:
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        if not re.match(rf"(?:local)?rule {rule}:", block):
            continue
        wild = re.search(r"wildcards: (.*)", block)
        res = re.search(r"resources: (.*)", block)
        shell = re.search(r"Shell command: (.*)", block)
        jobs.append({"wildcards": dict(re.findall(r"(\w+)=([^,\s]+)", wild[1])) if wild else {},
                     "resources": dict(re.findall(r"(\w+)=([^,]+)", res[1])) if res else {},
                     "shell": shell[1] if shell else ""})
    return jobs


def test_predict_scaling_dry_run_locally(tmp_path):
    proc = snakemake(tmp_path, "-n", "-p", "predict_scaling", "--profile",
                     str(REPO / "profiles" / "local"), "--configfile", str(TEST_CONFIG))
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = _jobs(proc.stdout, "allreduce_bench")
    assert [j["wildcards"] for j in bench] == [{"n": "2"}]
    assert bench[0]["resources"]["mpi"].strip() == "horovodrun --gloo"  # as the profile's train
    assert "segscale.train.env horovodrun --gloo -n 2 python -m segscale.train.allreduce_bench" \
        in bench[0]["shell"]
    predict = _jobs(proc.stdout, "predicted_scaling")
    assert len(predict) == 1
    shell = predict[0]["shell"]
    assert "--runs results/tables/runs.csv --scaling results/tables/scaling.csv" in shell
    assert "--bench results/scaling/allreduce/gpus2.csv" in shell
    assert "--out results/tables/predicted_scaling.csv" in shell
    assert re.search(r"^aggregate\s+1$", proc.stdout, re.M)


def test_thesis_prediction_planned_on_slurm(tmp_path):
    config = thesis_config_on_demo_data(tmp_path)
    proc = snakemake(tmp_path, "-n", "-p", "predict_scaling", "--profile",
                     str(REPO / "profiles" / "slurm"), "--configfile", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = {j["wildcards"]["n"]: j for j in _jobs(proc.stdout, "allreduce_bench")}
    assert sorted(bench, key=int) == ["2", "4", "8", "18"]
    big = bench["18"]["resources"]
    # 18 ranks on 2-GPU nodes: 9 nodes, 2 tasks and 2 GPUs per node, srun as for training
    assert big["nodes"] == "9" and big["gres"] == "gpu:2" and big["tasks_per_node"] == "2"
    assert big["mpi"].strip() == "srun"
    assert "srun -n 18 python -m segscale.train.allreduce_bench" in bench["18"]["shell"]
    assert "--sizes 4096 65536 1048576 16777216 134217728 536870912" in bench["18"]["shell"]
