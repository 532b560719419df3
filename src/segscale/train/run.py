"""Distributed training of one run, as five named steps, for every strategy.

One process per rank, started by ``horovodrun -np N``, ``srun``, ``mpirun`` or
``python -m segscale.train.spawn`` (or alone for one rank). :func:`run` is :func:`set_up`
(the strategy, devices, stores, schedule), :func:`resume`
(model, optimizer, the last verified checkpoint), :func:`make_callbacks`, :func:`fit` and
:func:`finalise` (model, history, resources, ``run.json``). Each rank pins its GPU by local
rank (two ranks of a node on one GPU are refused), reads its own shard of the slice store
(reshuffled every epoch from ``(seed, rank, epoch)``), draws its dropout masks from its own
seed (:func:`~segscale.train.record.rank_seed`) and averages gradients as its strategy does
(:mod:`segscale.train.strategies`: Horovod's DistributedOptimizer, TensorFlow's collectives);
rank 0 alone writes the run directory (docs/formats.md) and the checkpoints. Ranks whose final
weights differ make the run ``failed``. The CLI is :mod:`segscale.train.__main__`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segscale.fileio import atomic_path, sha256
from segscale.study import (
    DIVERGED,
    EARLY_STOPPED,
    FAILED,
    MODEL_FILE,
    OK,
    PREEMPTED,
    PS_STRATEGY,
)
from segscale.train.batches import train_batches, val_batches
from segscale.train.config import RunSpec, StepPlan, TrainConfig, plan_steps
from segscale.train.launch import GpuPlacement, gpu_conflict, gpu_placement, set_rank
from segscale.train.record import (
    base_record,
    fingerprint,
    rank_seed,
    rank_seeds,
    weights_agree,
    weights_digest,
    write_history,
    write_record,
    write_resources,
)
from segscale.train.timing import EpochTimes, process_start_time

log = logging.getLogger("segscale.train")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREEMPTED = 75
TIMELINE_ENV, TIMELINE_FILE = "HOROVOD_TIMELINE", "timeline.json"


def configure_devices(tf, local_rank: int, local_size: int, threads: int,
                      host: str, use_gpu: bool = True,
                      inter_threads: int | None = None) -> tuple[str, GpuPlacement]:
    """Pin this rank's GPU (memory growth on) or its CPU threads; describe the device and
    where it is, for :func:`~segscale.train.launch.gpu_conflict` once every rank has said.
    ``use_gpu`` False: no GPU at all (the tf-ps coordinator and parameter servers);
    ``inter_threads``: inter-op threads other than ``threads``."""
    gpus = tf.config.list_physical_devices("GPU")
    if not use_gpu:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        gpus = []
    placement = gpu_placement(host, local_rank, local_size, len(gpus),
                              os.environ.get("CUDA_VISIBLE_DEVICES"))
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        tf.config.set_visible_devices(gpus[local_rank % len(gpus)], "GPU")
        return f"GPU {local_rank % len(gpus)}", placement
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_threads or threads)
    return f"CPU x{threads or 'auto'} threads", placement


def rank_device(tf, host: str, local_rank: int) -> str:
    """What this rank trains on, for ``run.json`` ``rank_devices``: the host (and the
    scheduler's node name where it differs, as for emulated nodes sharing a host), the local
    rank, and the GPU TensorFlow kept visible (its index among ``CUDA_VISIBLE_DEVICES``,
    shown too) with its memory growth, or ``CPU``."""
    node = os.environ.get("SLURMD_NODENAME") or os.environ.get("OAR_NODENAME") or host
    where = host if node == host else f"{host} (node {node})"
    gpus = tf.config.get_visible_devices("GPU")
    if not gpus:
        return f"{where} local_rank={local_rank} CPU"
    return (f"{where} local_rank={local_rank} {gpus[0].name} CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')} memory_growth="
            f"{tf.config.experimental.get_memory_growth(gpus[0])}")


def make_optimizer(tf, cfg: TrainConfig, lr: float):
    """Legacy Keras optimizers: Horovod 0.28's DistributedOptimizer wraps them reliably, and
    their ``get_weights``/``set_weights`` checkpoint the optimizer state."""
    if cfg.optimizer == "sgd":
        return tf.keras.optimizers.legacy.SGD(learning_rate=lr, momentum=cfg.momentum)
    return tf.keras.optimizers.legacy.Adam(learning_rate=lr)


@dataclass
class Setup:
    """What every rank knows once its strategy is up and the stores are open."""

    tf: Any
    strategy: Any  # segscale.train.strategies.base.Strategy
    rank: int
    size: int
    device: str
    hosts: list[str]
    sampler: Any
    comm: Any
    train_store: Any
    val_store: Any
    image_shape: tuple[int, ...]
    n_classes: int
    rows: np.ndarray
    steps: int
    val_rows: np.ndarray
    val_steps: int
    schedule: Any
    fingerprint: str
    out: Path
    plan: StepPlan

    @property
    def ckpt_root(self) -> Path:
        return self.out / "ckpt"


@dataclass
class Resumed:
    """The model and optimizer, restored from the last verified checkpoint if there is one."""

    model: Any
    optimizer: Any
    initial_epoch: int
    state: Any
    from_checkpoint: bool
    timing: Any = None  # the run's StepTimingCallback, once make_callbacks made it


@dataclass
class Outcome:
    status: str
    stop_reason: str | None


def set_up(spec: RunSpec, cfg: TrainConfig, cluster=None) -> Setup:
    """Start the strategy, pin the device, open the stores and plan steps and the lr
    schedule (``cluster``: the tf-ps coordinator's, which trains on no GPU of its own).

    Raises:
        ValueError: two ranks of a node would share a GPU (more ranks than GPUs), stores of
            different image shapes, or a batch larger than a rank's shard.
    """
    import tensorflow as tf

    from segscale.data.store import SliceStore
    from segscale.train import callbacks as cb
    from segscale.train import strategies
    from segscale.train.sampler import ResourceSampler, physical_gpu_index

    pinned: dict[str, Any] = {}

    def configure(local_rank: int, local_size: int) -> None:
        pinned["device"], pinned["placement"] = configure_devices(
            tf, local_rank, local_size, cfg.threads_per_rank, socket.gethostname())

    if cluster is not None:
        pinned["device"], pinned["placement"] = configure_devices(
            tf, 0, 1, cfg.threads_per_rank, socket.gethostname(), use_gpu=False,
            inter_threads=ps_inter_threads(cfg.threads_per_rank))
    strategy = strategies.start(spec.strategy, spec.out, configure, cluster)
    rank, size = strategy.rank, strategy.size
    set_rank(rank)
    device, placement = pinned["device"], pinned["placement"]
    # every rank gets the same list, so a refusal is raised on all ranks together
    placements = [GpuPlacement(*p) for p in strategy.allgather_object(tuple(placement))]
    conflict = gpu_conflict(placements)
    if conflict:
        raise ValueError(conflict)
    hosts = [p.host for p in placements]
    log.info("rank %d/%d on %s, %s, strategy %s", rank, size, hosts[rank], device,
             strategy.name)
    sampler = ResourceSampler(cfg.sample_interval_s, physical_gpu_index(strategy.local_rank)
                              if placement.gpus_seen else None).start()

    train_store, val_store = SliceStore.open(spec.train_store), SliceStore.open(spec.val_store)
    image_shape = tuple(int(d) for d in train_store.images.shape[1:])
    if tuple(val_store.images.shape[1:]) != image_shape:
        raise ValueError(f"{spec.val_store}: image shape {val_store.images.shape[1:]} differs "
                         f"from the training store's {image_shape}")
    rows = train_store.shard(rank, size)
    val_rows = val_store.shard(rank, size)
    # global caps, the 1-GPU run's work at every N (plan_steps: how it rounds)
    plan = plan_steps(len(train_store), len(val_store), cfg.batch_size, size,
                      cfg.steps_per_epoch, cfg.validation_steps)
    steps, val_steps = plan.steps, plan.val_steps
    log.info("%d ranks x %d steps x batch %d = %d images per epoch (1 GPU: %d)%s", size, steps,
             cfg.batch_size, plan.images_per_epoch, plan.images_per_epoch_1gpu,
             "" if plan.equal_work else ": whole global batches cannot make it equal")
    n_classes = train_store.n_classes
    return Setup(
        tf=tf, strategy=strategy, rank=rank, size=size, device=device, hosts=hosts,
        sampler=sampler, comm=cb.Comm(rank, size, strategy.allreduce_max),
        train_store=train_store,
        val_store=val_store, image_shape=image_shape, n_classes=n_classes, rows=rows,
        steps=steps, val_rows=val_rows, val_steps=val_steps,
        schedule=cfg.schedule(spec.policy, size, steps),
        fingerprint=fingerprint(spec, cfg, strategy.recorded_ranks, steps, image_shape,
                                n_classes), out=spec.out,
        plan=plan)


def make_model(s: Setup, spec: RunSpec, cfg: TrainConfig):
    from segscale.models import build_model

    return build_model(spec.arch, s.image_shape, s.n_classes, cfg.model, cfg.builder)


def resume(s: Setup, spec: RunSpec, cfg: TrainConfig) -> Resumed:
    """Rank 0 picks the last verified checkpoint; every rank builds the model and starts from
    its weights and optimizer state: broadcast from rank 0 where the strategy does that
    (Horovod), else read by every rank from the shared run directory."""
    from segscale.models.losses import dice, get_loss
    from segscale.train import callbacks as cb
    from segscale.train.checkpoint import discard_newer, latest_checkpoint, verify
    from segscale.train.schedules import learning_rate

    tf, strategy = s.tf, s.strategy
    ckpt = latest_checkpoint(s.ckpt_root, s.fingerprint) if s.rank == 0 else None
    initial_epoch, saved_state, ckpt_path = strategy.broadcast_object(
        (ckpt.epochs_completed, ckpt.state, str(ckpt.path)) if ckpt is not None
        else (0, None, None))
    if ckpt is None and ckpt_path is not None and not strategy.broadcasts_variables:
        ckpt = verify(ckpt_path)  # no broadcast follows: every rank reads it
    state = cb.RunState.from_json(saved_state) if saved_state else cb.RunState()
    if s.rank == 0:
        discard_newer(s.ckpt_root, initial_epoch)
        (s.out / "run.json").unlink(missing_ok=True)  # stale from an earlier attempt

    if cfg.xla and s.size > 1:  # on every rank alike: all of them refuse together
        raise ValueError(f"hparams.xla: supported on one rank only, this run has {s.size}: "
                         "the gradient allreduce (in every training step of a multi-rank "
                         "run) has no XLA kernel in this build; set xla false")
    # before any layer is built; the models keep their softmax in float32
    tf.keras.mixed_precision.set_global_policy(cfg.precision)
    with strategy.scope():  # the strategy's variables (mirrored under tf-collective)
        tf.keras.utils.set_random_seed(spec.seed)  # the same initial weights on every rank
        model = make_model(s, spec, cfg)
        # From here on each rank draws its own dropout masks, reproducibly (python, numpy, TF
        # and Keras seeds; the data order has its own (seed, rank, epoch) generator).
        tf.keras.utils.set_random_seed(rank_seed(spec.seed, s.rank))
        optimizer = make_optimizer(tf, cfg, learning_rate(s.schedule,
                                                          min(initial_epoch, cfg.epochs - 1)))
        if not cfg.xla:  # xla: one rank, whose allreduce is the identity (no XLA kernel)
            optimizer = strategy.wrap_optimizer(optimizer, cfg.fp16_allreduce)
        if cfg.precision == "mixed_float16":
            # Loss scaling outside the allreduce: ranks average the scaled gradients, so an
            # inf/NaN on any rank reaches all of them and every rank skips the step and
            # halves the scale.
            optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss=get_loss(cfg.loss), metrics=[dice])
        if cfg.xla:
            # What compile(jit_compile=True) does, one level down: the step timing wrapper
            # (make_callbacks) stamps the input with tf.timestamp, which XLA cannot compile.
            model.train_step = tf.function(model.train_step, jit_compile=True)
            model.test_step = tf.function(model.test_step, jit_compile=True)
        optimizer._create_all_weights(model.trainable_variables)
    if ckpt is not None:
        arrays = ckpt.load_arrays()
        model.set_weights(arrays["weights"])
        optimizer.set_weights(arrays["optimizer"])
        log.info("resuming from %s after %d epochs", ckpt.path, initial_epoch)
    strategy.sync_variables(model, optimizer)
    return Resumed(model, optimizer, initial_epoch, state, ckpt is not None)


def make_callbacks(s: Setup, cfg: TrainConfig, r: Resumed, signals):
    """The callbacks in the order :mod:`segscale.train.callbacks` needs, and the checkpointer
    they share (it keeps the last good epoch in memory)."""
    from segscale.train import callbacks as cb

    checkpointer = cb.Checkpointer(s.ckpt_root, s.fingerprint, cfg.keep_checkpoints, s.rank,
                                   r.state)
    checkpointer.snapshot(r.model, r.initial_epoch)
    if checkpointer.last is not None:
        checkpointer.last.written = r.from_checkpoint  # already on disk when resuming
    history_path = s.out / "history.csv"
    writer = (lambda rows: write_history(history_path, rows)) if s.rank == 0 else None
    times = EpochTimes(process_start=process_start_time())
    asynchronous = s.strategy.asynchronous
    if asynchronous:
        # tf-ps: a batch hook runs when its step is scheduled on a worker, not when it ends:
        # no step breakdown, only the start-up (process start to the first step scheduled)
        r.timing = cb.StartupCallback(times)
    else:
        # first: its batch hooks frame the step itself (segscale.train.timing)
        r.timing = cb.StepTimingCallback(times, s.strategy.allreduce_probe(cfg.fp16_allreduce))
        r.timing.install(r.model)
    callbacks = [
        r.timing,
        *s.strategy.keras_callbacks(),  # e.g. every rank decides on the same (averaged) logs
        cb.LearningRateCallback(s.schedule),
        cb.HistoryCallback(r.state, s.comm, cfg.batch_size * s.size, writer, r.timing.times,
                           ranks=s.strategy.recorded_ranks, asynchronous=asynchronous),
        cb.DivergenceCallback(r.state, s.comm, cfg.divergence_factor, cfg.sync_every_steps,
                              signals, batch_losses=not asynchronous),
        cb.EarlyStoppingCallback(r.state, cfg.early_stopping_patience,
                                 cfg.early_stopping_min_delta),
        cb.CheckpointCallback(checkpointer, cfg.checkpoint_every, cfg.epochs, writer),
        cb.StopCallback(r.state, s.comm, signals),
        cb.FaultPerturbCallback(s.rank),  # a no-op unless SEGSCALE_FAULT_PERTURB_RANK is set
        cb.FaultStepCallback(s.rank, s.out),  # a no-op unless SEGSCALE_FAULT_SLOW_EPOCH_S or
        #                                     SEGSCALE_FAULT_KILL_RANK is set
    ]
    if s.rank == 0 and cfg.tensorboard:  # after history: every recorded epoch reaches it
        at = callbacks.index(next(c for c in callbacks if isinstance(c, cb.HistoryCallback)))
        # no graph under tf-ps: writing it from the coordinator blocks its first step
        callbacks.insert(at + 1, s.tf.keras.callbacks.TensorBoard(
            str(s.out / "tensorboard"), profile_batch=0,
            write_graph=not s.strategy.asynchronous))
    if asynchronous:
        # Keras refuses batch hooks under ParameterServerStrategy unless the callback takes
        # the raw logs (RemoteValues, which none of ours reads per batch)
        for callback in callbacks:
            callback._supports_tf_logs = True
    return callbacks, checkpointer


def fit(s: Setup, spec: RunSpec, cfg: TrainConfig, r: Resumed, callbacks) -> Outcome:
    """Train the remaining epochs; a :class:`~segscale.train.callbacks.StopRun` (diverged,
    preempted, early stop) ends ``fit`` on every rank at once."""
    from segscale.train import callbacks as cb

    tf = s.tf
    if r.state.finish_reason or r.initial_epoch >= cfg.epochs:
        log.info("nothing left to train (%d/%d epochs, %s)", r.initial_epoch, cfg.epochs,
                 r.state.finish_reason or "complete")
        return Outcome(OK, r.state.finish_reason)
    shape_x = tf.TensorSpec((None, *s.image_shape), tf.float32)
    shape_y = tf.TensorSpec((None, *s.image_shape[:2]), tf.uint8)
    train_ds, val_ds = s.strategy.fit_inputs(
        tf,
        lambda: tf.data.Dataset.from_generator(
            lambda: train_batches(s.train_store, s.rows, cfg.batch_size, s.steps, spec.seed,
                                  s.rank, r.initial_epoch),
            output_signature=(shape_x, shape_y)).prefetch(2),
        lambda: tf.data.Dataset.from_generator(
            lambda: val_batches(s.val_store, s.val_rows, cfg.batch_size, s.val_steps),
            output_signature=(shape_x, shape_y)).prefetch(2),
        stores=(spec.train_store, spec.val_store, cfg.batch_size))
    log.info("training epochs %d..%d: %d steps x %d images x %d ranks, %s policy, %s",
             r.initial_epoch, cfg.epochs - 1, s.steps, cfg.batch_size, s.size, spec.policy,
             s.strategy.name)
    try:
        r.model.fit(train_ds, epochs=cfg.epochs, initial_epoch=r.initial_epoch,
                    steps_per_epoch=s.steps, validation_data=val_ds,
                    validation_steps=s.val_steps, callbacks=callbacks,
                    verbose=2 if s.rank == 0 else 0)
    except cb.StopRun as stop:
        log.warning("training stopped: %s", stop)
        for callback in callbacks:  # fit left early: flush and close TensorBoard's writers
            if isinstance(callback, tf.keras.callbacks.TensorBoard):
                callback.on_train_end()
        if stop.status == EARLY_STOPPED:
            return Outcome(OK, EARLY_STOPPED)
        return Outcome(stop.status, stop.status)
    return Outcome(OK, None)


def finalise(s: Setup, spec: RunSpec, cfg: TrainConfig, r: Resumed, checkpointer,
             outcome: Outcome) -> int:
    """Gather samples and weight digests from every rank; rank 0 writes the model, history,
    resources and ``run.json``; a preempted run keeps its checkpoint and exits 75.

    Ranks whose weights differ make the run ``failed`` with the reason in ``error`` (exit 0,
    the model still written for inspection); a preempted run only logs it, since its rerun
    restarts every rank from rank 0's checkpoint and is checked again at its end.
    """
    from segscale.models import input_requirements
    from segscale.provenance import describe_environment
    from segscale.train.sampler import write_rows

    samples = s.strategy.allgather_object(s.sampler.stop())
    if s.strategy.asynchronous:  # the updates the parameter servers applied
        s.strategy.details["updates"] = int(r.optimizer.iterations.numpy())
    startup = r.timing.times.startup_s if r.timing is not None else np.nan
    startup = float(s.comm.allreduce_max(np.array([startup]))[0])  # the slowest rank's
    digests = s.strategy.allgather_object(weights_digest(r.model.get_weights()))
    devices = s.strategy.allgather_object(rank_device(s.tf, s.hosts[s.rank],
                                                      s.strategy.local_rank))
    disagreement = weights_agree(digests)
    if disagreement:
        log.error("%s: %s", disagreement, digests)
    if outcome.status == PREEMPTED:
        checkpointer.write()  # the last completed epoch, if checkpoint_every skipped it
        if s.rank == 0 and s.strategy.writes_resources:
            write_resources(s.out, samples, write_rows)
        # No rank exits before rank 0's checkpoint is on disk: a launcher that stops the
        # others when one exits non-zero (srun --kill-on-bad-exit, mpirun) would kill the
        # writer.
        s.comm.allreduce_max(np.zeros(1))
        log.warning("preempted: checkpoint kept in %s; rerun to resume", s.ckpt_root)
        return EXIT_PREEMPTED
    if s.rank != 0:
        return EXIT_OK

    if outcome.status == DIVERGED and checkpointer.last is not None:
        r.model.set_weights(checkpointer.last.weights)  # export the last good epoch
    final = make_model(s, spec, cfg)
    final.set_weights(r.model.get_weights())
    with atomic_path(s.out / MODEL_FILE, suffix=".keras") as tmp:
        final.save(tmp)
    write_history(s.out / "history.csv", r.state.history)
    if s.strategy.writes_resources:
        write_resources(s.out, samples, write_rows)
    status = FAILED if disagreement else outcome.status
    record = base_record(spec, cfg, status, s.strategy.recorded_ranks, describe_environment())
    record.error = disagreement
    record.stop_reason = outcome.stop_reason
    record.divergence = r.state.divergence
    record.epochs_completed = len(r.state.history)
    record.train_time_s = float(sum(row["epoch_time_s"] for row in r.state.history))
    record.hosts = s.hosts
    record.resumed_from_epoch = r.initial_epoch or None
    record.steps_per_epoch = s.steps
    record.validation_steps = s.val_steps
    record.images_per_epoch = s.plan.images_per_epoch
    record.images_per_epoch_1gpu = s.plan.images_per_epoch_1gpu
    record.val_images_per_epoch = s.plan.val_images_per_epoch
    record.images_seen = record.epochs_completed * s.plan.images_per_epoch  # whole epochs
    record.global_batch = cfg.batch_size * s.size
    record.lr_target = s.schedule.target_lr
    record.image_shape = list(s.image_shape)
    record.model_input = input_requirements(spec.arch, s.image_shape, cfg.model, cfg.builder)
    record.n_classes = s.n_classes
    record.model_sha256 = sha256(s.out / MODEL_FILE)  # predict checks it: no stale model
    record.train_store, record.val_store = str(spec.train_store), str(spec.val_store)
    record.device = s.device
    record.rank_devices = devices
    record.strategy_details = s.strategy.details
    if s.strategy.name == "horovod":
        record.horovod = s.strategy.details
    record.fingerprint = s.fingerprint
    record.startup_s = startup if np.isfinite(startup) else None
    record.timeline = timeline_path(spec, cfg)
    record.rank_weight_digests = digests
    record.rank_seeds = rank_seeds(spec.seed, s.size)
    write_record(s.out / "run.json", record)
    # A finished run keeps no checkpoints: they only serve to resume an interrupted run, and
    # a forced rerun of a finished one (a re-measured scaling point) must train again.
    shutil.rmtree(s.ckpt_root, ignore_errors=True)
    log.info("run %s: %d/%d epochs, %.1f s", status, record.epochs_completed,
             cfg.epochs, record.train_time_s)
    return EXIT_OK


def timeline_path(spec: RunSpec, cfg: TrainConfig) -> str | None:
    """Where Horovod's timeline of this run goes: ``HOROVOD_TIMELINE`` when the launcher set
    it (``horovodrun --timeline-filename``), else ``<run dir>/timeline.json`` under
    ``hparams.timeline``; None: no timeline."""
    if os.environ.get(TIMELINE_ENV):
        return os.environ[TIMELINE_ENV]
    return str((spec.out / TIMELINE_FILE).resolve()) if cfg.timeline else None


def enable_timeline(spec: RunSpec, cfg: TrainConfig) -> None:
    """Under ``hparams.timeline``, set ``HOROVOD_TIMELINE`` in this rank's environment, which
    ``hvd.init()`` reads (so: before :func:`set_up`); a launcher's own setting wins."""
    path = timeline_path(spec, cfg)
    if path and not os.environ.get(TIMELINE_ENV):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        os.environ[TIMELINE_ENV] = path
    if path:
        log.info("Horovod timeline: %s", path)


def run(spec: RunSpec, cfg: TrainConfig, signals) -> int:
    """Train one run end to end; returns the process exit code."""
    enable_timeline(spec, cfg)
    if spec.strategy == PS_STRATEGY:
        return run_ps(spec, cfg, signals)
    return train(spec, cfg, signals)


def run_ps(spec: RunSpec, cfg: TrainConfig, signals) -> int:
    """``tf-ps``: the coordinator trains (:func:`train`) and, whatever the outcome, tells
    the servers its exit code and writes every process's resources
    (:func:`~segscale.train.strategies.ps.finish`); a worker or parameter server serves until
    then and leaves with that code (``os._exit``: TensorFlow's server threads never stop)."""
    from segscale.train.sampler import ResourceSampler, physical_gpu_index, write_rows
    from segscale.train.strategies import ps

    inter = ps_inter_threads(cfg.threads_per_rank)
    if inter:  # read by TensorFlow when it starts
        os.environ["TF_NUM_INTEROP_THREADS"] = str(inter)
    cluster = ps.join(spec.out, cfg.ps_tasks)
    if cluster.role == ps.CHIEF:
        set_rank(0)  # the run's only segscale rank: it writes the records, failures too
        setups: list[Setup] = []
        code = EXIT_FAILED
        try:
            # two workers of a node on one GPU are refused, as two Horovod ranks are
            conflict = gpu_conflict([GpuPlacement(*p) for p in ps.worker_placements(cluster)])
            if conflict:
                raise ValueError(f"tf-ps workers: {conflict}")
            code = train(spec, cfg, signals, cluster, setups)
        except Exception as err:
            log.exception("training failed")
            record_failure(spec, cfg, cluster.n_workers, err)
        finally:
            rows = setups[0].sampler.stop() if setups else []
            ps.finish(cluster, code, rows, spec.out, write_rows)
        # Leave at once: the cluster coordinator's threads would report every server that
        # exits after this as a failure.
        log.info("tf-ps coordinator done (exit %d)", code)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    import tensorflow as tf

    set_rank(f"{cluster.role}{cluster.index}")  # not rank 0: records are the chief's
    if signals is not None:
        signals.ignore()  # the coordinator decides when to stop
    host = socket.gethostname()
    gpu = None
    if cluster.role == ps.WORKER:
        local, count = cluster.local_worker()
        device, placement = configure_devices(tf, local, count, cfg.threads_per_rank, host,
                                              inter_threads=inter)
        gpu = physical_gpu_index(local) if placement.gpus_seen else None
        ps.publish_placement(cluster, tuple(placement))
    else:
        device, _ = configure_devices(tf, 0, 1, cfg.threads_per_rank, host, use_gpu=False,
                                      inter_threads=inter)
    log.info("tf-ps %s %d of %d processes on %s, %s", cluster.role, cluster.index,
             cluster.size, host, device)
    sampler = ResourceSampler(cfg.sample_interval_s, gpu).start()
    code = ps.serve(cluster, sampler)
    logging.shutdown()
    os._exit(code)


def ps_inter_threads(threads: int) -> int | None:
    """Inter-op threads of a tf-ps process under ``threads_per_rank`` (None: TensorFlow
    decides): at least 2, since with one a worker never finishes its first step (it runs the
    step and its input pipeline's iterator through the same pool)."""
    return max(threads, 2) if threads else None


def train(spec: RunSpec, cfg: TrainConfig, signals, cluster=None,
          setups: list | None = None) -> int:
    """set_up, resume, make_callbacks, fit, finalise (``setups`` receives the Setup)."""
    s = set_up(spec, cfg, cluster)
    if setups is not None:
        setups.append(s)
    r = resume(s, spec, cfg)
    callbacks, checkpointer = make_callbacks(s, cfg, r, signals)
    outcome = fit(s, spec, cfg, r, callbacks)
    code = finalise(s, spec, cfg, r, checkpointer, outcome)
    if code == EXIT_PREEMPTED and signals is not None:
        signals.ignore()  # every rank has passed the checkpoint barrier
    return code


def record_failure(spec: RunSpec, cfg: TrainConfig, n_ranks: int, err: BaseException) -> None:
    """Best effort: a ``run.json`` with ``status: failed`` and the error, for humans and the
    aggregator (a workflow manager discards it with the job's other outputs)."""
    try:
        from segscale.provenance import describe_environment

        record = base_record(spec, cfg, FAILED, n_ranks, describe_environment())
        record.error = f"{type(err).__name__}: {err}"
        record.rank_seeds = rank_seeds(spec.seed, n_ranks)
        write_record(spec.out / "run.json", record)
    except Exception:  # never mask the original error
        log.exception("could not record the failure in run.json")
