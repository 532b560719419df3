"""The tf-ps strategy (ParameterServerStrategy): 2 CPU workers, 1 parameter server and the
coordinator, started by segscale.train.spawn -n 4; roles agreed through the run directory
(segscale.train.strategies.ps)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from train_helpers import TINY, run_python, run_train

pytestmark = [pytest.mark.horovod, pytest.mark.slow]

PROCESSES = 4  # 2 workers + 1 ps + the chief


@pytest.fixture(scope="module")
def ps_run(train_python, stores, tmp_path_factory):
    run = run_train(train_python, stores, tmp_path_factory.mktemp("ps") / "four", TINY,
                    ranks=PROCESSES, strategy="tf-ps")
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    return run


def test_the_coordinator_trains_the_one_gpu_runs_work(ps_run):
    man, hist = ps_run.manifest, ps_run.history
    assert man["status"] == "ok" and man["strategy"] == "tf-ps"
    details = man["strategy_details"]
    # one node: the workers take the lowest ranks, then the chief, then the ps
    assert details["roles"] == ["worker0", "worker1", "chief", "ps0"]
    assert (details["workers"], details["ps_tasks"], details["processes"]) == (2, 1, 4)
    assert details["tensorflow"].startswith("2.")
    # each update is one worker's batch: an epoch is the 1-GPU run's steps (48 // 4)
    assert man["steps_per_epoch"] == 12 and man["global_batch"] == TINY["batch_size"]
    assert details["updates"] == TINY["epochs"] * man["steps_per_epoch"]
    assert man["images_per_epoch"] == man["images_per_epoch_1gpu"] == 48
    assert man["images_seen"] == TINY["epochs"] * man["images_per_epoch_1gpu"]
    assert man["lr_target"] == TINY["lr"]  # not scaled by the workers
    assert man["n_ranks"] == 2 and (hist["ranks"] == 2).all()  # the GPUs of the sweep
    assert hist["epoch"].tolist() == list(range(TINY["epochs"]))
    assert hist["loss"].map(math.isfinite).all() and (hist["images_per_s"] > 0).all()
    # no step breakdown (steps run asynchronously on the workers); start-up still recorded
    assert hist[["compute_s", "allreduce_s", "input_wait_s"]].isna().all().all()
    assert hist["startup_s"].iloc[0] > 0 and (hist["validation_s"] > 0).all()
    assert details["replicas_per_update"] == 1
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0]


def test_every_process_leaves_its_resources_and_the_rendezvous_is_gone(ps_run):
    for rank in range(PROCESSES):
        samples = pd.read_csv(ps_run.out / "resources" / f"rank{rank}.csv")
        assert len(samples) >= 2, rank  # start and stop at least
    assert not (ps_run.out / ".rendezvous").exists()
    assert not (ps_run.out / "ckpt").exists()


def test_each_worker_draws_its_own_order(train_python, stores):
    """The dataset function is traced once (with the coordinator's global seed) and runs on
    every worker: its shuffle must draw its seeds at run time, so two runs of the one traced
    function give different batches; validation reads the store in order."""
    out = run_python(train_python, f"""
import numpy as np, tensorflow as tf
from segscale.data.store import SliceStore
from segscale.train.strategies.ps import store_dataset
tf.keras.utils.set_random_seed(0)
fn = tf.function(lambda: store_dataset(tf, {str(stores['train'])!r}, 4, shuffle=True))
a, b = (next(iter(fn()))[0].numpy() for _ in range(2))
print("differ", not np.array_equal(a, b))
store = SliceStore.open({str(stores['val'])!r})
x, y = next(iter(store_dataset(tf, store.directory, 4, shuffle=False)))
print("in order", np.array_equal(x.numpy(), np.asarray(store.images[:4], np.float32))
      and np.array_equal(y.numpy(), store.labels[:4]))
""")
    assert "differ True" in out and "in order True" in out


def test_restart_after_signal_resumes(train_python, stores, tmp_path):
    """SIGUSR1 after epoch 0 on the coordinator: every process exits 75 with the checkpoint
    kept; the rerun (a new launch, new roles) resumes at epoch 1 and finishes."""
    hp = {**TINY, "epochs": 3}
    out = tmp_path / "restart"
    first = run_train(train_python, stores, out, hp, ranks=PROCESSES, strategy="tf-ps",
                      env={"SEGSCALE_FAULT_SIGNAL_AFTER_EPOCH": "0"})
    assert first.proc.returncode == 75, first.proc.stderr[-4000:]
    assert first.proc.stderr.count("the coordinator is done (exit 75)") == PROCESSES - 1
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["epoch-0001"]
    assert not (out / "run.json").exists()

    second = run_train(train_python, stores, out, hp, ranks=PROCESSES, strategy="tf-ps")
    assert second.proc.returncode == 0, second.proc.stderr[-4000:]
    man, hist = second.manifest, second.history
    assert man["status"] == "ok" and man["resumed_from_epoch"] == 1
    assert man["epochs_completed"] == 3 and hist["epoch"].tolist() == [0, 1, 2]
    # the optimizer's step count came back with the checkpoint
    assert man["strategy_details"]["updates"] == 3 * man["steps_per_epoch"]


@pytest.mark.parametrize("processes, ps_tasks", [(2, 1), (3, 2)])
def test_ps_tasks_leaving_no_worker_are_refused(train_python, stores, tmp_path, processes,
                                                ps_tasks):
    run = run_train(train_python, stores, tmp_path / "refused", {**TINY, "ps_tasks": ps_tasks},
                    ranks=processes, strategy="tf-ps", timeout=120)
    assert run.proc.returncode == 2, run.proc.stderr[-3000:]
    assert (f"{processes} processes leave no worker with ps_tasks {ps_tasks}"
            in run.proc.stderr)
    assert not (tmp_path / "refused" / "run.json").exists()


def test_a_failed_coordinator_stops_every_process(train_python, stores, tmp_path):
    """A coordinator that fails (a model too deep for 32x32 slices) still tells the servers:
    all exit 1, run.json says failed, every process's resources are written."""
    out = tmp_path / "failed"
    run = run_train(train_python, stores, out, {**TINY, "model": {"depth": 9,
                                                                  "base_filters": 4}},
                    ranks=PROCESSES, strategy="tf-ps", timeout=180)
    assert run.proc.returncode == 1, run.proc.stderr[-3000:]
    assert run.proc.stderr.count("the coordinator is done (exit 1)") == PROCESSES - 1
    man = run.manifest
    assert man["status"] == "failed" and "smaller than" in man["error"]
    assert man["n_ranks"] == 2
    assert sorted(p.name for p in (out / "resources").iterdir()) == [
        f"rank{k}.csv" for k in range(PROCESSES)]
    assert not (out / ".rendezvous").exists()


def test_divergence_check_reads_no_step_loss_under_tf_ps(train_python):
    """Batch logs under tf-ps hold values still on the workers: with batch_losses off the
    callback never reads them, still delivers a signal every sync_every steps, and the epoch
    loss still decides divergence."""
    out = run_python(train_python, """
import math
from segscale.train import callbacks as cb

class Remote:  # what a RemoteValue would cost: reading it per batch is refused here
    def __float__(self):
        raise AssertionError("per-batch loss read")

class Flag:
    def __init__(self): self.on = False
    def is_set(self): return self.on

flag = Flag()
state = cb.RunState()
div = cb.DivergenceCallback(state, cb.Comm(), 10.0, 2, flag, batch_losses=False)
div.on_epoch_begin(0)
for step in range(4):
    div.on_train_batch_end(step, {"loss": Remote()})
div.on_epoch_end(0, {"loss": 1.0})
flag.on = True
div.on_train_batch_end(4, {"loss": Remote()})
try:
    div.on_train_batch_end(5, {"loss": Remote()})
except cb.StopRun as stop:
    print("stopped", stop.status)
try:
    div.on_epoch_end(1, {"loss": math.inf})
except cb.StopRun as stop:
    print("epoch", stop.status)
""")
    assert "stopped preempted" in out and "epoch diverged" in out
