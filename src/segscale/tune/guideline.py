"""The GreScale guideline (thesis 6.3.3, fig. 6.3) as a pure state machine.

The thesis tuned distributed runs by hand: start from GreScale defaults; below 12 GPUs train
once and stop; from 12 GPUs on, walk five ordered actions (decrease the initial lr, increase
the lr-decay coefficient, increase the warmup, increase the decay phase, change the
optimizer), repeating an action while it improves the model and moving to the next one when
it does not, until the 1-GPU baseline is reached and confirmed by one more training
("model validation"). Here every step of that walk is a function of data: the workflow trains
iteration ``i`` with :attr:`Decision.hparams`, evaluates it, and asks :func:`next_step` what to
train next. Nothing here imports TensorFlow or Snakemake.

Definitions (docs/guideline.md explains the choices):

* **Scores** are the evaluation ``summary`` values named in :attr:`GuidelineConfig.metrics`
  (default Dice, mean accuracy, mean IoU: the thesis's "descending order of priority", 6.4).
  NaN, or a run that ``diverged``, ranks below every number.
* :func:`compare` is **lexicographic with a tolerance**: the first metric whose difference
  exceeds its tolerance decides; if every metric is within tolerance the two are tied.
* **Reached the baseline**: ``compare(scores, baseline, reach_tolerance) >= 0`` (a tie counts).
  The thesis gives no tolerance; the defaults (Dice 0.2 pp, MA and mIoU 0.5 pp) were chosen
  to fit its tables 6.1-6.10: with them the rule makes every decision of those tables.
* **Improved**: ``compare(scores, previous iteration, improve_tolerance) > 0`` (a tie does not
  count). The thesis gives no tolerance either; the default 0 (the raw Dice, as the tables
  read) also fits them, 0.1 pp on Dice does not (table 6.1).

:data:`SOURCES` says, for every :class:`GuidelineConfig` key, whether its default is the
thesis's (with the section) or ours; docs/guideline.md shows the same table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from segscale.study import DIVERGED, FAILED
from segscale.train.config import OPTIMIZERS, PRESETS, TrainConfig
from segscale.train.schedules import NOT_IN_THESIS, grescale_decay_epochs, grescale_max_warmup

ACTIONS = (
    "decrease_lr",
    "increase_decay_coefficient",
    "increase_warmup",
    "increase_decay_fraction",
    "change_optimizer",
)
DEFAULTS = "defaults"  # label of a run with no action applied
VALIDATION = "validation"  # label of the confirmation run
METRICS = ("dice", "mean_accuracy", "mean_iou")
# The GreScale defaults of 6.3.3 (SGD, 5 warmup epochs, lr 1e-5) and the 6.3.2 stage split:
# the "thesis" hparams preset, named and expanded, so run.json records both.
THESIS_START = MappingProxyType({"preset": "thesis", **PRESETS["thesis"]})
# Not in the thesis: chosen so that the rule replays tables 6.1-6.10 (test_guideline.py,
# test_thesis_tables_replay and test_tolerances_fitted_to_the_tables).
REACH_TOLERANCE = MappingProxyType({"dice": 0.002, "mean_accuracy": 0.005, "mean_iou": 0.005})
FITTED = "not specified by the thesis; our default, chosen to fit tables 6.1-6.10"

# Where each GuidelineConfig default comes from (docs/guideline.md has the same table).
SOURCES = MappingProxyType({
    "min_gpus": "thesis §6.3.3, fig. 6.3 (12 GPUs)",
    "max_iterations": NOT_IN_THESIS,
    "max_repeats": NOT_IN_THESIS + " (the thesis repeats while the model improves)",
    "train_defaults": "thesis fig. 6.3 (false); tables 6.4 and 6.8 trained the defaults",
    "actions": "thesis §6.3.3, fig. 6.3 (the five actions, in order)",
    "metrics": "thesis §6.4 (Dice, MA, mean IoU in descending priority)",
    "reach_tolerance": FITTED,
    "improve_tolerance": FITTED,
    "lr_factor": NOT_IN_THESIS + " (the thesis: fixed small steps, §6.3.3)",
    "min_lr": "thesis §6.3.3 (an lr above 1e-6, after [159])",
    "decay_coefficient_step": NOT_IN_THESIS + " (the thesis: fixed small steps, §6.3.3)",
    "warmup_step": NOT_IN_THESIS + " (the thesis: fixed small steps, §6.3.3)",
    "decay_fraction_step": NOT_IN_THESIS + " (the thesis: fixed small steps, §6.3.3)",
    "optimizer_change": NOT_IN_THESIS + " (the thesis: change the optimizer, §6.3.3)",
    "start": "thesis §6.3.3 (SGD, 5 warmup epochs, lr 1e-5) and §6.3.2 (stage split): "
             "preset thesis",
    "seed": NOT_IN_THESIS,
})

# Why a decision was made: a stable code for tables and tests (the message says it in words).
REASONS = (
    "start",  # the first plan, before any training
    "below_threshold",  # fewer GPUs than min_gpus: trained once, done
    "baseline_reached",  # reached the baseline: retrain once with the same settings
    "validated",  # the confirmation run reached the baseline too: done
    "budget_spent",  # max_iterations trainings done
    "actions_exhausted",  # no applicable action left
    "first_action",  # no previous iteration to compare with: repeat the action
    "improved",  # better than the previous iteration: repeat the action
    "not_improved",  # not better (tie, worse, NaN): next action
    "repeat_limit",  # improved, but repeated max_repeats times already: next action
    "start_tuning",  # the defaults were trained and missed the baseline: first action
)


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class GuidelineConfig:
    """Guideline settings (config key ``guideline``); see docs/guideline.md for each.

    Attributes:
        min_gpus: from this many GPUs on, tune; below, train once (thesis: 12).
        max_iterations: trainings allowed in one loop, confirmation run included.
        max_repeats: consecutive applications of one action before moving on.
        train_defaults: at ``n >= min_gpus``, train the untouched defaults first (thesis
            tables 6.4, 6.8) instead of starting with the first action (fig. 6.3).
        actions: the ordered actions (subset of :data:`ACTIONS`).
        metrics: ``metrics.json`` summary keys, in priority order.
        reach_tolerance: per metric, how far below the baseline still counts as reached.
        improve_tolerance: per metric, the margin an improvement must exceed.
        lr_factor: ``decrease_lr`` multiplies the lr by this, in (0, 1).
        min_lr: ``decrease_lr`` never goes below this (thesis: stay above 1e-6).
        decay_coefficient_step: added by ``increase_decay_coefficient``.
        warmup_step: epochs added by ``increase_warmup`` (capped so that GreScale keeps one
            stabilisation epoch).
        decay_fraction_step: added by ``increase_decay_fraction`` (capped at 1).
        optimizer_change: ``change_optimizer``'s mapping, current -> next.
        start: hparams laid over the run's own to make the GreScale defaults (default: the
            ``thesis`` preset).
        seed: training seed of the tuning runs; the k-th confirmation run uses seed + k.

    :data:`SOURCES` gives each default's source (thesis section, or ours).
    """

    min_gpus: int = 12
    max_iterations: int = 10
    max_repeats: int = 3
    train_defaults: bool = False
    actions: tuple[str, ...] = ACTIONS
    metrics: tuple[str, ...] = METRICS
    reach_tolerance: Mapping[str, float] = field(default_factory=lambda: dict(REACH_TOLERANCE))
    improve_tolerance: Mapping[str, float] = field(default_factory=dict)
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    decay_coefficient_step: float = 0.05
    warmup_step: int = 2
    decay_fraction_step: float = 1 / 7
    optimizer_change: Mapping[str, str] = field(default_factory=lambda: {"sgd": "adam"})
    start: Mapping[str, Any] = field(default_factory=lambda: dict(THESIS_START))
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("reach_tolerance", "improve_tolerance", "optimizer_change", "start"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        _validate_config(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> GuidelineConfig:
        """Build from parsed JSON/YAML, refusing unknown keys by name.

        Raises:
            ValueError: an unknown key or an invalid value (the message names the key).
        """
        values = dict(mapping or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"guideline: unknown key(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as err:  # e.g. a list where a number was expected
            raise ValueError(f"guideline: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, tuple)
                else v for k, v in out.items()}

    def tolerance(self, kind: str, metric: str) -> float:
        """The ``kind`` ("reach" or "improve") tolerance of ``metric`` (0 when unset)."""
        table = self.reach_tolerance if kind == "reach" else self.improve_tolerance
        return float(table.get(metric, 0.0))


def _validate_config(c: GuidelineConfig) -> None:
    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ValueError(f"guideline.{key}: must be {expected}, got {getattr(c, key)!r}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    need("min_gpus", is_int(c.min_gpus) and c.min_gpus >= 1, "an integer >= 1")
    need("max_iterations", is_int(c.max_iterations) and c.max_iterations >= 1, "an integer >= 1")
    need("max_repeats", is_int(c.max_repeats) and c.max_repeats >= 1, "an integer >= 1")
    need("train_defaults", isinstance(c.train_defaults, bool), "true or false")
    need("actions", all(a in ACTIONS for a in c.actions) and len(set(c.actions)) == len(
        c.actions), f"distinct names from {ACTIONS}")
    need("metrics", bool(c.metrics) and all(isinstance(m, str) and m for m in c.metrics)
         and len(set(c.metrics)) == len(c.metrics), "a non-empty list of distinct names")
    for key in ("reach_tolerance", "improve_tolerance"):
        table = getattr(c, key)
        need(key, set(table) <= set(c.metrics), f"keyed by metrics {list(c.metrics)}")
        need(key, all(is_num(v) and v >= 0 for v in table.values()), "finite and >= 0")
    need("lr_factor", is_num(c.lr_factor) and 0 < c.lr_factor < 1, "in (0, 1)")
    need("min_lr", is_num(c.min_lr) and c.min_lr >= 0, ">= 0")
    need("decay_coefficient_step", is_num(c.decay_coefficient_step)
         and c.decay_coefficient_step > 0, "> 0")
    need("warmup_step", is_int(c.warmup_step) and c.warmup_step >= 1, "an integer >= 1")
    need("decay_fraction_step", is_num(c.decay_fraction_step)
         and 0 < c.decay_fraction_step <= 1, "in (0, 1]")
    need("optimizer_change", all(k in OPTIMIZERS and v in OPTIMIZERS and k != v
                                 for k, v in c.optimizer_change.items()),
         f"a mapping between different optimizers of {OPTIMIZERS}")
    need("seed", is_int(c.seed) and c.seed >= 0, "an integer >= 0")
    try:
        TrainConfig.from_mapping(c.start)
    except ValueError as err:
        raise ValueError(f"guideline.start: {err}") from None


# ---- comparing scores ----------------------------------------------------------------------

def compare(a: Mapping[str, float], b: Mapping[str, float], metrics: Sequence[str],
            tolerance: Mapping[str, float] | None = None) -> int:
    """Lexicographic comparison of two score sets, metric by metric, with tolerances.

    Args:
        a, b: scores by metric name (higher is better).
        metrics: the names to compare, most important first.
        tolerance: per metric, differences with ``|a - b| <= tol`` are ties; missing = 0.

    Returns:
        1 if ``a`` is better, -1 if worse, 0 if tied on every metric. The first metric that
        is not tied decides. NaN ranks below every number (a diverged run is worse than any
        trained one); two NaNs tie.

    Raises:
        KeyError: a metric missing from ``a`` or ``b``.
    """
    tolerance = tolerance or {}
    for name in metrics:
        x, y = float(a[name]), float(b[name])
        if math.isnan(x) or math.isnan(y):
            if math.isnan(x) and math.isnan(y):
                continue
            return -1 if math.isnan(x) else 1
        tol = float(tolerance.get(name, 0.0))
        if x - y > tol:
            return 1
        if y - x > tol:
            return -1
    return 0


def scores_from_metrics(doc: Mapping[str, Any], metrics: Sequence[str],
                        extra: Sequence[str] = ()) -> dict[str, float]:
    """The scores of one evaluated run (a parsed ``metrics.json``).

    Args:
        doc: ``metrics.json`` content: ``status`` and a ``summary`` of floats.
        metrics: names the guideline compares; they must be in the summary.
        extra: further names recorded when present (e.g. ``pixel_accuracy``), for tables.

    Returns:
        ``{name: float}``; null values become NaN. A run whose ``status`` is ``diverged``
        or ``failed`` scores NaN on every metric, so it is worse than any trained run: its
        settings are not ones to keep, whatever its last good weights scored.

    Raises:
        ValueError: no ``summary`` object, or a metric missing from it (named).
    """
    summary = doc.get("summary")
    if not isinstance(summary, Mapping):
        raise ValueError("no 'summary' object")
    broken = doc.get("status") in (DIVERGED, FAILED)
    out: dict[str, float] = {}
    for name in (*metrics, *(e for e in extra if e not in metrics)):
        if name not in summary:
            if name in metrics:
                raise ValueError(f"summary has no {name!r} (has: {sorted(summary)})")
            continue
        value = summary[name]
        if value is not None and not isinstance(value, (int, float)):
            raise ValueError(f"summary.{name}: expected a number, got {value!r}")
        out[name] = math.nan if broken or value is None else float(value)
    return out


# ---- state and decisions -------------------------------------------------------------------

@dataclass(frozen=True)
class IterationRecord:
    """One trained iteration: what it trained with and how it scored.

    ``reached``: compared with the baseline; ``improved``: with the previous iteration (None
    for the first one).
    """

    iteration: int
    action: str
    seed: int
    hparams: Mapping[str, Any]
    scores: Mapping[str, float]
    reached: bool
    improved: bool | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hparams", _frozen(self.hparams))
        object.__setattr__(self, "scores", _frozen(self.scores))

    def to_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "action": self.action, "seed": self.seed,
                "hparams": dict(self.hparams), "scores": dict(self.scores),
                "reached": self.reached, "improved": self.improved}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IterationRecord:
        scores = {k: math.nan if v is None else float(v) for k, v in d["scores"].items()}
        return cls(int(d["iteration"]), str(d["action"]), int(d["seed"]), d["hparams"], scores,
                   bool(d["reached"]), d["improved"])


@dataclass(frozen=True)
class GuidelineState:
    """Where the loop stands: the plan of iteration ``iteration`` and what came before.

    Attributes:
        n_gpus: GPUs (Horovod ranks) being tuned.
        iteration: index of the iteration this state plans (0-based; every training counts,
            the confirmation run too).
        action_index: index into ``config.actions`` of the action behind the current
            settings; None while only the defaults were trained. Never decreases.
        streak: consecutive applications of that action.
        validating: the planned iteration is a confirmation run.
        validations: confirmation runs planned so far (their seeds are seed + k).
        base: the starting hparams (the run's own with ``config.start`` laid over).
        overrides: what the guideline changed, laid over ``base``.
        seed: the training seed of the planned iteration.
        label: what the planned iteration is: ``defaults``, an action name, ``validation``.
        history: the iterations trained so far, oldest first.
    """

    n_gpus: int
    iteration: int
    action_index: int | None
    streak: int
    validating: bool
    validations: int
    base: Mapping[str, Any]
    overrides: Mapping[str, Any]
    seed: int
    label: str
    history: tuple[IterationRecord, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", _frozen(self.base))
        object.__setattr__(self, "overrides", _frozen(self.overrides))
        object.__setattr__(self, "history", tuple(self.history))

    @property
    def hparams(self) -> dict[str, Any]:
        """The hparams the planned iteration trains with (``--hparams`` of segscale.train)."""
        return {**self.base, **self.overrides}

    def to_dict(self) -> dict[str, Any]:
        return {"n_gpus": self.n_gpus, "iteration": self.iteration,
                "action_index": self.action_index, "streak": self.streak,
                "validating": self.validating, "validations": self.validations,
                "base": dict(self.base), "overrides": dict(self.overrides), "seed": self.seed,
                "label": self.label, "history": [r.to_dict() for r in self.history]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GuidelineState:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a missing or mistyped key (named).
        """
        try:
            return cls(int(d["n_gpus"]), int(d["iteration"]),
                       None if d["action_index"] is None else int(d["action_index"]),
                       int(d["streak"]), bool(d["validating"]), int(d["validations"]),
                       d["base"], d["overrides"], int(d["seed"]), str(d["label"]),
                       tuple(IterationRecord.from_dict(r) for r in d["history"]))
        except KeyError as err:
            raise ValueError(f"state: missing key {err}") from None
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"state: malformed ({err})") from None


