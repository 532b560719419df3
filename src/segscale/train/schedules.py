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
    thesis 6.3.2, three stages over ``epochs``:

    1. warmup, ``warmup_epochs`` epochs: linear per-step ramp from base to the stabilisation lr;
    2. stabilisation, the rest of the remaining epochs (default 4/7): constant
       ``lr_stab = max(base, stabilisation_factor x base x N)``;
    3. decay, the last ``round(decay_fraction x remaining)`` epochs (default 3/7):
       ``lr_stab x exp(-decay_coefficient x t)``, ``t`` = whole epochs since the decay started
       (0 on its first epoch), so the curve is continuous where stabilisation ends.

    The ``max(base, ...)`` floor means GreScale never trains *below* the 1-rank lr during
    stabilisation; in particular at N = 1 warmup and stabilisation are exactly the base lr
    and only the decay stage changes it.

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

DEFAULT_DECAY_FRACTION = 3 / 7


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
        decay_coefficient: GreScale's exponential decay rate k per epoch, >= 0.
        decay_fraction: share of the post-warmup epochs spent decaying, in [0, 1].
        step_decay_epochs: epochs at which step decay multiplies the lr by ``gamma``.
        step_decay_gamma: step decay factor, in (0, 1].
    """

    policy: str
    base_lr: float
    n_ranks: int
    epochs: int
    steps_per_epoch: int = 1
    warmup_epochs: int = 5
    stabilisation_factor: float = 0.5
    decay_coefficient: float = 0.1
    decay_fraction: float = DEFAULT_DECAY_FRACTION
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
            ("step_decay_gamma", 0 < self.step_decay_gamma <= 1, "in (0, 1]"),
            ("step_decay_epochs", all(e >= 1 for e in self.step_decay_epochs), "all >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name}: must be {expected}, got {getattr(self, name)!r}")
        object.__setattr__(self, "step_decay_epochs", tuple(sorted(self.step_decay_epochs)))

    @property
    def target_lr(self) -> float:
        """The linear-scaling target base x N."""
        return self.base_lr * self.n_ranks


def grescale_stages(epochs: int, warmup_epochs: int,
                    decay_fraction: float = DEFAULT_DECAY_FRACTION) -> tuple[int, int, int]:
    """Lengths (warmup, stabilisation, decay) in epochs of a GreScale run.

    Args:
        epochs: planned epochs, >= 1.
        warmup_epochs: requested warmup, >= 0; truncated to ``epochs``.
        decay_fraction: share of the remaining epochs spent decaying, in [0, 1].

    Returns:
        Three non-negative ints summing to ``epochs``. The decay length is
        ``round(decay_fraction x remaining)`` (Python's round: halves go to even), the
        stabilisation stage takes the rest, so 100 epochs with 5 warmup give (5, 54, 41) and
        12 with 5 give (5, 4, 3). A warmup as long as the run leaves (epochs, 0, 0).

    Raises:
        ValueError: on negative lengths or a fraction outside [0, 1].
    """
    if epochs < 1 or warmup_epochs < 0:
        raise ValueError(f"epochs must be >= 1 and warmup_epochs >= 0, got {epochs}, "
                         f"{warmup_epochs}")
    if not 0 <= decay_fraction <= 1:
        raise ValueError(f"decay_fraction must be in [0, 1], got {decay_fraction}")
    warm = min(warmup_epochs, epochs)
    remaining = epochs - warm
    decay = round(decay_fraction * remaining)
    return warm, remaining - decay, decay


def _ramp(start: float, stop: float, warmup_epochs: int, epoch: int, step: int,
          steps_per_epoch: int) -> float:
    """Linear interpolation from ``start`` (epoch 0 step 0) to ``stop`` (epoch ``warmup``)."""
    progress = (epoch + step / steps_per_epoch) / warmup_epochs
    return start + (stop - start) * min(progress, 1.0)


def stabilisation_lr(schedule: Schedule) -> float:
    """GreScale's plateau lr: ``max(base, stabilisation_factor x base x N)``."""
    return max(schedule.base_lr, schedule.stabilisation_factor * schedule.target_lr)


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
        warm, stab, decay = grescale_stages(s.epochs, warm, s.decay_fraction)
        plateau = stabilisation_lr(s)
        if epoch < warm:
            lr = _ramp(s.base_lr, plateau, warm, epoch, step, s.steps_per_epoch)
        elif epoch < warm + stab or decay == 0:
            lr = plateau
        else:
            lr = plateau * math.exp(-s.decay_coefficient * (epoch - warm - stab))
    return lr * step_decay_multiplier(s, epoch)


def epoch_learning_rates(schedule: Schedule) -> list[float]:
    """The lr at the first step of every planned epoch (what ``history.csv`` records)."""
    return [learning_rate(schedule, e, 0) for e in range(schedule.epochs)]
