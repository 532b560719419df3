"""The scaling model's inputs against the real thing: closed-form parameter counts equal
Keras's count_params() (and the trainable weights Horovod allreduces), and a 2-rank
allreduce microbenchmark under horovodrun writes a sane table that the alpha-beta fit
accepts."""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest
from train_helpers import REPO, run_python

from segscale.scaling import archs
from segscale.scaling.calibrate import calibrate_links, read_bench

pytestmark = [pytest.mark.horovod, pytest.mark.slow]

MODELS = [
    ("unet", 1, 2, {}),                                                   # thesis U-Net
    ("fcn", 1, 2, {}),                                                    # thesis FCN-8s
    ("unet", 2, 3, {"depth": 3, "base_filters": 8, "batch_norm": True}),
    ("unet", 1, 2, {"depth": 2, "base_filters": 4}),                      # .test config
    ("fcn", 4, 5, {"base_filters": 8, "fc_filters": 64, "dropout": 0.0}),
]


def test_param_counts_equal_keras(train_python):
    out = run_python(train_python, f"""
import json
import numpy as np
from segscale.models import build_model
for arch, c, k, options in json.loads({json.dumps(json.dumps(MODELS))}):
    m = build_model(arch, (64, 64, c), k, options)
    print(json.dumps([m.count_params(),
                      sum(int(np.prod(w.shape)) for w in m.trainable_weights)]))
""", timeout=600)
    got = [json.loads(line) for line in out.strip().splitlines()[-len(MODELS):]]
    for (arch, c, k, options), (total, trainable) in zip(MODELS, got):
        want = archs.param_counts(arch, c, k, options)
        assert want == {"total": total, "trainable": trainable}, (arch, options)


def test_two_rank_allreduce_benchmark(train_python, tmp_path):
    out = tmp_path / "allreduce" / "gpus2.csv"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMPI_MCA_mpi_yield_when_idle": "1",
           "PATH": f"{train_python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [str(train_python.parent / "horovodrun"), "--gloo", "-np", "2", "-H", "localhost:2",
         str(train_python), "-m", "segscale.train.allreduce_bench", "--sizes", "4096",
         "65536", "1048576", "67108864", "--repeats", "4", "--warmup", "1",
         "--expect-ranks", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    table = pd.read_csv(out)
    assert list(table["bytes"]) == [4096, 65536, 1048576, 67108864]
    assert (table["ranks"] == 2).all() and (table["hosts"] == 1).all()
    assert (table["repeats"] == 4).all() and (table["time_median_s"] > 0).all()
    assert (table["time_min_s"] <= table["time_median_s"]).all()
    assert (table["busbw_bytes_per_s"] == table["algbw_bytes_per_s"]).all()  # 2(N-1)/N = 1
    assert table["horovod"].notna().all() and table["controller"].eq("gloo").all()
    # 64 MiB takes far longer than 4 KiB (well above this box's noise); the fit accepts it
    assert table["time_median_s"].iloc[-1] > table["time_median_s"].iloc[0]
    intra, _, record = calibrate_links(read_bench([out]), gpus_per_node=2)
    assert intra.beta > 0 and record["intra"]["rows"] == 4


def test_benchmark_refuses_bad_arguments(train_python, tmp_path):
    proc = subprocess.run([str(train_python), "-m", "segscale.train.allreduce_bench",
                           "--repeats", "0", "--out", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "repeats >= 1" in proc.stderr
    assert not (tmp_path / "x.csv").exists()