@dataclass(frozen=True)
class Comparison:
    """How an iteration compared with the baseline and with the previous iteration.

    ``*_order``: the :func:`compare` result (1 better, 0 tie, -1 worse); ``*_delta``: the
    metric differences, scores minus reference.
    """

    scores: Mapping[str, float]
    baseline: Mapping[str, float]
    previous: Mapping[str, float] | None
    baseline_order: int
    previous_order: int | None
    reached: bool
    improved: bool | None

    def to_dict(self, metrics: Sequence[str]) -> dict[str, Any]:
        def delta(ref: Mapping[str, float] | None) -> dict[str, float] | None:
            return None if ref is None else {m: self.scores[m] - ref[m] for m in metrics}

        return {"metrics": list(metrics), "scores": dict(self.scores),
                "baseline": dict(self.baseline),
                "previous": None if self.previous is None else dict(self.previous),
                "baseline_delta": delta(self.baseline), "previous_delta": delta(self.previous),
                "baseline_order": self.baseline_order, "previous_order": self.previous_order,
                "reached": self.reached, "improved": self.improved}


@dataclass(frozen=True)
class Decision:
    """What to do after an iteration (or at the start).

    Attributes:
        state: the next state; its ``hparams``, ``seed`` and ``label`` describe the next
            training, or, when ``done``, the last one.
        done: no further training.
        reason: one of :data:`REASONS`.
        message: the reason in words, for logs and decision.json.
        comparison: None for the start plan.
        best_iteration: index of the best-scoring iteration so far (lexicographic, no
            tolerance, earliest on ties); None before any training.
    """

    state: GuidelineState
    done: bool
    reason: str
    message: str
    comparison: Comparison | None = None
    best_iteration: int | None = None

    @property
    def action(self) -> str | None:
        """What the next training is (``defaults``, an action, ``validation``); None if done."""
        return None if self.done else self.state.label

    @property
    def hparams(self) -> dict[str, Any]:
        return self.state.hparams

    def to_dict(self, config: GuidelineConfig) -> dict[str, Any]:
        """decision.json content (docs/guideline.md)."""
        scored = self.state.history[-1].iteration if self.state.history else None
        return {
            "iteration": scored,
            "next_iteration": None if self.done else self.state.iteration,
            "done": self.done,
            "reason": self.reason,
            "message": self.message,
            "action": self.action,
            "hparams": self.hparams,
            "seed": self.state.seed,
            "comparison": None if self.comparison is None
            else self.comparison.to_dict(config.metrics),
            "best_iteration": self.best_iteration,
            "state": self.state.to_dict(),
            "config": config.to_dict(),
        }


