"""Training hyper-parameters (``--hparams`` JSON) and the identity of one run.

:class:`TrainConfig` is what ``run.json`` records under ``hparams``: every key has a default,
unknown keys are refused by name (a typo must not silently train with a default) and ranges
are checked before any rank starts TensorFlow. No TensorFlow import here.

A **preset** (``"preset": "thesis"``) names a set of values laid *under* the explicit keys:
``{"preset": "thesis", "lr": 2e-5}`` trains with the thesis's SGD and 5-epoch warmup but lr
2e-5. The expanded values and the preset's name are what ``run.json`` records.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from segscale.fileio import json_object_arg
from segscale.study import DEFAULT_STRATEGY, POLICIES, PS_STRATEGY, STRATEGIES
from segscale.train.schedules import (
    DECAY_SHAPES,
    DEFAULT_DECAY_FRACTION,
    THESIS_WARMUP_EPOCHS,
    Schedule,
    grescale_stages,
)

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("dice", "ce", "dice_ce")
#: Keras dtype policies ``hparams.precision`` may name (docs/training.md, "GPU path").
PRECISIONS = ("float32", "mixed_float16")

# Named presets. "thesis": GreScale's recommended initial settings (thesis 6.3.3: "SGD as a
# standard optimization algorithm", "a default warmup phase period of 5 epochs", "an initial
# Lr of 1e-5") and its default stage durations (6.3.2: warmup 5 epochs, then 4/7
# stabilisation and 3/7 decay of the remaining epochs). Nothing the thesis leaves open is in
# it: those keys keep their defaults (docs/training.md, "GreScale parameters").
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "thesis": MappingProxyType({
        "optimizer": "sgd",                          # 6.3.3
        "warmup_epochs": THESIS_WARMUP_EPOCHS,       # 6.3.3, 6.3.2
        "lr": 1e-5,                                  # 6.3.3
        "base_warmup_epochs": THESIS_WARMUP_EPOCHS,  # 6.3.2
        "decay_fraction": DEFAULT_DECAY_FRACTION,    # 6.3.2
    }),
})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; see docs/training.md for each key.

    Defaults follow the thesis U-Net setting (SGD, 100 epochs, batch 7 per GPU, lr 1e-5,
    GreScale's 5 warmup epochs). ``preset`` is the name of the :data:`PRESETS` entry
    :meth:`from_mapping` expanded (None: none); the dataclass records it, it does not expand
    it.
    """

    epochs: int = 100
    batch_size: int = 7
    lr: float = 1e-5
    optimizer: str = "sgd"
    momentum: float = 0.9
    loss: str = "dice_ce"
    warmup_epochs: int = 5
    stabilisation_factor: float = 0.5
    decay_coefficient: float = 0.1
    decay_fraction: float = DEFAULT_DECAY_FRACTION
    base_warmup_epochs: int = THESIS_WARMUP_EPOCHS
    decay_shape: str = "exponential"
    preset: str | None = None
    step_decay_epochs: tuple[int, ...] = ()
    step_decay_gamma: float = 0.1
    fp16_allreduce: bool = False
    threads_per_rank: int = 0
    model: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    builder: str | None = None
    divergence_factor: float = 10.0
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    sync_every_steps: int = 10
    sample_interval_s: float = 5.0
    tensorboard: bool = True
    timeline: bool = False  # Horovod timeline in <run dir>/timeline.json
    precision: str = "float32"  # Keras dtype policy; mixed_float16 adds loss scaling
    xla: bool = False  # XLA-compile the training and validation steps (one rank only)
    ps_tasks: int = 1  # tf-ps: parameter server processes (the launch has N + ps_tasks + 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", MappingProxyType(dict(self.model)))
        object.__setattr__(self, "step_decay_epochs",
                           tuple(sorted(int(e) for e in self.step_decay_epochs)))
        _validate(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a plain mapping (parsed JSON), refusing unknown keys by name.

        ``step_decay`` may be given as ``{"epochs": [...], "gamma": g}`` as well as with the
        flat ``step_decay_epochs`` / ``step_decay_gamma`` keys. ``preset`` (a
        :data:`PRESETS` name) lays the preset's values under the explicit keys: an explicit
        key always wins.

        Raises:
            ValueError: an unknown key or preset, a value of the wrong type or out of range.
        """
        values = dict(mapping or {})
        preset = values.get("preset")
        if preset is not None:
            if not isinstance(preset, str) or preset not in PRESETS:
                raise ValueError(f"hparams.preset: unknown {preset!r}, expected one of "
                                 f"{sorted(PRESETS)} or null")
            values = {**PRESETS[preset], **values}
        if "step_decay" in values:
            sd = values.pop("step_decay") or {}
            if not isinstance(sd, Mapping) or set(sd) - {"epochs", "gamma"}:
                raise ValueError("hparams.step_decay: expected {'epochs': [...], 'gamma': g}, "
                                 f"got {sd!r}")
            values.setdefault("step_decay_epochs", sd.get("epochs", ()))
            if "gamma" in sd:
                values.setdefault("step_decay_gamma", sd["gamma"])
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise ValueError(f"hparams: unknown key {key!r}; known keys: "
                                 f"{', '.join(sorted(fields))}")
        return cls(**{k: _coerce(k, fields[k].type, v) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what run.json records); round-trips through from_mapping."""
        # dataclasses.asdict cannot deep-copy a mappingproxy, so build the dict by hand
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = dict(self.model)
        out["step_decay_epochs"] = list(self.step_decay_epochs)
        return out

    def check_strategy(self, strategy: str) -> None:
        """Refuse what ``strategy`` cannot do with these hyper-parameters.

        Raises:
            ValueError: an unknown strategy, or a Horovod-only option (``fp16_allreduce`` is
                Horovod's gradient compression, ``timeline`` Horovod's timeline) under another.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}, expected one of {STRATEGIES}")
        if strategy == "horovod":
            return
        if strategy == PS_STRATEGY:
            refused = [key for key, on in (
                ("fp16_allreduce", self.fp16_allreduce), ("timeline", self.timeline),
                ("xla", self.xla), ("precision", self.precision == "mixed_float16")) if on]
            if refused:
                raise ValueError(f"hparams {', '.join(refused)}: not under tf-ps "
                                 "(fp16_allreduce and timeline are Horovod's gradient "
                                 "compression and timeline; xla and mixed_float16 are "
                                 "untested with parameter servers): set fp16_allreduce, "
                                 "timeline and xla false and precision float32, or leave "
                                 "this strategy out")
            return
        only_horovod = [key for key, on in (("fp16_allreduce", self.fp16_allreduce),
                                            ("timeline", self.timeline)) if on]
        if only_horovod:
            raise ValueError(f"hparams {', '.join(only_horovod)}: Horovod's (gradient "
                             f"compression, timeline); {strategy} has no such option: set "
                             "them false or leave this strategy out")

    def grescale_stages(self) -> tuple[int, int, int]:
        """GreScale's (warmup, stabilisation, decay) epochs under this config.

        Raises:
            ValueError: no stabilisation epoch left (the message names the keys).
        """
        try:
            return grescale_stages(self.epochs, self.warmup_epochs, self.decay_fraction,
                                   self.base_warmup_epochs)
        except ValueError as err:
            raise ValueError(f"hparams: {err}") from None

    def schedule(self, policy: str, n_ranks: int, steps_per_epoch: int) -> Schedule:
        """The lr schedule this config gives under ``policy`` on ``n_ranks`` ranks.

        Raises:
            ValueError: under ``grescale``, stage lengths with no stabilisation epoch.
        """
        if policy == "grescale":
            self.grescale_stages()
        return Schedule(policy=policy, base_lr=self.lr, n_ranks=n_ranks, epochs=self.epochs,
                        steps_per_epoch=steps_per_epoch, warmup_epochs=self.warmup_epochs,
                        stabilisation_factor=self.stabilisation_factor,
                        decay_coefficient=self.decay_coefficient,
                        decay_fraction=self.decay_fraction,
                        base_warmup_epochs=self.base_warmup_epochs,
                        decay_shape=self.decay_shape,
                        step_decay_epochs=self.step_decay_epochs,
                        step_decay_gamma=self.step_decay_gamma)


def _coerce(key: str, annotation: str, value: Any) -> Any:
    """Check a JSON value's type against the field annotation (ints are accepted as floats)."""
    ann = str(annotation)
    optional = "None" in ann
    if value is None:
        if optional:
            return None
        raise ValueError(f"hparams.{key}: must not be null")
    if ann.startswith("bool"):
        ok = isinstance(value, bool)
    elif ann.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif ann.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif ann.startswith("str"):
        ok = isinstance(value, str)
    elif ann.startswith("tuple"):
        ok = (isinstance(value, (list, tuple))
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        value = tuple(value) if ok else value
    elif ann.startswith("Mapping"):
        ok = isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    else:  # pragma: no cover - every field is covered above
        ok = True
    if not ok:
        raise ValueError(f"hparams.{key}: expected {ann}, got {value!r}")
    return value


def _validate(c: TrainConfig) -> None:
    """Range checks; the message names the offending key."""
    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ValueError(f"hparams.{key}: must be {expected}, got {getattr(c, key)!r}")

    need("epochs", c.epochs >= 1, ">= 1")
    need("batch_size", c.batch_size >= 1, ">= 1")
    need("lr", c.lr > 0 and math.isfinite(c.lr), "> 0 and finite")
    need("optimizer", c.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}")
    need("momentum", 0 <= c.momentum < 1, "in [0, 1)")
    need("loss", c.loss in LOSSES, f"one of {LOSSES}")
    need("warmup_epochs", c.warmup_epochs >= 0, ">= 0")
    need("stabilisation_factor", 0 < c.stabilisation_factor <= 1, "in (0, 1]")
    need("decay_coefficient", c.decay_coefficient >= 0, ">= 0")
    need("decay_fraction", 0 <= c.decay_fraction <= 1, "in [0, 1]")
    need("base_warmup_epochs", c.base_warmup_epochs >= 0, ">= 0")
    need("decay_shape", c.decay_shape in DECAY_SHAPES, f"one of {DECAY_SHAPES}")
    need("preset", c.preset is None or c.preset in PRESETS, f"null or one of {sorted(PRESETS)}")
    need("step_decay_epochs", all(e >= 1 for e in c.step_decay_epochs), "epochs >= 1")
    need("step_decay_gamma", 0 < c.step_decay_gamma <= 1, "in (0, 1]")
    need("threads_per_rank", c.threads_per_rank >= 0, ">= 0 (0: TensorFlow decides)")
    need("divergence_factor", c.divergence_factor == 0 or c.divergence_factor > 1,
         "0 (off) or > 1")
    need("early_stopping_patience", c.early_stopping_patience >= 0, ">= 0 (0: off)")
    need("early_stopping_min_delta", c.early_stopping_min_delta >= 0, ">= 0")
    need("steps_per_epoch", c.steps_per_epoch is None or c.steps_per_epoch >= 1,
         "null or >= 1")
    need("validation_steps", c.validation_steps is None or c.validation_steps >= 1,
         "null or >= 1")
    need("checkpoint_every", c.checkpoint_every >= 1, ">= 1")
    need("keep_checkpoints", c.keep_checkpoints >= 1, ">= 1")
    need("sync_every_steps", c.sync_every_steps >= 1, ">= 1")
    need("sample_interval_s", c.sample_interval_s > 0, "> 0")
    need("builder", c.builder is None or ":" in c.builder,
         "null or 'module:function' / 'path/file.py:function'")
    need("precision", c.precision in PRECISIONS, f"one of {PRECISIONS}")
    need("ps_tasks", c.ps_tasks >= 1, ">= 1 (tf-ps: parameter servers)")


@dataclass(frozen=True)
class StepPlan:
    """Steps per rank and the images they make, for one epoch (:func:`plan_steps`)."""

    steps: int                  # training steps of each rank
    val_steps: int              # validation batches of each rank
    images_per_epoch: int       # trained on by all ranks together: ranks x batch x steps
    images_per_epoch_1gpu: int  # what the same store, batch and cap give one GPU
    val_images_per_epoch: int   # validated by all ranks together

    @property
    def equal_work(self) -> bool:
        """Whether this epoch trains on as many images as the 1-GPU run's."""
        return self.images_per_epoch == self.images_per_epoch_1gpu


def plan_steps(n_train: int, n_val: int, batch_size: int, n_ranks: int,
               steps_per_epoch: int | None = None,
               validation_steps: int | None = None) -> StepPlan:
    """Steps per rank so every GPU count does the 1-GPU run's work (strong scaling).

    The per-GPU batch is fixed and ``steps_per_epoch`` / ``validation_steps`` are *global*
    caps, counted in batches of the 1-GPU run. One GPU takes ``G = min(cap, n_train //
    batch)`` steps; each of N ranks takes ``max(1, G // N)``, never more than its shard holds
    (``n_train // N`` rows, :meth:`~segscale.data.store.SliceStore.shard`). Where N divides
    G, the N ranks train on exactly the 1-GPU run's ``G x batch`` images per epoch; where it
    does not, on fewer, by less than one global batch (``N x batch``): floor, not ceil, so a
    cap is never exceeded (except ``G < N``, where every rank still takes one step).
    Without a cap ``G // N == n_train // (batch x N)``: the whole shard in full batches.
    Validation keeps its last partial batch: uncapped, each rank validates its whole shard.

    Raises:
        ValueError: a batch larger than a rank's shard, or fewer validation rows than ranks.
    """
    shard = n_train // n_ranks
    if shard < batch_size:
        raise ValueError(f"hparams.batch_size: {batch_size} exceeds this rank's shard of "
                         f"{shard} slices ({n_train} over {n_ranks} ranks)")
    one_gpu = n_train // batch_size
    global_steps = min(one_gpu, steps_per_epoch or one_gpu)
    steps = min(max(1, global_steps // n_ranks), shard // batch_size)
    val_shard = n_val // n_ranks
    if val_shard == 0:
        raise ValueError(f"{n_val} validation slices cannot feed {n_ranks} ranks")
    val_all = math.ceil(val_shard / batch_size)
    val_steps = val_all if validation_steps is None else min(
        val_all, max(1, validation_steps // n_ranks))
    return StepPlan(steps=steps, val_steps=val_steps,
                    images_per_epoch=n_ranks * batch_size * steps,
                    images_per_epoch_1gpu=global_steps * batch_size,
                    val_images_per_epoch=n_ranks * min(val_steps * batch_size, val_shard))


@dataclass(frozen=True)
class RunSpec:
    """Where a run reads and writes, and what it is (the CLI arguments other than hparams)."""

    train_store: Path
    val_store: Path
    out: Path
    dataset: str
    arch: str
    policy: str
    seed: int
    repeat: int | None = None
    strategy: str = DEFAULT_STRATEGY

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"--policy: unknown {self.policy!r}, expected one of {POLICIES}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy: unknown {self.strategy!r}, expected one of "
                             f"{STRATEGIES}")
        if self.seed < 0:
            raise ValueError(f"--seed: must be >= 0, got {self.seed}")
        for name in ("train_store", "val_store", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v
                for k, v in dataclasses.asdict(self).items()}


def parse_hparams(text: str | None) -> TrainConfig:
    """Parse the ``--hparams`` JSON string (or ``@file.json``) into a :class:`TrainConfig`.

    Raises:
        ValueError: invalid JSON, a non-object, or any :meth:`TrainConfig.from_mapping` error.
    """
    if not text:
        return TrainConfig()
    mapping = json_object_arg(text, "--hparams")
    return TrainConfig.from_mapping(mapping)
