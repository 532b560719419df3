"""Real Horovod training on CPU: synchronised ranks, outputs, restart, divergence, predict."""

from __future__ import annotations

import json
import math
import signal

import pandas as pd
import pytest
from train_helpers import TINY, run_python, run_train

from segscale.train.failure import retryable
from segscale.train.launch import SignalFlag
from segscale.train.record import rank_seeds
from segscale.train.schedules import Schedule, epoch_learning_rates

pytestmark = [pytest.mark.horovod, pytest.mark.slow]


def test_two_ranks_hold_identical_weights(two_rank_run, train_python):
    man = two_rank_run.manifest
    assert man["status"] == "ok" and man["n_ranks"] == 2 and len(man["hosts"]) == 2
    digests = man["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert man["error"] is None and man["rank_seeds"] == rank_seeds(0, 2)
    # the exported model holds those same weights
    out = run_python(train_python, f"""
import tensorflow as tf
from segscale.train.record import weights_digest
m = tf.keras.models.load_model({str(two_rank_run.out / "model.keras")!r}, compile=False)
print(weights_digest(m.get_weights()))
""")
    assert out.strip().splitlines()[-1] == digests[0]


def test_history_manifest_and_records_are_sane(two_rank_run):
    man, hist = two_rank_run.manifest, two_rank_run.history
    assert list(hist.columns) == ["epoch", "lr", "loss", "val_loss", "val_dice",
                                  "epoch_time_s", "images_per_s", "ranks", "compute_s",
                                  "allreduce_s", "input_wait_s", "validation_s",
                                  "checkpoint_s", "startup_s"]
    assert hist["epoch"].tolist() == [0, 1] and (hist["ranks"] == 2).all()
    # gradual warmup on 2 ranks: the logged lr is the policy's value for each epoch
    steps = man["steps_per_epoch"]
    assert steps == 48 // 2 // 4
    expected = epoch_learning_rates(Schedule("gradual", 0.01, 2, 2, steps, warmup_epochs=5))
    assert hist["lr"].tolist() == pytest.approx(expected)
    assert hist[["loss", "val_loss"]].map(math.isfinite).all().all()
    assert ((hist["val_dice"] > 0) & (hist["val_dice"] <= 1)).all()
    assert (hist["epoch_time_s"] > 0).all() and (hist["images_per_s"] > 0).all()
    assert man["epochs_planned"] == man["epochs_completed"] == 2
    assert man["train_time_s"] == pytest.approx(hist["epoch_time_s"].sum())
    assert man["resumed_from_epoch"] is None and man["repeat"] == 0 and man["seed"] == 0
    assert man["hparams"]["model"] == TINY["model"] and man["global_batch"] == 8
    env = man["environment"]
    assert "tensorflow-cpu" in env["packages"] or "tensorflow" in env["packages"]
    assert "horovod" in env["packages"] and env["cpu"]
    assert (two_rank_run.out / "model.keras").is_file()
    assert any((two_rank_run.out / "tensorboard").rglob("events.out.tfevents.*"))
    for k in (0, 1):
        res = pd.read_csv(two_rank_run.out / "resources" / f"rank{k}.csv")
        assert list(res.columns) == ["time_s", "cpu_percent", "rss_mb", "gpu_util",
                                     "gpu_mem_mb", "net_sent_bytes", "net_recv_bytes"]
        assert len(res) >= 2 and (res["rss_mb"] > 50).all()


def test_restart_after_signal_resumes(train_python, stores, two_rank_run, tmp_path):
    """SIGUSR1 after epoch 0 on rank 0 only: both ranks stop, a rerun resumes at epoch 1."""
    hp = {**TINY, "epochs": 3}
    out = tmp_path / "restart"
    first = run_train(train_python, stores, out, hp, ranks=2,
                      env={"SEGSCALE_FAULT_SIGNAL_AFTER_EPOCH": "0"})
    assert first.proc.returncode != 0, "a preempted run must not look finished"
    assert "preempted" in first.proc.stderr
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["epoch-0001"]
    assert not (out / "run.json").exists()

    second = run_train(train_python, stores, out, hp, ranks=2)
    assert second.proc.returncode == 0, second.proc.stderr[-4000:]
    man, hist = second.manifest, second.history
    assert man["status"] == "ok" and man["resumed_from_epoch"] == 1
    assert man["epochs_completed"] == 3 and hist["epoch"].tolist() == [0, 1, 2]
    # each process's start-up on its first epoch: the first attempt's, then the resume's
    assert hist["startup_s"].notna().tolist() == [True, True, False]
    assert hist["startup_s"].iloc[1] == pytest.approx(man["startup_s"])
    # same seed, same data order per epoch: the resumed epoch 1 matches an unbroken run
    unbroken = two_rank_run.history
    assert hist["loss"].iloc[:2].tolist() == pytest.approx(unbroken["loss"].tolist(), rel=1e-3)


def test_corrupted_checkpoint_is_never_loaded(train_python, stores, tmp_path):
    out = tmp_path / "corrupt"
    hp = {**TINY, "epochs": 3}
    # Preempted after epoch 1: checkpoints epoch-0001 and epoch-0002 are on disk.
    first = run_train(train_python, stores, out, hp,
                      env={"SEGSCALE_FAULT_SIGNAL_AFTER_EPOCH": "1"})
    assert first.proc.returncode != 0 and "preempted" in first.proc.stderr
    blob = out / "ckpt" / "epoch-0002" / "arrays.npz"
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])  # truncated newest
    (out / "ckpt" / ".epoch-0003.x.partial").mkdir()                   # a killed writer's
    second = run_train(train_python, stores, out, hp)
    assert second.proc.returncode == 0, second.proc.stderr[-4000:]
    assert "corrupted" in second.proc.stderr
    man = second.manifest
    assert man["resumed_from_epoch"] == 1 and man["epochs_completed"] == 3
    assert second.history["epoch"].tolist() == [0, 1, 2]


