"""Distributed (Horovod) training of one run: ``python -m segscale.train``.

One process per rank, started by ``horovodrun -np N``, ``srun`` or ``mpirun`` (or alone for
one rank). Each rank pins its GPU by local rank, reads its own shard of the slice store
(reshuffled every epoch from ``(seed, rank, epoch)``, so a resumed run sees the same batches
as an uninterrupted one), and trains with ``hvd.DistributedOptimizer``; rank 0 alone writes
the run directory (docs/formats.md) and the checkpoints.

Exit codes: 0 when training finished (``ok``) or was stopped as ``diverged`` (the sweep
goes on; ``run.json`` says which); 75 (EX_TEMPFAIL) when a SIGTERM/SIGUSR1 stopped it after
writing a checkpoint (rerun to resume); 2 on bad arguments; 1 on any other failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from segscale.io import atomic_path, write_json
from segscale.train_config import RunSpec, TrainConfig, parse_hparams

log = logging.getLogger("segscale.train")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREEMPTED = 75
HISTORY_COLUMNS = ("epoch", "lr", "loss", "val_loss", "val_dice", "epoch_time_s",
                   "images_per_s", "ranks")
RANK_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")


class _RankFilter(logging.Filter):
    """Prefixes every record with the rank, known from the launcher's environment early and
    from Horovod once initialised."""

    rank = next((os.environ[k] for k in RANK_ENV if k in os.environ), "0")

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


class SignalFlag:
    """Set by SIGTERM / SIGUSR1 (Slurm preemption, time limit); the callbacks poll it and
    stop all ranks together at the next synchronisation point."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def install(self) -> SignalFlag:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        log.warning("received signal %d: stopping at the next synchronisation point", signum)
        self.signum = signum
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RankFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [rank %(rank)s] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def fingerprint(spec: RunSpec, cfg: TrainConfig, n_ranks: int, steps: int,
                image_shape: tuple[int, ...], n_classes: int) -> str:
    """Identifies what a checkpoint may resume: same model, data geometry, schedule, ranks."""
    payload = {"dataset": spec.dataset, "arch": spec.arch, "policy": spec.policy,
               "seed": spec.seed, "hparams": cfg.to_dict(), "n_ranks": n_ranks,
               "steps_per_epoch": steps, "image_shape": list(image_shape),
               "n_classes": n_classes}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def train_batches(store, rows: np.ndarray, batch_size: int, steps: int, seed: int, rank: int,
                  start_epoch: int):
    """Endless stream of training batches, epoch after epoch, from ``start_epoch`` on.

    Epoch ``e`` is ``steps`` batches of this rank's rows shuffled by
    ``default_rng([seed, rank, e])``; its content depends on nothing else.
    """
    epoch = start_epoch
    while True:
        rng = np.random.default_rng([seed, rank, epoch])
        for i, batch in enumerate(store.batches(rows, batch_size, rng)):
            if i >= steps:
                break
            yield batch
        epoch += 1


def val_batches(store, rows: np.ndarray, batch_size: int, steps: int):
    """Endless repetition of the first ``steps`` validation batches, in order."""
    while True:
        for i, batch in enumerate(store.batches(rows, batch_size, None, drop_last=False)):
            if i >= steps:
                break
            yield batch


def weights_digest(weights: list[np.ndarray]) -> str:
    """sha256 over all weight arrays in order: equal on every rank after synchronous steps."""
    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv with :data:`HISTORY_COLUMNS`, atomically."""
    import csv

    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def configure_devices(tf, hvd, threads: int) -> str:
    """Pin this rank's GPU (memory growth on) or its CPU threads; describe the device."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
        return f"GPU {hvd.local_rank() % len(gpus)}"
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return f"CPU x{threads or 'auto'} threads"


def make_optimizer(tf, cfg: TrainConfig, lr: float):
    """Legacy Keras optimizers: Horovod 0.28's DistributedOptimizer wraps them reliably, and
    their ``get_weights``/``set_weights`` checkpoint the optimizer state."""
    if cfg.optimizer == "sgd":
        return tf.keras.optimizers.legacy.SGD(learning_rate=lr, momentum=cfg.momentum)
    return tf.keras.optimizers.legacy.Adam(learning_rate=lr)