# ---- actions -------------------------------------------------------------------------------

def apply_action(name: str, hparams: Mapping[str, Any],
                 config: GuidelineConfig) -> dict[str, Any] | None:
    """The hparams changes one action makes, or None when it cannot change anything.

    Args:
        name: one of :data:`ACTIONS`.
        hparams: the current (possibly sparse) training hparams; missing keys take the
            :class:`~segscale.train.config.TrainConfig` defaults.
        config: the step sizes.

    Returns:
        ``{key: new value}``. None when the action is not applicable: the lr would drop
        below ``min_lr``; the warmup cannot grow without leaving GreScale no stabilisation
        epoch (the decay keeps its length, so a longer warmup takes its epochs from the
        stabilisation: :func:`~segscale.train.schedules.grescale_stages`); a larger decay
        fraction would not lengthen the decay stage (short runs; a fraction of 1) or would
        leave no stabilisation epoch; the optimizer has no entry in ``optimizer_change``.

    Raises:
        ValueError: an unknown action, or hparams :class:`TrainConfig` refuses.
    """
    c = TrainConfig.from_mapping(hparams)
    if name == "decrease_lr":
        new = c.lr * config.lr_factor
        return {"lr": new} if new >= config.min_lr else None
    if name == "increase_decay_coefficient":
        return {"decay_coefficient": round(c.decay_coefficient + config.decay_coefficient_step,
                                           12)}
    if name == "increase_warmup":
        longest = grescale_max_warmup(c.epochs, c.decay_fraction, c.base_warmup_epochs)
        new = min(c.warmup_epochs + config.warmup_step, longest)
        return {"warmup_epochs": new} if new > c.warmup_epochs else None
    if name == "increase_decay_fraction":
        new = min(1.0, c.decay_fraction + config.decay_fraction_step)
        decay = grescale_decay_epochs(c.epochs, new, c.base_warmup_epochs)
        longer = decay > grescale_decay_epochs(c.epochs, c.decay_fraction, c.base_warmup_epochs)
        fits = c.epochs - c.warmup_epochs - decay >= 1
        return {"decay_fraction": new} if longer and fits else None
    if name == "change_optimizer":
        new = config.optimizer_change.get(c.optimizer)
        return {"optimizer": new} if new is not None else None
    raise ValueError(f"unknown action {name!r}, expected one of {ACTIONS}")


