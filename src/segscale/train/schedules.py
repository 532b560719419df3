"""Learning-rate policies for N-rank synchronous training, as pure functions of (epoch, step).

Every policy starts from the *base* lr (the 1-rank value) and the linear scaling rule
(target = base x N, Goyal et al. 2017). The policies differ only in how they reach and leave
that target:

``none``
    base x N from the first step.
``constant``
    base for the ``warmup_epochs`` first epochs, then base x N.
``gradual``
    linear ramp, updated every step, from base (epoch 0, step 0) to base x N at the start of
    epoch ``warmup_epochs``; base x N afterwards (Goyal et al.: 5 epochs).
``grescale``
    thesis 6.3.2, three stages over ``epochs`` (lengths: :func:`grescale_stages`):

    1. warmup, ``warmup_epochs`` epochs: linear per-step ramp from base to the stabilisation
       lr;
    2. stabilisation: constant ``lr_stab = max(base, stabilisation_factor x base x N)``;
    3. decay: ``lr_stab x exp(-decay_coefficient x t)`` (``decay_shape`` ``exponential``)
       or ``lr_stab / (1 + decay_coefficient x t)`` (``inverse_time``), ``t`` = whole
       epochs since the decay started (0 on its first epoch), so the curve is continuous
       where stabilisation ends.

    What the thesis fixes (6.3.2): three stages; a default warmup of 5 epochs; the remaining
    epochs split 4/7 stabilisation and 3/7 decay; a longer warmup shortens the stabilisation
    while the decay keeps its length; the stabilisation lr is below base x N. What it leaves
    open, and is a named parameter here with our default: the stabilisation lr
    (``stabilisation_factor`` 0.5), the decay shape (``decay_shape`` exponential) and rate
    (``decay_coefficient`` 0.1), the ramp's end point (the stabilisation lr) and the
    ``max(base, ...)`` floor. The floor means GreScale never trains *below* the 1-rank lr
    during stabilisation; in particular at N = 1 warmup and stabilisation are exactly the
    base lr and only the decay stage changes it.

Step decay (``step_decay_epochs``, ``step_decay_gamma``) is a multiplier applied on top of
any policy: ``gamma ** (number of milestones <= epoch)``. With no milestones (the default)
it is 1, so at N = 1 ``none``, ``constant`` and ``gradual`` are the base lr throughout.

Nothing here imports TensorFlow: the Keras callback that applies these values lives in
:mod:`segscale.train.callbacks`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from segscale.study import POLICIES

# Thesis 6.3.2: "The default initial durations for each stage are 5 epochs, 4/7 and 3/7 of the
# total remaining training duration for the warmup, stabilization and Lr decay stages".
THESIS_WARMUP_EPOCHS = 5
DEFAULT_DECAY_FRACTION = 3 / 7
DECAY_SHAPES = ("exponential", "inverse_time")
# Tiny slack so that a share that is a half in exact arithmetic (0.7 x 5 = 3.5) rounds up
# although its float product is 3.4999999999999996.
_HALF_UP_SLACK = 1e-9

# Where each GreScale parameter's default comes from (docs/training.md has the same table).
NOT_IN_THESIS = "not specified by the thesis; our default"
GRESCALE_SOURCES = {
    "warmup_epochs": "thesis §6.3.2, §6.3.3 (5 epochs)",
    "base_warmup_epochs": "thesis §6.3.2 (default warmup 5 epochs)",
    "decay_fraction": "thesis §6.3.2 (3/7 of the remaining epochs; stabilisation 4/7)",
    "stabilisation_factor": NOT_IN_THESIS,
    "decay_shape": NOT_IN_THESIS,
    "decay_coefficient": NOT_IN_THESIS,
}


@dataclass(frozen=True)
class Schedule:
    """Everything a learning-rate policy depends on.

    Attributes:
        policy: one of :data:`POLICIES`.
        base_lr: the 1-rank learning rate, before linear scaling.
        n_ranks: number of Horovod ranks N (the linear scaling factor).
        epochs: planned number of epochs (GreScale stage lengths derive from it).
        steps_per_epoch: optimizer steps per epoch (per-step ramps use it).
        warmup_epochs: warmup length for ``constant``, ``gradual`` and ``grescale``.
        stabilisation_factor: GreScale's reduction of the scaled target, in (0, 1].
        decay_coefficient: GreScale's decay rate k per epoch, >= 0.
        decay_fraction: GreScale's share of ``epochs - base_warmup_epochs`` spent decaying,
            in [0, 1].
        base_warmup_epochs: GreScale's default warmup W0, from which the decay length is
            computed (thesis: 5).
        decay_shape: GreScale's decay curve, one of :data:`DECAY_SHAPES`.
        step_decay_epochs: epochs at which step decay multiplies the lr by ``gamma``.
        step_decay_gamma: step decay factor, in (0, 1].

    Raises:
        ValueError: a value out of range (named), or, for ``grescale``, stage lengths that
            leave no stabilisation epoch (:func:`grescale_stages`).
    """

    policy: str
    base_lr: float
    n_ranks: int
    epochs: int
    steps_per_epoch: int = 1
    warmup_epochs: int = THESIS_WARMUP_EPOCHS
    stabilisation_factor: float = 0.5
    decay_coefficient: float = 0.1
    decay_fraction: float = DEFAULT_DECAY_FRACTION
    base_warmup_epochs: int = THESIS_WARMUP_EPOCHS
    decay_shape: str = "exponential"
    step_decay_epochs: tuple[int, ...] = field(default=())
    step_decay_gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy: unknown {self.policy!r}, expected one of {POLICIES}")
        checks = (
            ("base_lr", self.base_lr > 0 and math.isfinite(self.base_lr), "> 0 and finite"),
            ("n_ranks", self.n_ranks >= 1, ">= 1"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("steps_per_epoch", self.steps_per_epoch >= 1, ">= 1"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("stabilisation_factor", 0 < self.stabilisation_factor <= 1, "in (0, 1]"),
            ("decay_coefficient", self.decay_coefficient >= 0, ">= 0"),
            ("decay_fraction", 0 <= self.decay_fraction <= 1, "in [0, 1]"),
            ("base_warmup_epochs", self.base_warmup_epochs >= 0, ">= 0"),
            ("decay_shape", self.decay_shape in DECAY_SHAPES, f"one of {DECAY_SHAPES}"),
            ("step_decay_gamma", 0 < self.step_decay_gamma <= 1, "in (0, 1]"),
            ("step_decay_epochs", all(e >= 1 for e in self.step_decay_epochs), "all >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name}: must be {expected}, got {getattr(self, name)!r}")
        object.__setattr__(self, "step_decay_epochs", tuple(sorted(self.step_decay_epochs)))
        if self.policy == "grescale":
            self.stages()  # refuse a split with no stabilisation epoch now, not mid-run

    @property
    def target_lr(self) -> float:
        """The linear-scaling target base x N."""
        return self.base_lr * self.n_ranks

    def stages(self) -> tuple[int, int, int]:
        """This schedule's GreScale (warmup, stabilisation, decay) lengths."""
        return grescale_stages(self.epochs, self.warmup_epochs, self.decay_fraction,
                               self.base_warmup_epochs)


