"""Keras callbacks of a training run: lr schedule, history, divergence, checkpoints, stopping.

Imported only by :mod:`segscale.train` (it needs TensorFlow). The callbacks share one
:class:`RunState` and must run in the order :func:`segscale.train.make_callbacks` gives:
Horovod's metric averaging first, so every rank sees the same epoch logs and takes the same
decision; then lr, history, divergence, early stopping, checkpoint and the stop check.

Every decision that ends training early is taken identically on all ranks (from averaged epoch
logs, or from a max-allreduce of per-rank flags every ``sync_every_steps`` steps), because a
rank leaving ``fit`` alone would leave the others blocked in their next allreduce. It is
announced by raising :class:`StopRun`, which leaves ``fit`` at once on every rank.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from segscale.study import DIVERGED, EARLY_STOPPED, PREEMPTED
from segscale.train.checkpoint import write_checkpoint
from segscale.train.schedules import Schedule, learning_rate
from segscale.train.timing import STEP_COMPONENTS, EpochTimes, gather_rows, rank_mean

log = logging.getLogger(__name__)

FAULT_SIGNAL_ENV = "SEGSCALE_FAULT_SIGNAL_AFTER_EPOCH"
FAULT_PERTURB_ENV = "SEGSCALE_FAULT_PERTURB_RANK"
FAULT_SLOW_ENV = "SEGSCALE_FAULT_SLOW_EPOCH_S"
FAULT_KILL_ENV = "SEGSCALE_FAULT_KILL_RANK"


class StopRun(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Leave ``fit`` now on every rank; ``status`` is ``diverged``, ``preempted`` or
    ``early_stopped``."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(f"{status}: {detail}" if detail else status)
        self.status = status
        self.detail = detail


@dataclass
class Comm:
    """The collectives the callbacks need, so they can be exercised without Horovod."""

    rank: int = 0
    size: int = 1
    allreduce_max: Callable[[np.ndarray], np.ndarray] = field(default=lambda a: a)


@dataclass
class RunState:
    """What training has produced so far; the JSON part goes into every checkpoint."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float = math.inf
    wait: int = 0
    reference_loss: float | None = None
    finish_reason: str | None = None
    divergence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"history": [dict(r) for r in self.history],
                "best_val_loss": self.best_val_loss, "wait": self.wait,
                "reference_loss": self.reference_loss, "finish_reason": self.finish_reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        return cls(history=list(data.get("history", [])),
                   best_val_loss=float(data.get("best_val_loss", math.inf)),
                   wait=int(data.get("wait", 0)),
                   reference_loss=data.get("reference_loss"),
                   finish_reason=data.get("finish_reason"))


