"""Learning-rate policies against hand-computed tables (no TensorFlow needed)."""

from __future__ import annotations

import math

import pytest

from segscale.train.schedules import (
    POLICIES,
    Schedule,
    epoch_learning_rates,
    grescale_stages,
    learning_rate,
    stabilisation_lr,
    step_decay_multiplier,
)


def sched(policy: str, n: int = 4, **kw) -> Schedule:
    kw.setdefault("epochs", 12)
    kw.setdefault("warmup_epochs", 5)
    return Schedule(policy=policy, base_lr=1.0, n_ranks=n, **kw)


# base 1, N = 4, 12 epochs, 5 warmup epochs: lr at the first step of each epoch.
TABLES = {
    "none": [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4],
    "constant": [1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4],
    # 1 + 3 * e / 5
    "gradual": [1.0, 1.6, 2.2, 2.8, 3.4, 4, 4, 4, 4, 4, 4, 4],
}


@pytest.mark.parametrize("policy", sorted(TABLES))
def test_warmup_policies_table(policy):
    assert epoch_learning_rates(sched(policy)) == pytest.approx(TABLES[policy])


def test_grescale_table():
    # stages (5, 4, 3); plateau = max(1, 0.5 * 4) = 2; ramp 1 -> 2 over 5 epochs;
    # decay 2 * exp(-0.1 t), t = 0, 1, 2.
    s = sched("grescale", stabilisation_factor=0.5, decay_coefficient=0.1)
    expected = [1.0, 1.2, 1.4, 1.6, 1.8, 2, 2, 2, 2,
                2.0, 2 * math.exp(-0.1), 2 * math.exp(-0.2)]
    assert epoch_learning_rates(s) == pytest.approx(expected)


def test_grescale_default_stage_lengths_thesis():
    assert grescale_stages(100, 5) == (5, 54, 41)
    assert grescale_stages(120, 5) == (5, 66, 49)
    assert grescale_stages(12, 5) == (5, 4, 3)


@pytest.mark.parametrize("epochs, warmup, fraction, expected", [
    (7, 0, 3 / 7, (0, 6, 1)),      # no warmup: W0 = 5 leaves R0 = 2, decay 2 - round(8/7)
    (8, 0, 3 / 7, (0, 7, 1)),      # R0 = 3: stabilisation share round(12/7) = 2, decay 1
    (1, 0, 3 / 7, (0, 1, 0)),      # runs of at most W0 epochs have no decay
    (2, 1, 3 / 7, (1, 1, 0)),      # the workflow tests' tiny GreScale runs
    (12, 5, 0.0, (5, 7, 0)),       # no decay stage
    (12, 5, 6 / 7, (5, 1, 6)),     # decay 7 - round(1/7 x 7)
    (12, 4, 1.0, (4, 1, 7)),       # decay only after a warmup one epoch shorter than W0
])
def test_grescale_stage_edges(epochs, warmup, fraction, expected):
    assert grescale_stages(epochs, warmup, fraction) == expected
    assert sum(expected) == epochs


@pytest.mark.parametrize("policy", POLICIES)
def test_n1_is_base_lr_throughout(policy):
    """At N = 1 every policy is the base lr (GreScale: until its decay stage)."""
    s = Schedule(policy=policy, base_lr=2e-5, n_ranks=1, epochs=12, steps_per_epoch=3,
                 warmup_epochs=5, decay_coefficient=0.0 if policy == "grescale" else 0.1)
    for epoch in range(12):
        for step in range(3):
            assert learning_rate(s, epoch, step) == pytest.approx(2e-5)


def test_n1_grescale_decay_applies():
    s = Schedule(policy="grescale", base_lr=1.0, n_ranks=1, epochs=12, warmup_epochs=5,
                 decay_coefficient=0.5)
    assert epoch_learning_rates(s) == pytest.approx(
        [1] * 9 + [1, math.exp(-0.5), math.exp(-1.0)])