def grescale_decay_epochs(epochs: int, decay_fraction: float = DEFAULT_DECAY_FRACTION,
                          base_warmup_epochs: int = THESIS_WARMUP_EPOCHS) -> int:
    """Length of GreScale's decay stage: the base split's, whatever the actual warmup.

    The base split (thesis 6.3.2) is: warmup ``W0 = min(base_warmup_epochs, epochs)``, then of
    the ``R0 = epochs - W0`` remaining epochs, stabilisation ``S0`` = the share
    ``(1 - decay_fraction) x R0`` rounded to the nearest epoch, **halves up**, and decay
    ``D = R0 - S0`` (the rest). With the default 3/7 no half can occur (a seventh of an
    integer is never k + 1/2), so the rule only matters for user fractions.

    Raises:
        ValueError: ``epochs < 1``, ``base_warmup_epochs < 0`` or a fraction outside [0, 1].
    """
    if epochs < 1 or base_warmup_epochs < 0:
        raise ValueError(f"epochs must be >= 1 and base_warmup_epochs >= 0, got {epochs}, "
                         f"{base_warmup_epochs}")
    if not 0 <= decay_fraction <= 1:
        raise ValueError(f"decay_fraction must be in [0, 1], got {decay_fraction}")
    remaining = epochs - min(base_warmup_epochs, epochs)
    stabilisation = math.floor((1 - decay_fraction) * remaining + 0.5 + _HALF_UP_SLACK)
    return remaining - min(stabilisation, remaining)