def test_early_stopping_then_forced_rerun_trains_again(train_python, stores, tmp_path):
    """min_delta so large that no epoch improves: stops after epoch 1 of 5 with status ok;
    a finished run keeps no checkpoint, so rerunning it (a re-measured scaling point) trains
    from scratch and gives the same history (same seed, same batches)."""
    out = tmp_path / "early"
    hp = {**TINY, "epochs": 5, "early_stopping_patience": 1,
          "early_stopping_min_delta": 100.0}
    first = run_train(train_python, stores, out, hp)
    assert first.proc.returncode == 0, first.proc.stderr[-4000:]
    man = first.manifest
    assert man["status"] == "ok" and man["stop_reason"] == "early_stopped"
    assert man["epochs_completed"] == 2 and man["epochs_planned"] == 5
    assert not (out / "ckpt").exists()
    again = run_train(train_python, stores, out, hp)
    assert again.proc.returncode == 0
    assert "nothing left to train" not in again.proc.stderr
    assert again.manifest["resumed_from_epoch"] is None
    assert again.history["epoch"].tolist() == [0, 1]
    assert again.manifest["stop_reason"] == "early_stopped"


def test_divergence_is_recorded_not_a_crash(train_python, stores, tmp_path):
    out = tmp_path / "diverge"
    hp = {**TINY, "epochs": 3, "lr": 1e6, "loss": "ce"}
    run = run_train(train_python, stores, out, hp, policy="none")
    assert run.proc.returncode == 0, run.proc.stderr[-4000:]
    man = run.manifest
    assert man["status"] == "diverged" and man["divergence"]["reason"]
    assert man["epochs_completed"] < 3
    assert (out / "history.csv").is_file() and (out / "model.keras").is_file()


def test_bad_hparams_exit_2_before_tensorflow(train_python, stores, tmp_path):
    run = run_train(train_python, stores, tmp_path / "bad", {"epoch": 3})
    assert run.proc.returncode == 2 and "'epoch'" in run.proc.stderr


def test_predict_writes_pred_and_inference(two_rank_run, train_python, stores, tmp_path):
    pred, info = tmp_path / "pred.npy", tmp_path / "inference.json"
    run_python(train_python, f"""
import sys
from segscale.evaluate.predict import main
sys.exit(main(["--run", {str(two_rank_run.out)!r}, "--store", {str(stores["test"])!r},
               "--pred", {str(pred)!r}, "--inference", {str(info)!r}, "--batch-size", "5",
               "--timing-images", "4"]))
""")
    import numpy as np

    p = np.load(pred)
    assert p.shape == (12, 32, 32) and p.dtype == np.uint8 and p.max() < 3
    data = json.loads(info.read_text())
    assert data["n_images"] == 12 and data["batch_size"] == 5
    assert data["batch1_ms_per_image"] > 0 and data["batched_ms_per_image"] > 0
    assert data["device"].startswith(("CPU", "GPU")) and "packages" in data["environment"]