def _first_applicable(start: int, hparams: Mapping[str, Any], config: GuidelineConfig
                      ) -> tuple[int, dict[str, Any], list[str]] | None:
    """The first action from index ``start`` on that changes something, its changes, and
    the names skipped because they could not; None when none is left."""
    skipped: list[str] = []
    for index in range(start, len(config.actions)):
        name = config.actions[index]
        changes = apply_action(name, hparams, config)
        if changes is not None:
            return index, changes, skipped
        skipped.append(name)
    return None


def best_iteration(history: Sequence[IterationRecord], metrics: Sequence[str]) -> int | None:
    """Index of the best-scoring record (lexicographic, no tolerance, earliest on ties)."""
    best: IterationRecord | None = None
    for record in history:
        if best is None or compare(record.scores, best.scores, metrics) > 0:
            best = record
    return None if best is None else best.iteration


# ---- the loop ------------------------------------------------------------------------------

def start(hparams: Mapping[str, Any], n_gpus: int, config: GuidelineConfig) -> Decision:
    """The plan of iteration 0: the GreScale defaults, or the first action applied to them.

    Args:
        hparams: the run's own hparams (architecture, dataset lr); ``config.start`` is laid
            over them to make the defaults.
        n_gpus: GPUs (ranks) to tune, >= 1.
        config: guideline settings.

    Returns:
        A not-done :class:`Decision` with reason ``start``. Iteration 0 trains the defaults
        when ``n_gpus < min_gpus`` (it is then the only training) or ``train_defaults``;
        otherwise the first applicable action is already applied (fig. 6.3; thesis tables
        6.1-6.3, 6.5-6.7, 6.9, 6.10). With no applicable action it trains the defaults.

    Raises:
        ValueError: ``n_gpus < 1``, or hparams ``segscale.train`` would refuse (GreScale
            stages with no stabilisation epoch included).
    """
    if n_gpus < 1:
        raise ValueError(f"n_gpus: must be >= 1, got {n_gpus}")
    base = {**hparams, **config.start}
    TrainConfig.from_mapping(base).grescale_stages()  # the loop trains grescale
    state = GuidelineState(n_gpus=n_gpus, iteration=0, action_index=None, streak=0,
                           validating=False, validations=0, base=base, overrides={},
                           seed=config.seed, label=DEFAULTS)
    tune = n_gpus >= config.min_gpus
    picked = _first_applicable(0, base, config) if tune and not config.train_defaults else None
    if picked is None:
        why = ("train once" if not tune else "train the defaults first")
        return Decision(state, False, "start",
                        f"{n_gpus} GPUs, threshold {config.min_gpus}: GreScale defaults, {why}")
    index, changes, _ = picked
    state = dataclasses.replace(state, action_index=index, streak=1, overrides=changes,
                                label=config.actions[index])
    return Decision(state, False, "start", f"{n_gpus} GPUs >= {config.min_gpus}: tune, "
                    f"starting with {config.actions[index]} {changes}")