def grescale_stages(epochs: int, warmup_epochs: int,
                    decay_fraction: float = DEFAULT_DECAY_FRACTION,
                    base_warmup_epochs: int = THESIS_WARMUP_EPOCHS) -> tuple[int, int, int]:
    """Lengths (warmup, stabilisation, decay) in epochs of a GreScale run (thesis 6.3.2).

    The decay length ``D`` is the base split's (:func:`grescale_decay_epochs`): computed with
    the default warmup ``base_warmup_epochs`` (5), it does not depend on ``warmup_epochs``.
    Warmup and stabilisation share the rest: stabilisation = ``epochs - warmup_epochs - D``.
    So a warmup lengthened by k epochs (the guideline's ``increase_warmup``) shortens the
    stabilisation by k and leaves the decay as it was, and a shorter warmup lengthens the
    stabilisation.

    Examples (default 3/7, base warmup 5): 100 epochs with warmup 5 give (5, 54, 41),
    warmup 7 gives (7, 52, 41); 120 epochs give (5, 66, 49); 12 give (5, 4, 3); runs of at
    most 5 epochs have no decay stage (2 epochs, warmup 1: (1, 1, 0)).

    Args:
        epochs: planned epochs, >= 1.
        warmup_epochs: the actual warmup, >= 0.
        decay_fraction: share of ``epochs - base_warmup_epochs`` spent decaying, in [0, 1].
        base_warmup_epochs: the default warmup W0 the decay length is computed from, >= 0.

    Returns:
        Three non-negative ints summing to ``epochs``, the stabilisation at least 1.

    Raises:
        ValueError: negative lengths, a fraction outside [0, 1], or no stabilisation epoch
            left (the message names ``warmup_epochs``, ``decay_fraction``,
            ``base_warmup_epochs`` and ``epochs``).
    """
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    decay = grescale_decay_epochs(epochs, decay_fraction, base_warmup_epochs)
    stabilisation = epochs - warmup_epochs - decay
    if stabilisation < 1:
        longest = epochs - decay - 1
        fix = (f"lower warmup_epochs (at most {longest} here) or decay_fraction, or raise epochs"
               if longest >= 0 else "lower decay_fraction or raise base_warmup_epochs or epochs")
        raise ValueError(
            f"GreScale: no stabilisation epoch left: epochs {epochs} - warmup_epochs "
            f"{warmup_epochs} - decay {decay} (decay_fraction {decay_fraction:.6g} of epochs - "
            f"base_warmup_epochs {base_warmup_epochs}) = {stabilisation}; {fix}")
    return warmup_epochs, stabilisation, decay


def grescale_max_warmup(epochs: int, decay_fraction: float = DEFAULT_DECAY_FRACTION,
                        base_warmup_epochs: int = THESIS_WARMUP_EPOCHS) -> int:
    """The longest warmup :func:`grescale_stages` accepts (one stabilisation epoch left);
    -1 when even no warmup leaves one."""
    return epochs - grescale_decay_epochs(epochs, decay_fraction, base_warmup_epochs) - 1