class LearningRateCallback(tf.keras.callbacks.Callback):
    """Applies ``learning_rate(schedule, epoch, step)`` before every step; logs ``lr``.

    The value logged per epoch is the one applied at its first step (GreScale and gradual
    ramp within the epoch; every other policy is constant over an epoch).
    """

    def __init__(self, schedule: Schedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.epoch = 0
        self.current: float | None = None
        self.epoch_lr: dict[int, float] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        step = min(batch, self.schedule.steps_per_epoch - 1)
        lr = learning_rate(self.schedule, self.epoch, step)
        if batch == 0:
            self.epoch_lr[self.epoch] = lr
        if lr != self.current:
            tf.keras.backend.set_value(self.model.optimizer.lr, lr)
            self.current = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.epoch_lr.get(epoch, learning_rate(self.schedule, epoch, 0))


class StepTimingCallback(tf.keras.callbacks.Callback):
    """Where each epoch's time goes on this rank (:mod:`segscale.train.timing`).

    :meth:`install` wraps ``model.train_step`` so the step stamps, in the graph, when its
    batch left the input pipeline; the step consumes the batch only after the stamp (so it
    is not postponed by the executor). The stamp goes to a CPU variable of this callback,
    not of the model, so weights, checkpoints and digests are unchanged.

    The allreduce is not stamped inside the step: a stamp that no op waits for runs late,
    and one that the allreduce waits for would stop Horovod overlapping communication with
    the backward pass. Instead :meth:`probe` allreduces a buffer of the gradients' size
    (and compression) ``PROBE_REPEATS`` times once per epoch, after the last training step,
    and :class:`~segscale.train.timing.EpochTimes` counts the fastest one per step.

    First in the callback list: its batch-end hook runs right after the step and its
    batch-begin hook before the others (the lr callback's update counts as input wait).
    """

    PROBE_REPEATS = 3

    def __init__(self, times: EpochTimes,
                 allreduce: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.times = times
        self.allreduce = allreduce  # hvd allreduce of one tensor (None: no probe)
        self.stamp: Any = None
        self.buffer: Any = None
        self.traced = 0  # times the training step was traced (graph built)
        self._seen_traces = 0

    def install(self, model: tf.keras.Model) -> None:
        """Wrap ``model.train_step`` (before ``fit`` traces it)."""
        with tf.device("/cpu:0"):
            self.stamp = tf.Variable(math.nan, dtype=tf.float64, trainable=False,
                                     name="segscale_input_stamp")
        input_ready, train_step = self.stamp, model.train_step

        def timed_train_step(data):
            self.traced += 1  # Python runs here only while tf.function traces the step
            with tf.device("/cpu:0"):
                with tf.control_dependencies(tf.nest.flatten(data)):
                    stamp = tf.timestamp()
                assigned = input_ready.assign(stamp)
            with tf.control_dependencies([assigned]):
                data = tf.nest.map_structure(tf.identity, data)
            return train_step(data)

        model.train_step = timed_train_step
        n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        self.buffer = tf.zeros([max(n, 1)], tf.float32)

    def probe(self) -> None:
        """Time allreduces of a gradient-sized buffer; the first also waits for the slowest
        rank to finish its epoch and is not counted."""
        if self.allreduce is None or self.buffer is None:
            return
        took = []
        for _ in range(self.PROBE_REPEATS):
            t0 = time.perf_counter()
            out = self.allreduce(self.buffer)
            float(out[0].numpy())  # wait for it (one value to the host)
            took.append(time.perf_counter() - t0)
        self.times.allreduce_per_step = min(took[1:] or took)

    def on_epoch_begin(self, epoch, logs=None):
        self.times.reset()

    def on_train_batch_begin(self, batch, logs=None):
        self.times.batch_begin()

    def on_train_batch_end(self, batch, logs=None):
        traced, self._seen_traces = self.traced > self._seen_traces, self.traced
        stamp = float(self.stamp.numpy()) if self.stamp is not None else math.nan
        self.times.batch_end(stamp, math.nan, math.nan, traced=traced)

    def on_test_begin(self, logs=None):
        self.probe()  # every rank validates after its last step: all reach it together
        self.times.test_begin()

    def on_test_end(self, logs=None):
        self.times.test_end()


class StartupCallback(tf.keras.callbacks.Callback):
    """Only the start-up (process start to the first training step) and the validation of
    :class:`~segscale.train.timing.EpochTimes`, where steps cannot be timed one by one
    (tf-ps schedules them on the workers asynchronously)."""

    def __init__(self, times: EpochTimes) -> None:
        super().__init__()
        self.times = times

    def on_epoch_begin(self, epoch, logs=None):
        self.times.reset()

    def on_train_batch_begin(self, batch, logs=None):
        if math.isnan(self.times.startup_s):
            self.times.batch_begin()

    def on_test_begin(self, logs=None):
        self.times.test_begin()

    def on_test_end(self, logs=None):
        self.times.test_end()


class HistoryCallback(tf.keras.callbacks.Callback):
    """One history row per epoch: lr, losses, val Dice, wall time (max over ranks), images/s
    and where the time went.

    ``epoch_time_s`` spans the whole epoch including validation; ``images_per_s`` divides
    the images all ranks trained on by the training part of the epoch (validation excluded),
    both as the slowest rank saw them. ``ranks`` (default: the ranks of ``comm``) is what
    the ``ranks`` column records (tf-ps: the workers). ``asynchronous`` (tf-ps): a batch hook
    runs when its step is scheduled, so the training part ends when validation begins, and
    there is no breakdown. Otherwise, with ``timing``, the row also holds
    :data:`~segscale.train.timing.STEP_COMPONENTS`, each the mean over ranks of that rank's
    seconds (gathered in the same max-allreduce); ``checkpoint_s`` is added after the
    checkpoint (:class:`CheckpointCallback`); ``startup_s`` (the slowest rank's process start
    to first step) fills the first row this process writes, NaN the others.
    """

    def __init__(self, state: RunState, comm: Comm, images_per_step: int,
                 writer: Callable[[list[dict[str, Any]]], None] | None = None,
                 timing: EpochTimes | None = None, ranks: int | None = None,
                 asynchronous: bool = False) -> None:
        super().__init__()
        self.state = state
        self.comm = comm
        self.ranks = comm.size if ranks is None else ranks
        self.asynchronous = asynchronous
        self.images_per_step = images_per_step  # global: batch x ranks
        self.writer = writer
        self.timing = timing
        self.t0 = 0.0
        self.t_train = 0.0
        self.steps = 0
        self.rows_written = 0  # by this process

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.t_train = time.perf_counter() - self.t0

    def on_test_begin(self, logs=None):
        if self.asynchronous:  # the last step was only scheduled; validation waits for all
            self.t_train = time.perf_counter() - self.t0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        t_epoch = time.perf_counter() - self.t0
        local = (self.timing.values() if self.timing is not None
                 else np.full(len(STEP_COMPONENTS), np.nan))
        if self.asynchronous:  # steps were not timed: only validation is known
            local = np.where(np.array(STEP_COMPONENTS) == "validation_s", local, np.nan)
        startup = (self.timing.startup_s if self.timing is not None and not self.rows_written
                   else math.nan)  # this process's start-up, on its first epoch only
        rows = gather_rows(np.concatenate([[t_epoch, self.t_train], local, [startup]]),
                           self.comm.rank, self.comm.size, self.comm.allreduce_max)
        t_epoch, t_train = (float(v) for v in np.nanmax(rows[:, :2], axis=0))
        parts = rank_mean(rows[:, 2:-1])
        startups = rows[:, -1]
        startup = float(np.nanmax(startups)) if np.isfinite(startups).any() else math.nan
        self.rows_written += 1
        row = {
            "epoch": int(epoch),
            "lr": float(logs.get("lr", math.nan)),
            "loss": float(logs.get("loss", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_dice": float(logs.get("val_dice", math.nan)),
            "epoch_time_s": t_epoch,
            "images_per_s": self.steps * self.images_per_step / t_train if t_train else math.nan,
            "ranks": self.ranks,
            **{name: float(v) for name, v in zip(STEP_COMPONENTS, parts, strict=True)},
            "checkpoint_s": math.nan,
            "startup_s": startup,  # the slowest rank's
        }
        self.state.history.append(row)
        log.info("epoch %d: lr %.3g loss %.4f val_loss %.4f val_dice %.4f %.1fs %.1f img/s",
                 epoch, row["lr"], row["loss"], row["val_loss"], row["val_dice"],
                 row["epoch_time_s"], row["images_per_s"])
        if self.writer is not None:
            self.writer(self.state.history)


class DivergenceCallback(tf.keras.callbacks.Callback):
    """Stops a diverging run: non-finite loss, or loss above ``factor`` x reference.

    The reference is the lowest epoch loss so far (before the first epoch ends: the first
    step's loss). Every ``sync_every`` steps the ranks max-allreduce their flags
    ``[signal, non-finite, exploded]`` (sticky between checks), which also delivers a
    SIGTERM/SIGUSR1 received by any rank; at epoch end the rank-averaged loss decides.
    ``factor == 0`` checks only for non-finite values. ``batch_losses`` False (tf-ps, whose
    batch logs are values still on the workers): the steps' losses are not read, the
    signals still checked every ``sync_every`` steps and the epoch loss still decides.
    """

    def __init__(self, state: RunState, comm: Comm, factor: float, sync_every: int,
                 signals: Any = None, batch_losses: bool = True) -> None:
        super().__init__()
        self.batch_losses = batch_losses
        self.state = state
        self.comm = comm
        self.factor = factor
        self.sync_every = sync_every
        self.signals = signals
        self.global_step = 0
        self.epoch = 0
        self.flags = np.zeros(3)
        self.first_loss: float | None = None

    def _reference(self) -> float | None:
        return self.state.reference_loss if self.state.reference_loss is not None \
            else self.first_loss

    def _exploded(self, loss: float) -> bool:
        ref = self._reference()
        return bool(self.factor and ref is not None and ref > 0 and loss > self.factor * ref)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        self.flags[0] = max(self.flags[0], float(bool(self.signals and self.signals.is_set())))
        loss = float((logs or {}).get("loss", math.nan)) if self.batch_losses else math.nan
        if self.batch_losses:
            if self.first_loss is None and math.isfinite(loss):
                self.first_loss = loss
            self.flags[1] = max(self.flags[1], float(not math.isfinite(loss)))
            self.flags[2] = max(self.flags[2],
                                float(math.isfinite(loss) and self._exploded(loss)))
        if self.global_step % self.sync_every:
            return
        flags = self.comm.allreduce_max(self.flags.copy())
        self.flags[:] = 0
        if flags[1] or flags[2]:
            self.state.divergence = {"epoch": self.epoch, "step": int(batch),
                                     "loss": loss, "reference_loss": self._reference(),
                                     "reason": "non-finite loss" if flags[1] else "loss explosion"}
            raise StopRun(DIVERGED, f"epoch {self.epoch} step {batch}: "
                                      f"{self.state.divergence['reason']}")
        if flags[0]:
            raise StopRun(PREEMPTED, f"signal received, epoch {self.epoch} step {batch}")

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        if not math.isfinite(loss) or self._exploded(loss):
            reason = "non-finite loss" if not math.isfinite(loss) else "loss explosion"
            self.state.divergence = {"epoch": int(epoch), "step": None, "loss": loss,
                                     "reference_loss": self._reference(), "reason": reason}
            raise StopRun(DIVERGED, f"epoch {epoch}: {reason}")
        ref = self.state.reference_loss
        self.state.reference_loss = loss if ref is None else min(ref, loss)


class EarlyStoppingCallback(tf.keras.callbacks.Callback):
    """Marks the run finished when ``val_loss`` has not improved by ``min_delta`` for
    ``patience`` epochs (0 disables); the stop itself happens after the checkpoint."""

    def __init__(self, state: RunState, patience: int, min_delta: float = 0.0) -> None:
        super().__init__()
        self.state = state
        self.patience = patience
        self.min_delta = min_delta

    def on_epoch_end(self, epoch, logs=None):
        val = float((logs or {}).get("val_loss", math.nan))
        if not self.patience or not math.isfinite(val):
            return
        if val < self.state.best_val_loss - self.min_delta:
            self.state.best_val_loss, self.state.wait = val, 0
        else:
            self.state.wait += 1
            if self.state.wait >= self.patience:
                self.state.finish_reason = EARLY_STOPPED


@dataclass
class Snapshot:
    """Model and optimizer state after ``epochs_completed`` epochs (rank 0's copy)."""

    epochs_completed: int
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    state: dict[str, Any]
    written: bool = False


class Checkpointer:
    """Keeps the last epoch-end snapshot in memory (rank 0) and writes it on request.

    The in-memory copy lets a preempted or diverged run still write / export the last good
    epoch even when ``checkpoint_every`` > 1 skipped writing it.
    """

    def __init__(self, root: Path, fingerprint: str, keep: int, rank: int,
                 state: RunState) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.keep = keep
        self.rank = rank
        self.state = state
        self.last: Snapshot | None = None

    def snapshot(self, model: tf.keras.Model, epochs_completed: int) -> None:
        if self.rank == 0:
            self.last = Snapshot(epochs_completed, model.get_weights(),
                                 model.optimizer.get_weights(), self.state.to_json())

    def write(self) -> Path | None:
        """Write the last snapshot unless already written (rank 0 only)."""
        snap = self.last
        if self.rank != 0 or snap is None or snap.written:
            return None
        path = write_checkpoint(self.root, snap.epochs_completed, self.fingerprint,
                                {"weights": snap.weights, "optimizer": snap.optimizer},
                                snap.state, keep=self.keep)
        snap.written = True
        log.info("checkpoint %s", path)
        return path


class CheckpointCallback(tf.keras.callbacks.Callback):
    """Snapshots every epoch; writes every ``every`` epochs, the last one, and when finishing.

    The seconds spent (snapshot and write, rank 0's) become the epoch's ``checkpoint_s`` and
    ``writer`` rewrites the history with it. The snapshot is taken first, so the history a
    checkpoint holds lacks its own epoch's ``checkpoint_s``.
    """

    def __init__(self, checkpointer: Checkpointer, every: int, epochs: int,
                 writer: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        super().__init__()
        self.checkpointer = checkpointer
        self.every = every
        self.epochs = epochs
        self.writer = writer

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        done = epoch + 1
        self.checkpointer.snapshot(self.model, done)
        if (done % self.every == 0 or done >= self.epochs
                or self.checkpointer.state.finish_reason):
            self.checkpointer.write()
        history = self.checkpointer.state.history
        if history and history[-1].get("epoch") == epoch:
            history[-1]["checkpoint_s"] = time.perf_counter() - t0
            if self.writer is not None:
                self.writer(history)


class StopCallback(tf.keras.callbacks.Callback):
    """After the checkpoint: stop on early stopping or on a signal any rank received.

    ``SEGSCALE_FAULT_SIGNAL_AFTER_EPOCH=k`` makes rank 0 send itself SIGUSR1 at the end of
    epoch ``k`` (tests and drills of the preemption path).
    """

    def __init__(self, state: RunState, comm: Comm, signals: Any) -> None:
        super().__init__()
        self.state = state
        self.comm = comm
        self.signals = signals
        fault = os.environ.get(FAULT_SIGNAL_ENV, "")
        self.fault_epoch = int(fault) if fault.strip().lstrip("-").isdigit() else None

    def on_epoch_end(self, epoch, logs=None):
        if self.fault_epoch == epoch and self.comm.rank == 0:
            log.warning("%s=%d: sending SIGUSR1 to myself", FAULT_SIGNAL_ENV, epoch)
            os.kill(os.getpid(), signal.SIGUSR1)
        local = float(bool(self.signals and self.signals.is_set()))
        if self.comm.allreduce_max(np.array([local]))[0]:
            raise StopRun(PREEMPTED, f"signal received by a rank, after epoch {epoch}")
        if self.state.finish_reason == EARLY_STOPPED:
            raise StopRun(EARLY_STOPPED, f"no val_loss improvement, after epoch {epoch}")


class FaultPerturbCallback(tf.keras.callbacks.Callback):
    """``SEGSCALE_FAULT_PERTURB_RANK=k`` makes rank ``k`` add 1e-3 to its first weight array
    when ``fit`` ends, so its weights differ from rank 0's (tests and drills of the check
    that makes such a run ``failed``); without it, nothing."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        fault = os.environ.get(FAULT_PERTURB_ENV, "").strip()
        self.active = fault.isdigit() and int(fault) == rank

    def on_train_end(self, logs=None):
        if self.active:
            log.warning("%s=%s: perturbing this rank's weights", FAULT_PERTURB_ENV,
                        os.environ[FAULT_PERTURB_ENV])
            weights = self.model.get_weights()
            weights[0] = weights[0] + np.asarray(1e-3, weights[0].dtype)
            self.model.set_weights(weights)


class FaultStepCallback(tf.keras.callbacks.Callback):
    """Drills of the walltime warning and of a lost node (tests); without the variables,
    nothing.

    ``SEGSCALE_FAULT_SLOW_EPOCH_S=s``: every rank sleeps ``s / steps`` after each training
    step, so an epoch of a tiny model lasts at least ``s`` seconds. ``SEGSCALE_FAULT_KILL_RANK
    =k:e``: rank ``k`` SIGKILLs itself halfway through epoch ``e``, once per run directory:
    it first writes ``<run dir>/.fault-killed-rank<k>`` and never fires where that exists, so
    the retry runs through.
    """

    def __init__(self, rank: int, out: Path) -> None:
        super().__init__()
        slow = os.environ.get(FAULT_SLOW_ENV, "").strip()
        try:
            self.slow_s = max(float(slow), 0.0) if slow else 0.0
        except ValueError:
            self.slow_s = 0.0
        self.marker = Path(out) / f".fault-killed-rank{rank}"
        kill_rank, _, kill_epoch = os.environ.get(FAULT_KILL_ENV, "").strip().partition(":")
        self.kill_epoch = (int(kill_epoch) if kill_rank.isdigit() and int(kill_rank) == rank
                           and kill_epoch.isdigit() else None)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        steps = max(int((self.params or {}).get("steps") or 1), 1)
        if self.slow_s:
            time.sleep(self.slow_s / steps)
        if (self.kill_epoch == self.epoch and batch == (steps - 1) // 2
                and not self.marker.exists()):
            self.marker.write_text(f"epoch {self.epoch} step {batch}\n")
            log.warning("%s: SIGKILL to myself, epoch %d step %d", FAULT_KILL_ENV,
                        self.epoch, batch)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