def next_step(state: GuidelineState, scores: Mapping[str, float],
              baseline: Mapping[str, float], config: GuidelineConfig) -> Decision:
    """Decide what to train after iteration ``state.iteration`` scored ``scores``.

    Args:
        state: the plan the iteration was trained with (from :func:`start` or the previous
            decision).
        scores: its evaluation scores (every ``config.metrics`` name; NaN = diverged).
        baseline: the 1-GPU baseline's scores (finite).
        config: guideline settings.

    Returns:
        The decision, first rule that applies:

        1. ``n_gpus < min_gpus``: done, ``below_threshold`` (train and stop).
        2. A confirmation run that reached the baseline: done, ``validated``.
        3. A tuning run that reached the baseline: retrain the same hparams with the next
           seed, ``baseline_reached``; done with ``budget_spent`` if no training is left
           (the result is then unconfirmed; ``comparison.reached`` says so).
        4. No training left (``iteration + 1 == max_iterations``): done, ``budget_spent``.
        5. Otherwise choose an action; a failed confirmation run goes through this too,
           compared with the run it was meant to confirm (usually worse, so the next
           action, from the confirmed settings):

           * only the defaults trained so far: the first action (``start_tuning``);
           * no previous iteration (first training already had an action): repeat it
             (``first_action``, as in the thesis's 14-GPU walk-through);
           * improved and repeated fewer than ``max_repeats`` times: repeat (``improved``);
           * improved but at the limit: next action (``repeat_limit``);
           * tie, worse or NaN: next action (``not_improved``).

           Actions that cannot change anything (see :func:`apply_action`) are skipped; if
           none is left: done, ``actions_exhausted``. Settings accumulate: an action that
           made things worse is not undone (the thesis kept going from where it was).

    Raises:
        ValueError: a metric missing from ``scores`` or ``baseline``, or a non-finite
            baseline (a diverged baseline cannot be a reference).
    """
    _check_scores(scores, baseline, config.metrics)
    previous = state.history[-1].scores if state.history else None
    base_order = compare(scores, baseline, config.metrics, config.reach_tolerance)
    prev_order = (None if previous is None else
                  compare(scores, previous, config.metrics, config.improve_tolerance))
    comparison = Comparison(_frozen(scores), _frozen(baseline),
                            None if previous is None else _frozen(previous), base_order,
                            prev_order, base_order >= 0,
                            None if prev_order is None else prev_order > 0)
    record = IterationRecord(state.iteration, state.label, state.seed, state.hparams, scores,
                             comparison.reached, comparison.improved)
    trained = dataclasses.replace(state, history=(*state.history, record))
    best = best_iteration(trained.history, config.metrics)
    budget_left = state.iteration + 1 < config.max_iterations

    def finish(reason: str, message: str) -> Decision:
        return Decision(trained, True, reason, message, comparison, best)

    def plan(next_state: GuidelineState, reason: str, message: str) -> Decision:
        next_state = dataclasses.replace(next_state, iteration=state.iteration + 1)
        return Decision(next_state, False, reason, message, comparison, best)

    if state.n_gpus < config.min_gpus:
        return finish("below_threshold",
                      f"{state.n_gpus} GPUs < {config.min_gpus}: trained once, no tuning")
    if comparison.reached and state.validating:
        return finish("validated", "the confirmation run reached the baseline too")
    if comparison.reached:
        if not budget_left:
            return finish("budget_spent", "reached the baseline, but no training is left "
                          "to confirm it")
        k = state.validations + 1
        return plan(dataclasses.replace(trained, validating=True, validations=k,
                                        seed=config.seed + k, label=VALIDATION),
                    "baseline_reached", "reached the baseline: retrain the same settings "
                    f"with seed {config.seed + k} to confirm")
    if not budget_left:
        return finish("budget_spent", f"{config.max_iterations} trainings done, baseline "
                      "not reached")
    return _choose_action(trained, comparison, config, finish, plan)