def run(spec: RunSpec, cfg: TrainConfig, signals) -> int:
    """Train one run end to end; returns the process exit code."""
    import horovod.tensorflow as hvd_tf
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    from segscale import callbacks as cb
    from segscale.checkpoint import discard_newer, latest_checkpoint
    from segscale.data.store import SliceStore
    from segscale.models import build_model
    from segscale.models.losses import dice, get_loss
    from segscale.provenance import describe_environment
    from segscale.sampler import ResourceSampler, physical_gpu_index, write_rows
    from segscale.schedules import learning_rate

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    _RankFilter.rank = str(rank)
    device = configure_devices(tf, hvd, cfg.threads_per_rank)
    gpu_count = len(tf.config.list_physical_devices("GPU"))
    sampler = ResourceSampler(cfg.sample_interval_s,
                              physical_gpu_index(hvd.local_rank()) if gpu_count else None).start()
    def allreduce_max(values: np.ndarray) -> np.ndarray:
        with tf.device("/cpu:0"):  # tiny control messages: keep them off the GPU/NCCL path
            return hvd_tf.allreduce(tf.constant(values, tf.float64), op=hvd_tf.Max).numpy()

    comm = cb.Comm(rank, size, allreduce_max)
    hosts = hvd_tf.allgather_object(socket.gethostname())
    log.info("rank %d/%d on %s, %s", rank, size, hosts[rank], device)

    train_store, val_store = SliceStore.open(spec.train_store), SliceStore.open(spec.val_store)
    image_shape = tuple(int(d) for d in train_store.images.shape[1:])
    n_classes = train_store.n_classes
    if tuple(val_store.images.shape[1:]) != image_shape:
        raise ValueError(f"{spec.val_store}: image shape {val_store.images.shape[1:]} differs "
                         f"from the training store's {image_shape}")
    rows = train_store.shard(rank, size)
    steps = len(rows) // cfg.batch_size
    if steps == 0:
        raise ValueError(f"hparams.batch_size: {cfg.batch_size} exceeds this rank's shard of "
                         f"{len(rows)} slices ({len(train_store)} over {size} ranks)")
    steps = min(steps, cfg.steps_per_epoch or steps)
    val_rows = val_store.shard(rank, size)
    val_steps = min(math.ceil(len(val_rows) / cfg.batch_size), cfg.validation_steps or 10**9)
    schedule = cfg.schedule(spec.policy, size, steps)
    fp = fingerprint(spec, cfg, size, steps, image_shape, n_classes)
    out = spec.out
    ckpt_root = out / "ckpt"

    # Rank 0 decides where to start; everybody follows.
    ckpt = latest_checkpoint(ckpt_root, fp) if rank == 0 else None
    start = hvd_tf.broadcast_object(
        (ckpt.epochs_completed, ckpt.state) if ckpt is not None else (0, None), root_rank=0)
    initial_epoch, saved_state = start
    state = cb.RunState.from_json(saved_state) if saved_state else cb.RunState()
    if rank == 0:
        discard_newer(ckpt_root, initial_epoch)
        (out / "run.json").unlink(missing_ok=True)  # stale from an earlier attempt

    tf.keras.utils.set_random_seed(spec.seed)

    def make_model():
        return build_model(spec.arch, image_shape, n_classes, cfg.model, cfg.builder)

    model = make_model()
    compression = hvd.Compression.fp16 if cfg.fp16_allreduce else hvd.Compression.none
    optimizer = hvd.DistributedOptimizer(
        make_optimizer(tf, cfg, learning_rate(schedule, min(initial_epoch, cfg.epochs - 1))),
        compression=compression)
    model.compile(optimizer=optimizer, loss=get_loss(cfg.loss), metrics=[dice])
    optimizer._create_all_weights(model.trainable_variables)
    if ckpt is not None:
        arrays = ckpt.load_arrays()
        model.set_weights(arrays["weights"])
        optimizer.set_weights(arrays["optimizer"])
        log.info("resuming from %s after %d epochs", ckpt.path, initial_epoch)
    hvd_tf.broadcast_variables(model.variables, root_rank=0)
    hvd_tf.broadcast_variables(optimizer.variables(), root_rank=0)

    checkpointer = cb.Checkpointer(ckpt_root, fp, cfg.keep_checkpoints, rank, state)
    checkpointer.snapshot(model, initial_epoch)
    if checkpointer.last is not None:
        checkpointer.last.written = ckpt is not None  # already on disk when resuming
    history_path = out / "history.csv"
    callbacks = [
        hvd.callbacks.MetricAverageCallback(),  # first: every rank decides on the same logs
        cb.LearningRateCallback(schedule),
        cb.HistoryCallback(state, comm, cfg.batch_size * size,
                           (lambda r: write_history(history_path, r)) if rank == 0 else None),
        cb.DivergenceCallback(state, comm, cfg.divergence_factor, cfg.sync_every_steps,
                              signals),
        cb.EarlyStoppingCallback(state, cfg.early_stopping_patience,
                                 cfg.early_stopping_min_delta),
        cb.CheckpointCallback(checkpointer, cfg.checkpoint_every, cfg.epochs),
        cb.StopCallback(state, comm, signals),
    ]
    tensorboard = None
    if rank == 0 and cfg.tensorboard:  # after history: every recorded epoch reaches it
        tensorboard = tf.keras.callbacks.TensorBoard(str(out / "tensorboard"), profile_batch=0)
        callbacks.insert(3, tensorboard)

    shape_x = tf.TensorSpec((None, *image_shape), tf.float32)
    shape_y = tf.TensorSpec((None, *image_shape[:2]), tf.uint8)
    train_ds = tf.data.Dataset.from_generator(
        lambda: train_batches(train_store, rows, cfg.batch_size, steps, spec.seed, rank,
                              initial_epoch),
        output_signature=(shape_x, shape_y)).prefetch(2)
    val_ds = tf.data.Dataset.from_generator(
        lambda: val_batches(val_store, val_rows, cfg.batch_size, val_steps),
        output_signature=(shape_x, shape_y)).prefetch(2)

    status, stop_reason = "ok", None
    if state.finish_reason or initial_epoch >= cfg.epochs:
        log.info("nothing left to train (%d/%d epochs, %s)", initial_epoch, cfg.epochs,
                 state.finish_reason or "complete")
        stop_reason = state.finish_reason
    else:
        log.info("training epochs %d..%d: %d steps x %d images x %d ranks, %s policy",
                 initial_epoch, cfg.epochs - 1, steps, cfg.batch_size, size, spec.policy)
        try:
            model.fit(train_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=steps, validation_data=val_ds,
                      validation_steps=val_steps, callbacks=callbacks,
                      verbose=2 if rank == 0 else 0)
        except cb.StopRun as stop:
            log.warning("training stopped: %s", stop)
            if tensorboard is not None:
                tensorboard.on_train_end()  # fit left early: flush and close the writers
            status, stop_reason = ("ok", stop.status) if stop.status == "early_stopped" \
                else (stop.status, stop.status)

    samples = hvd_tf.allgather_object(sampler.stop())
    digests = hvd_tf.allgather_object(weights_digest(model.get_weights()))
    if len(set(digests)) > 1:
        log.error("ranks hold different weights: %s", digests)
    if status == "preempted":
        checkpointer.write()  # the last completed epoch, if checkpoint_every skipped it
        if rank == 0:
            _write_resources(out, samples, write_rows)
        log.warning("preempted: checkpoint kept in %s; rerun to resume", ckpt_root)
        return EXIT_PREEMPTED
    if rank != 0:
        return EXIT_OK

    if status == "diverged" and checkpointer.last is not None:
        model.set_weights(checkpointer.last.weights)  # export the last good epoch
    final = make_model()
    final.set_weights(model.get_weights())
    with atomic_path(out / "model.keras", suffix=".keras") as tmp:
        final.save(tmp)
    write_history(history_path, state.history)
    _write_resources(out, samples, write_rows)
    manifest = {
        "status": status,
        "stop_reason": stop_reason,
        "divergence": state.divergence,
        "dataset": spec.dataset,
        "arch": spec.arch,
        "policy": spec.policy,
        "n_ranks": size,
        "repeat": spec.repeat if spec.repeat is not None else spec.seed,
        "seed": spec.seed,
        "hparams": cfg.to_dict(),
        "epochs_planned": cfg.epochs,
        "epochs_completed": len(state.history),
        "train_time_s": float(sum(r["epoch_time_s"] for r in state.history)),
        "hosts": hosts,
        "resumed_from_epoch": initial_epoch or None,
        "steps_per_epoch": steps,
        "validation_steps": val_steps,
        "global_batch": cfg.batch_size * size,
        "lr_target": schedule.target_lr,
        "image_shape": list(image_shape),
        "n_classes": n_classes,
        "train_store": str(spec.train_store),
        "val_store": str(spec.val_store),
        "device": device,
        "horovod": {"mpi": bool(hvd_tf.mpi_enabled()), "gloo": bool(hvd_tf.gloo_enabled())},
        "fingerprint": fp,
        "rank_weight_digests": digests,
        "environment": describe_environment(),
    }
    write_json(out / "run.json", manifest)
    # A finished run keeps no checkpoints: they only serve to resume an interrupted run, and
    # a forced rerun of a finished one (a re-measured scaling point) must train again.
    shutil.rmtree(ckpt_root, ignore_errors=True)
    log.info("run %s: %d/%d epochs, %.1f s", status, manifest["epochs_completed"], cfg.epochs,
             manifest["train_time_s"])
    return EXIT_OK


