"""The tf-collective strategy (MultiWorkerMirroredStrategy) trains the same run as Horovod:
two CPU workers started by segscale.train.spawn, agreeing on TF_CONFIG through the run
directory (segscale.train.strategies.rendezvous)."""

from __future__ import annotations

import pytest
from train_helpers import TINY, run_train

from segscale.train.record import rank_seeds

pytestmark = [pytest.mark.horovod, pytest.mark.slow]


@pytest.fixture(scope="module")
def collective_run(train_python, stores, tmp_path_factory):
    run = run_train(train_python, stores, tmp_path_factory.mktemp("collective") / "two", TINY,
                    ranks=2, strategy="tf-collective")
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    return run


def test_two_workers_hold_identical_weights_and_horovods(collective_run, two_rank_run):
    man = collective_run.manifest
    assert man["status"] == "ok" and man["strategy"] == "tf-collective" and man["n_ranks"] == 2
    digests = man["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    workers = man["strategy_details"]["workers"]
    assert len(workers) == 2 and len(set(workers)) == 2  # two servers, one port each
    assert man["horovod"] is None and man["rank_seeds"] == rank_seeds(0, 2)
    # The same run as Horovod's: same per-rank batches and seeds, and with 2 ranks
    # (x + y) / 2 == x / 2 + y / 2 exactly, so Keras's loss scaling plus a sum of the
    # gradients gives Horovod's average bit for bit on CPU.
    assert two_rank_run.manifest["strategy"] == "horovod"
    assert digests == two_rank_run.manifest["rank_weight_digests"]
    assert collective_run.history["loss"].tolist() == \
        pytest.approx(two_rank_run.history["loss"].tolist(), rel=1e-6)


def test_the_work_and_records_match_the_other_strategy(collective_run, two_rank_run):
    mine, theirs = collective_run.manifest, two_rank_run.manifest
    for key in ("steps_per_epoch", "validation_steps", "images_per_epoch", "images_seen",
                "global_batch", "epochs_completed", "lr_target"):
        assert mine[key] == theirs[key], key
    assert list(collective_run.history.columns) == list(two_rank_run.history.columns)
    assert (collective_run.history["ranks"] == 2).all()
    # the allreduce share of a step: the same probe, through TensorFlow's collectives
    assert (collective_run.history["allreduce_s"] > 0).all()
    assert not (collective_run.out / ".rendezvous").exists()  # removed once all had read it


def test_restart_after_signal_resumes(train_python, stores, collective_run, tmp_path):
    """SIGUSR1 after epoch 0 on rank 0 only: both workers stop with the checkpoint (75),
    the rerun (a new launch, a new rendezvous) resumes at epoch 1 with the same losses."""
    hp = {**TINY, "epochs": 3}
    out = tmp_path / "restart"
    first = run_train(train_python, stores, out, hp, ranks=2, strategy="tf-collective",
                      env={"SEGSCALE_FAULT_SIGNAL_AFTER_EPOCH": "0"})
    assert first.proc.returncode == 75, first.proc.stderr[-4000:]
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["epoch-0001"]
    assert not (out / "run.json").exists()

    second = run_train(train_python, stores, out, hp, ranks=2, strategy="tf-collective")
    assert second.proc.returncode == 0, second.proc.stderr[-4000:]
    man, hist = second.manifest, second.history
    assert man["status"] == "ok" and man["resumed_from_epoch"] == 1
    assert man["epochs_completed"] == 3 and hist["epoch"].tolist() == [0, 1, 2]
    assert man["rank_weight_digests"][0] == man["rank_weight_digests"][1]
    unbroken = collective_run.history
    assert hist["loss"].iloc[:2].tolist() == pytest.approx(unbroken["loss"].tolist(), rel=1e-3)