def test_gradual_is_per_step():
    s = sched("gradual", steps_per_epoch=4)
    # epoch 1, step 2: progress (1 + 2/4) / 5 = 0.3 -> 1 + 3 * 0.3
    assert learning_rate(s, 1, 2) == pytest.approx(1.9)
    assert learning_rate(s, 4, 3) == pytest.approx(1 + 3 * (4.75 / 5))
    assert learning_rate(s, 5, 0) == pytest.approx(4)


def test_constant_and_none_ignore_step():
    for policy in ("none", "constant"):
        s = sched(policy, steps_per_epoch=4)
        assert {learning_rate(s, 2, k) for k in range(4)} == {learning_rate(s, 2, 0)}


@pytest.mark.parametrize("policy", ["constant", "gradual"])
def test_zero_warmup_equals_none(policy):
    assert epoch_learning_rates(sched(policy, warmup_epochs=0)) == [4.0] * 12


def test_grescale_zero_warmup_starts_at_plateau():
    s = sched("grescale", warmup_epochs=0, epochs=7, stabilisation_factor=0.75)
    assert learning_rate(s, 0) == pytest.approx(3.0)


def test_grescale_plateau_floor_at_base():
    s = sched("grescale", n=2, stabilisation_factor=0.25)  # 0.25 * 2 = 0.5 < 1
    assert stabilisation_lr(s) == 1.0


def test_grescale_continues_decay_past_planned_epochs():
    s = sched("grescale", decay_coefficient=0.1)
    assert learning_rate(s, 13) == pytest.approx(2 * math.exp(-0.4))


def test_step_decay_table():
    s = sched("none", step_decay_epochs=(6, 3), step_decay_gamma=0.5)
    assert s.step_decay_epochs == (3, 6)
    assert epoch_learning_rates(s)[:8] == pytest.approx([4, 4, 4, 2, 2, 2, 1, 1])
    assert step_decay_multiplier(s, 0) == 1.0


def test_step_decay_at_n1_multiplies_base():
    s = Schedule("gradual", base_lr=1.0, n_ranks=1, epochs=4, step_decay_epochs=(2,),
                 step_decay_gamma=0.1)
    assert epoch_learning_rates(s) == pytest.approx([1, 1, 0.1, 0.1])


@pytest.mark.parametrize("kw, key", [
    ({"policy": "linear"}, "policy"),
    ({"base_lr": 0.0}, "base_lr"),
    ({"base_lr": math.nan}, "base_lr"),
    ({"n_ranks": 0}, "n_ranks"),
    ({"epochs": 0}, "epochs"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"stabilisation_factor": 0.0}, "stabilisation_factor"),
    ({"stabilisation_factor": 1.5}, "stabilisation_factor"),
    ({"decay_coefficient": -0.1}, "decay_coefficient"),
    ({"decay_fraction": 1.1}, "decay_fraction"),
    ({"base_warmup_epochs": -1}, "base_warmup_epochs"),
    ({"decay_shape": "cosine"}, "decay_shape"),
    ({"step_decay_gamma": 0.0}, "step_decay_gamma"),
    ({"step_decay_epochs": (0,)}, "step_decay_epochs"),
])
def test_invalid_parameters_name_the_field(kw, key):
    args = {"policy": "none", "base_lr": 1.0, "n_ranks": 2, "epochs": 3} | kw
    with pytest.raises(ValueError, match=key):
        Schedule(**args)


@pytest.mark.parametrize("epoch, step", [(-1, 0), (0, -1), (0, 1)])
def test_invalid_epoch_or_step(epoch, step):
    with pytest.raises(ValueError):
        learning_rate(sched("none"), epoch, step)


def test_stage_errors():
    with pytest.raises(ValueError):
        grescale_stages(0, 5)
    with pytest.raises(ValueError):
        grescale_stages(10, 5, 2.0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        grescale_stages(10, -1)
    with pytest.raises(ValueError, match="no stabilisation epoch"):
        grescale_stages(12, 5, 1.0)  # decay 7 + warmup 5: nothing left