def _write_resources(out: Path, samples: list, write_rows) -> None:
    for k, rows in enumerate(samples):
        write_rows(out / "resources" / f"rank{k}.csv", rows)


def launcher_size() -> int:
    """Number of ranks as the launcher announced it (1 when started alone)."""
    for key in ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


def record_failure(spec: RunSpec, cfg: TrainConfig, err: BaseException) -> None:
    """Best effort: a ``run.json`` with ``status: failed`` and the error, for humans and the
    aggregator (a workflow manager discards it with the job's other outputs)."""
    try:
        from segscale.provenance import describe_environment

        write_json(spec.out / "run.json", {
            "status": "failed", "error": f"{type(err).__name__}: {err}",
            "dataset": spec.dataset, "arch": spec.arch, "policy": spec.policy,
            "n_ranks": launcher_size(),
            "repeat": spec.repeat if spec.repeat is not None else spec.seed,
            "seed": spec.seed, "hparams": cfg.to_dict(), "epochs_planned": cfg.epochs,
            "epochs_completed": None, "train_time_s": None, "hosts": None,
            "resumed_from_epoch": None, "environment": describe_environment()})
    except Exception:  # never mask the original error
        log.exception("could not record the failure in run.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m segscale.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-store", required=True, type=Path, help="training slice store")
    p.add_argument("--val-store", required=True, type=Path, help="validation slice store")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--dataset", required=True, help="dataset name (recorded)")
    p.add_argument("--arch", required=True,
                   help="unet | fcn | a label for hparams.builder | module:function")
    p.add_argument("--policy", required=True, help="none | constant | gradual | grescale")
    p.add_argument("--seed", required=True, type=int, help="seed (weights, shuffling)")
    p.add_argument("--repeat", type=int, default=None, help="repeat index (default: seed)")
    p.add_argument("--hparams", default="{}",
                   help="JSON object of hyper-parameters (docs/training.md), or @file.json")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(logging, str(args.log_level).upper(), logging.INFO))
    try:
        cfg = parse_hparams(args.hparams)
        spec = RunSpec(args.train_store, args.val_store, args.out, args.dataset, args.arch,
                       args.policy, args.seed, args.repeat)
    except (ValueError, OSError) as err:
        log.error("%s", err)
        return EXIT_USAGE
    signals = SignalFlag().install()  # before TensorFlow: a preemption during start-up is seen
    if cfg.threads_per_rank:
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(var, str(cfg.threads_per_rank))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    try:
        code = run(spec, cfg, signals)
    except Exception as err:
        log.exception("training failed")
        if _RankFilter.rank == "0":
            record_failure(spec, cfg, err)
        return EXIT_FAILED
    log.info("done in %.1f s (exit %d)", time.perf_counter() - t0, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
