"""hparams.precision and hparams.xla train for real (1 epoch, tiny U-Net, CPU): run.json
records them and each rank's device; xla on several ranks is refused by name."""

from __future__ import annotations

import pytest
from train_helpers import TINY, run_train

ONE_EPOCH = {**TINY, "epochs": 1, "tensorboard": False}


def _ok(run, ranks: int) -> dict:
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    m = run.manifest
    assert m["status"] == "ok" and m["epochs_completed"] == 1 and m["n_ranks"] == ranks
    assert len(m["rank_devices"]) == ranks and all(d.endswith("CPU") for d in m["rank_devices"])
    local = [d.split("local_rank=")[1].split()[0] for d in m["rank_devices"]]
    assert local == [str(k) for k in range(ranks)]  # one host: local rank = rank
    assert len(set(m["rank_weight_digests"])) == 1
    return m


@pytest.mark.parametrize("ranks", [1, 2])
def test_mixed_float16_trains_and_is_recorded(train_python, stores, tmp_path, ranks):
    run = run_train(train_python, stores, tmp_path / "mixed",
                    {**ONE_EPOCH, "precision": "mixed_float16"}, ranks=ranks)
    m = _ok(run, ranks)
    assert m["hparams"]["precision"] == "mixed_float16" and m["hparams"]["xla"] is False
    assert run.history["loss"].notna().all()


def test_xla_on_one_rank_trains_and_is_recorded(train_python, stores, tmp_path):
    run = run_train(train_python, stores, tmp_path / "xla", {**ONE_EPOCH, "xla": True})
    m = _ok(run, 1)
    assert m["hparams"]["xla"] is True and m["hparams"]["precision"] == "float32"
    assert "Compiled cluster using XLA" in run.proc.stderr


def test_xla_on_two_ranks_is_refused_by_name(train_python, stores, tmp_path):
    run = run_train(train_python, stores, tmp_path / "xla2", {**ONE_EPOCH, "xla": True},
                    ranks=2)
    assert run.proc.returncode != 0
    m = run.manifest
    assert m["status"] == "failed" and "hparams.xla" in m["error"]