def test_fcn_and_vgg16_weights_by_name(train_python, tmp_path):
    """FCN builds with 16 VGG/FCN convolutions; a VGG-16-named weights file loads by name,
    its first layer adapted to the input channels."""
    out = run_python(train_python, f"""
import numpy as np, tensorflow as tf
from segscale.models import build_model
from segscale.models.fcn import vgg_conv_names
opts = {{"base_filters": 4, "fc_filters": 8}}
a = build_model("fcn", (32, 32, 3), 2, opts)
a.save_weights({str(tmp_path / "vgg.h5")!r})
b = build_model("fcn", (32, 32, 1), 2, {{**opts, "vgg16_weights": {str(tmp_path / "vgg.h5")!r}}})
same = all(np.allclose(a.get_layer(n).get_weights()[0], b.get_layer(n).get_weights()[0])
           for n in vgg_conv_names()[1:])
k = a.get_layer("block1_conv1").get_weights()[0].sum(axis=2, keepdims=True)
first = np.allclose(b.get_layer("block1_conv1").get_weights()[0], k)
main = [l.name for l in b.layers if type(l) is tf.keras.layers.Conv2D
        and not l.name.startswith("score_pool")]
print(same, first, len(main), b.output_shape)
""")
    assert out.strip().splitlines()[-1] == "True True 16 (None, 32, 32, 2)"


def test_dropout_masks_differ_per_rank_and_repeat(train_python):
    """What resume() does: the run's seed, then the model (the same initial weights on every
    rank), then the rank's own seed: dropout differs across ranks, reproducibly per rank."""
    out = run_python(train_python, """
import numpy as np, tensorflow as tf
from segscale.models import build_model
from segscale.train.record import rank_seed, weights_digest
x = np.ones((2, 32, 32, 1), np.float32)
for rank in (0, 1, 1):
    tf.keras.utils.set_random_seed(5)
    m = build_model("unet", (32, 32, 1), 3, {"depth": 2, "base_filters": 4, "dropout": 0.5})
    tf.keras.utils.set_random_seed(rank_seed(5, rank))
    step = tf.function(lambda t: m(t, training=True))
    w = weights_digest(m.get_weights())[:12]
    y = weights_digest([step(x).numpy()])[:12]
    m.compile(optimizer=tf.keras.optimizers.legacy.SGD(0.1),
              loss="sparse_categorical_crossentropy")
    m.fit(x, np.ones((2, 32, 32), np.uint8), batch_size=2, epochs=1, verbose=0, shuffle=False)
    print(w, y, weights_digest(m.get_weights())[:12])
""")
    (w0, y0, f0), (w1, y1, f1), (w1b, y1b, f1b) = (
        line.split() for line in out.strip().splitlines()[-3:])
    assert w0 == w1 == w1b, "initial weights must not depend on the rank"
    assert y0 != y1, "ranks 0 and 1 drew the same dropout masks"
    assert f0 != f1, "ranks 0 and 1 drew the same dropout masks in fit"
    assert y1 == y1b and f1 == f1b, "a rank's dropout masks must be reproducible"


def test_two_ranks_with_dropout_agree(train_python, stores, tmp_path):
    """Different masks per rank, averaged gradients: the weights still agree."""
    hp = {**TINY, "epochs": 1, "model": {**TINY["model"], "dropout": 0.5}}
    run = run_train(train_python, stores, tmp_path / "dropout", hp, ranks=2)
    assert run.proc.returncode == 0, run.proc.stderr[-4000:]
    man = run.manifest
    assert man["status"] == "ok" and man["error"] is None
    assert man["rank_weight_digests"][0] == man["rank_weight_digests"][1]
    assert man["rank_seeds"] == rank_seeds(0, 2)