def _ramp(start: float, stop: float, warmup_epochs: int, epoch: int, step: int,
          steps_per_epoch: int) -> float:
    """Linear interpolation from ``start`` (epoch 0 step 0) to ``stop`` (epoch ``warmup``)."""
    progress = (epoch + step / steps_per_epoch) / warmup_epochs
    return start + (stop - start) * min(progress, 1.0)


def stabilisation_lr(schedule: Schedule) -> float:
    """GreScale's plateau lr: ``max(base, stabilisation_factor x base x N)``."""
    return max(schedule.base_lr, schedule.stabilisation_factor * schedule.target_lr)


def decay_multiplier(shape: str, coefficient: float, t: int) -> float:
    """GreScale's decay factor ``t`` whole epochs into the decay (1 at t = 0).

    ``exponential``: ``exp(-k t)``; ``inverse_time``: ``1 / (1 + k t)``. Both are > 0 and
    fall faster as k grows (the guideline's ``increase_decay_coefficient``).
    """
    if shape == "exponential":
        return math.exp(-coefficient * t)
    if shape == "inverse_time":
        return 1.0 / (1.0 + coefficient * t)
    raise ValueError(f"decay_shape: unknown {shape!r}, expected one of {DECAY_SHAPES}")


def step_decay_multiplier(schedule: Schedule, epoch: int) -> float:
    """``gamma ** k`` with k the number of step-decay milestones <= ``epoch`` (1 if none)."""
    passed = bisect.bisect_right(schedule.step_decay_epochs, epoch)
    return schedule.step_decay_gamma ** passed


def learning_rate(schedule: Schedule, epoch: int, step: int = 0) -> float:
    """The lr to apply at optimizer step ``step`` (0-based, within the epoch) of ``epoch``.

    Args:
        schedule: the policy and its parameters.
        epoch: 0-based epoch. Epochs past ``schedule.epochs`` keep the last stage's rule
            (GreScale keeps decaying), so an over-long run is still defined.
        step: 0-based step within the epoch, ``< steps_per_epoch``. Only the per-step
            warmup ramps (``gradual`` and the GreScale warmup) depend on it.

    Returns:
        The learning rate, > 0. With ``n_ranks == 1`` and no step decay, ``none``,
        ``constant`` and ``gradual`` return ``base_lr`` for every (epoch, step), and so does
        ``grescale`` before its decay stage. ``warmup_epochs == 0`` makes ``constant`` and
        ``gradual`` equal to ``none`` and starts GreScale at its stabilisation lr.

    Raises:
        ValueError: negative ``epoch`` or ``step`` outside ``[0, steps_per_epoch)``.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if not 0 <= step < schedule.steps_per_epoch:
        raise ValueError(f"step must be in [0, {schedule.steps_per_epoch}), got {step}")
    s = schedule
    warm = s.warmup_epochs
    if s.policy == "none":
        lr = s.target_lr
    elif s.policy == "constant":
        lr = s.base_lr if epoch < warm else s.target_lr
    elif s.policy == "gradual":
        lr = (_ramp(s.base_lr, s.target_lr, warm, epoch, step, s.steps_per_epoch)
              if epoch < warm else s.target_lr)
    else:  # grescale
        warm, stab, decay = s.stages()
        plateau = stabilisation_lr(s)
        if epoch < warm:
            lr = _ramp(s.base_lr, plateau, warm, epoch, step, s.steps_per_epoch)
        elif epoch < warm + stab or decay == 0:
            lr = plateau
        else:
            lr = plateau * decay_multiplier(s.decay_shape, s.decay_coefficient,
                                            epoch - warm - stab)
    return lr * step_decay_multiplier(s, epoch)


def epoch_learning_rates(schedule: Schedule) -> list[float]:
    """The lr at the first step of every planned epoch (what ``history.csv`` records)."""
    return [learning_rate(schedule, e, 0) for e in range(schedule.epochs)]