def _choose_action(trained: GuidelineState, comparison: Comparison, config: GuidelineConfig,
                   finish, plan) -> Decision:
    """Rule 5 of :func:`next_step`: repeat the action or move to the next applicable one."""
    current = trained.action_index
    prefix = "confirmation failed; " if trained.validating else ""
    if current is None:
        want, reason, why = 0, "start_tuning", "the defaults missed the baseline"
    elif comparison.improved is None:
        want, reason, why = current, "first_action", "no earlier iteration to compare with"
    elif comparison.improved and trained.streak < config.max_repeats:
        want, reason, why = current, "improved", "improved on the previous iteration"
    elif comparison.improved:
        want, reason, why = (current + 1, "repeat_limit",
                             f"improved, but applied {trained.streak} times already")
    else:
        relation = "tied with" if comparison.previous_order == 0 else "worse than"
        want, reason, why = current + 1, "not_improved", f"{relation} the previous iteration"
    picked = _first_applicable(want, trained.hparams, config)
    if picked is None:
        return finish("actions_exhausted", f"{prefix}{why}; no applicable action left")
    index, changes, skipped = picked
    streak = trained.streak + 1 if index == current else 1
    name = config.actions[index]
    note = f" (skipped, nothing to change: {', '.join(skipped)})" if skipped else ""
    next_state = dataclasses.replace(
        trained, action_index=index, streak=streak, validating=False, seed=config.seed,
        label=name, overrides={**trained.overrides, **changes})
    return plan(next_state, reason, f"{prefix}{why}: {name} {changes}{note}")


def _check_scores(scores: Mapping[str, float], baseline: Mapping[str, float],
                  metrics: Sequence[str]) -> None:
    for name in metrics:
        if name not in scores:
            raise ValueError(f"scores: no {name!r} (have {sorted(scores)})")
        if name not in baseline:
            raise ValueError(f"baseline: no {name!r} (have {sorted(baseline)})")
        if not math.isfinite(float(baseline[name])):
            raise ValueError(f"baseline: {name} is {baseline[name]!r}; a diverged or "
                             "unevaluated baseline cannot be a reference")