def test_ranks_with_different_weights_fail_the_run(train_python, stores, tmp_path):
    """Rank 1's weights perturbed after fit (test hook): run.json says failed and why, the
    model is still written and the exit code stays 0 (the workflow records the row)."""
    out = tmp_path / "disagree"
    run = run_train(train_python, stores, out, {**TINY, "epochs": 1}, ranks=2,
                    env={"SEGSCALE_FAULT_PERTURB_RANK": "1"})
    assert run.proc.returncode == 0, run.proc.stderr[-4000:]
    man = run.manifest
    assert man["status"] == "failed"
    assert man["error"] == ("ranks hold different weights after training: rank 1 differs "
                            "from rank 0 (2 ranks)")
    digests = man["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] != digests[1]
    assert man["epochs_completed"] == 1 and (out / "model.keras").is_file()
    assert not (out / "ckpt").exists(), "a rerun must train again, not resume and pass"


def test_two_ranks_record_the_work_they_did(two_rank_run):
    """48 slices, batch 4 per rank, no cap: 2 ranks x 6 steps = the 1-GPU run's 12 steps
    (48 images) per epoch; 2 epochs seen; validation: 16 slices, 2 batches per rank."""
    man = two_rank_run.manifest
    assert (man["steps_per_epoch"], man["validation_steps"]) == (6, 2)
    assert man["images_per_epoch"] == man["images_per_epoch_1gpu"] == 48
    assert man["val_images_per_epoch"] == 16
    assert man["images_seen"] == 2 * 48 == man["epochs_completed"] * man["images_per_epoch"]


def test_step_cap_is_global(train_python, stores, tmp_path):
    """A cap of 4 steps is the 1-GPU run's 4 x 4 images: 2 ranks take 2 steps each."""
    run = run_train(train_python, stores, tmp_path / "capped",
                    {**TINY, "epochs": 1, "steps_per_epoch": 4, "validation_steps": 2},
                    ranks=2)
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    man = run.manifest
    assert (man["steps_per_epoch"], man["validation_steps"]) == (2, 1)
    assert man["images_per_epoch"] == man["images_per_epoch_1gpu"] == 16 == man["images_seen"]
    assert man["val_images_per_epoch"] == 8
    assert man["global_batch"] == 8


def test_time_breakdown_columns_and_timeline(train_python, stores, two_rank_run, tmp_path):
    # the shared run: no timeline unless asked; every component there, within the epoch
    parts = ["compute_s", "allreduce_s", "input_wait_s", "validation_s"]
    hist, man = two_rank_run.history, two_rank_run.manifest
    assert (hist[[*parts, "checkpoint_s"]] >= 0).all().all()
    assert (hist[parts].sum(axis=1) <= hist["epoch_time_s"] + 0.05).all()
    assert (hist["compute_s"] > 0).all() and (hist["allreduce_s"] > 0).all()
    assert (hist["validation_s"] > 0).all() and (hist["checkpoint_s"] > 0).all()
    assert man["startup_s"] > 0 and man["timeline"] is None
    # start-up on the process's first epoch, as in run.json (the slowest rank's)
    assert hist["startup_s"].iloc[0] == pytest.approx(man["startup_s"])
    assert hist["startup_s"].iloc[1:].isna().all()
    assert not (two_rank_run.out / "timeline.json").exists()
    # hparams.timeline: Horovod writes its timeline into the run directory
    run = run_train(train_python, stores, tmp_path / "tl", {**TINY, "epochs": 1,
                                                           "timeline": True}, ranks=2)
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    timeline = run.out / "timeline.json"
    assert run.manifest["timeline"] == str(timeline.resolve())
    assert run.manifest["hparams"]["timeline"] is True
    text = timeline.read_text()
    assert text.startswith("[") and "ALLREDUCE" in text


def test_rank_killed_mid_epoch_resumes_from_the_last_checkpoint(train_python, stores, tmp_path):
    """A lost node: rank 1 SIGKILLs itself halfway through epoch 1 (once per run directory,
    SEGSCALE_FAULT_KILL_RANK); the launch fails, and the rerun, with the same environment,
    resumes after epoch 0 and records every epoch once. SIGURG (the walltime warning) stops a
    run like SIGUSR1."""
    hp = TINY  # 2 epochs
    out = tmp_path / "killed"
    fault = {"SEGSCALE_FAULT_KILL_RANK": "1:1"}
    first = run_train(train_python, stores, out, hp, ranks=2, env=fault)
    assert first.proc.returncode != 0, "a run that lost a rank must not look finished"
    assert (out / ".fault-killed-rank1").read_text().startswith("epoch 1 ")
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["epoch-0001"]
    # rank 0 saw its collective break: its failed record makes the job retryable
    recorded = first.manifest if (out / "run.json").exists() else None
    assert retryable(first.proc.returncode, recorded), (first.proc.returncode, recorded)

    second = run_train(train_python, stores, out, hp, ranks=2, env=fault)
    assert second.proc.returncode == 0, second.proc.stderr[-4000:]
    man, hist = second.manifest, second.history
    assert man["status"] == "ok" and man["resumed_from_epoch"] == 1
    assert hist["epoch"].tolist() == [0, 1] and man["epochs_completed"] == 2
    assert signal.SIGURG in SignalFlag.SIGNALS
