"""GreScale as thesis 6.3.2 defines it, against epoch tables written out by hand.

The rule under test (segscale.train.schedules.grescale_stages): with E epochs and the default
warmup W0 = 5, the base split is warmup W0, stabilisation S0 = round((1 - 3/7) x (E - W0))
(nearest epoch, halves up) and decay D = E - W0 - S0. The decay keeps that length whatever the
actual warmup W; stabilisation = E - W - D, refused when it would be < 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from segscale.train.config import PRESETS, TrainConfig
from segscale.train.schedules import (
    GRESCALE_SOURCES,
    NOT_IN_THESIS,
    Schedule,
    epoch_learning_rates,
    grescale_decay_epochs,
    grescale_max_warmup,
    grescale_stages,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def epochs_of(epochs: int, warmup: int, **kw) -> dict[str, list[int]]:
    """The 0-based epochs of each stage, from the stage lengths."""
    w, s, d = grescale_stages(epochs, warmup, **kw)
    return {"warmup": list(range(0, w)), "stabilisation": list(range(w, w + s)),
            "decay": list(range(w + s, w + s + d))}


# (E, W): (warmup first-last, stabilisation first-last, decay first-last), all inclusive and
# 0-based, worked out by hand:
#   E = 100: R0 = 95, 4/7 x 95 = 54.29 -> S0 = 54, D = 41 (epochs 59-99).
#   E = 120: R0 = 115, 4/7 x 115 = 65.71 -> S0 = 66, D = 49 (epochs 71-119).
#   E = 12:  R0 = 7, 4/7 x 7 = 4 -> S0 = 4, D = 3 (epochs 9-11).
HAND_TABLES = {
    (100, 5): ((0, 4), (5, 58), (59, 99)),     # 5 + 54 + 41
    (100, 7): ((0, 6), (7, 58), (59, 99)),     # 7 + 52 + 41: the decay is untouched
    (100, 9): ((0, 8), (9, 58), (59, 99)),     # 9 + 50 + 41
    (100, 0): (None, (0, 58), (59, 99)),       # 0 + 59 + 41: a shorter warmup lengthens S
    (120, 5): ((0, 4), (5, 70), (71, 119)),    # 5 + 66 + 49 (the thesis FCN's 120 epochs)
    (120, 11): ((0, 10), (11, 70), (71, 119)),  # 11 + 60 + 49
    (12, 5): ((0, 4), (5, 8), (9, 11)),        # 5 + 4 + 3
    (12, 8): ((0, 7), (8, 8), (9, 11)),        # 8 + 1 + 3: the longest warmup allowed
}


def span(first_last: tuple[int, int] | None) -> list[int]:
    return [] if first_last is None else list(range(first_last[0], first_last[1] + 1))


@pytest.mark.parametrize("epochs, warmup", HAND_TABLES, ids=[f"E{e}-W{w}" for e, w in
                                                            HAND_TABLES])
def test_stage_epochs_by_hand(epochs, warmup):
    warm, stab, decay = HAND_TABLES[(epochs, warmup)]
    assert epochs_of(epochs, warmup) == {"warmup": span(warm), "stabilisation": span(stab),
                                         "decay": span(decay)}


def test_thesis_default_split_100_epochs():
    """E = 100, W = 5: warmup 0-4, stabilisation 5-58 (54 epochs), decay 59-99 (41)."""
    assert grescale_stages(100, 5) == (5, 54, 41)
    # 54 / 95 and 41 / 95 are the nearest epochs to 4/7 and 3/7 of the 95 remaining.
    assert abs(54 - 4 / 7 * 95) < 0.5 and abs(41 - 3 / 7 * 95) < 0.5


@pytest.mark.parametrize("epochs", [12, 20, 100, 120])
def test_longer_warmup_keeps_the_decay_and_shortens_stabilisation(epochs):
    w0, s0, d0 = grescale_stages(epochs, 5)
    for warmup in range(5, grescale_max_warmup(epochs) + 1):
        w, s, d = grescale_stages(epochs, warmup)
        assert (w, d) == (warmup, d0)
        assert s == s0 - (warmup - w0)


def test_warmup_7_keeps_the_decay_length():
    """Thesis 6.3.2: "the warmup and stabilization phases have variable interchangeable
    durations whereas the Lr decay phase has a fixed one"."""
    assert grescale_stages(100, 5)[2] == grescale_stages(100, 7)[2] == 41
    assert grescale_stages(100, 7) == (7, 52, 41)


def test_lr_table_warmup_7_decays_on_the_same_epochs():
    """Base 1, N = 4, factor 0.5 (plateau 2), k = 0.1: per-epoch lr written out."""
    five = Schedule("grescale", 1.0, 4, 100, warmup_epochs=5)
    seven = Schedule("grescale", 1.0, 4, 100, warmup_epochs=7)
    lr5, lr7 = epoch_learning_rates(five), epoch_learning_rates(seven)
    assert lr5[:6] == pytest.approx([1.0, 1.2, 1.4, 1.6, 1.8, 2.0])
    assert lr7[:8] == pytest.approx([1 + e / 7 for e in range(7)] + [2.0])
    assert lr5[58] == lr7[58] == 2.0                  # last stabilisation epoch
    assert lr5[59:] == pytest.approx(lr7[59:])        # the same decay, epoch for epoch
    assert lr5[59] == pytest.approx(2.0)
    assert lr5[60] == pytest.approx(2 * math.exp(-0.1))
    assert lr5[99] == pytest.approx(2 * math.exp(-4.0))


def test_inverse_time_decay_shape():
    s = Schedule("grescale", 1.0, 4, 12, decay_shape="inverse_time", decay_coefficient=0.5)
    assert epoch_learning_rates(s)[8:] == pytest.approx([2.0, 2.0, 2 / 1.5, 2 / 2.0])


@pytest.mark.parametrize("epochs, fraction, decay", [
    (10, 0.5, 2),    # R0 = 5: stabilisation share 2.5 -> 3 (halves up), decay 2
    (10, 0.3, 1),    # 0.7 x 5 = 3.5 (3.4999... in floats) -> 4, decay 1
    (10, 0.7, 3),    # 0.3 x 5 = 1.5 (1.5000...2 in floats) -> 2, decay 3
    (100, 4 / 7, 54),  # one guideline step: 3/7 x 95 = 40.71 -> 41, decay 54
    (5, 3 / 7, 0),   # E <= W0: nothing remains, no decay
    (3, 1.0, 0),
])
def test_rounding_rule_halves_go_to_stabilisation(epochs, fraction, decay):
    assert grescale_decay_epochs(epochs, fraction) == decay


@pytest.mark.parametrize("epochs, warmup, fraction", [
    (12, 9, 3 / 7),      # 9 + 3 decay = 12: nothing left
    (100, 60, 3 / 7),    # 60 + 41 > 100
    (12, 5, 1.0),        # all 7 remaining epochs decay
    (5, 5, 3 / 7),       # a warmup as long as the run
    (3, 5, 3 / 7),
])
def test_refuses_a_split_without_stabilisation(epochs, warmup, fraction):
    with pytest.raises(ValueError, match="no stabilisation epoch") as err:
        grescale_stages(epochs, warmup, fraction)
    for key in ("warmup_epochs", "decay_fraction", "base_warmup_epochs", "epochs"):
        assert key in str(err.value)


def test_refusal_happens_before_training():
    """Schedule and TrainConfig.schedule refuse at construction, naming the hparams keys;
    other policies do not care about the GreScale split."""
    cfg = TrainConfig(epochs=12, warmup_epochs=9)
    with pytest.raises(ValueError, match=r"hparams: GreScale: .*warmup_epochs 9.*at most 8"):
        cfg.schedule("grescale", 4, 10)
    with pytest.raises(ValueError, match="no stabilisation epoch"):
        Schedule("grescale", 1.0, 4, 12, warmup_epochs=9)
    assert cfg.schedule("gradual", 4, 10).warmup_epochs == 9


def test_base_warmup_is_a_parameter():
    # W0 = 10 on 100 epochs: R0 = 90, 4/7 x 90 = 51.43 -> 51, decay 39.
    assert grescale_stages(100, 5, base_warmup_epochs=10) == (5, 56, 39)
    assert TrainConfig(base_warmup_epochs=10).grescale_stages() == (5, 56, 39)


# ---- the preset ------------------------------------------------------------------------------

def test_thesis_preset_values():
    """Thesis 6.3.3 (SGD, warmup 5, lr 1e-5) and 6.3.2 (W0 = 5, decay 3/7), nothing else."""
    assert dict(PRESETS["thesis"]) == {"optimizer": "sgd", "warmup_epochs": 5, "lr": 1e-5,
                                       "base_warmup_epochs": 5, "decay_fraction": 3 / 7}


# ---- documentation: every parameter says where its default comes from ------------------------

def doc_rows(path: Path, heading: str) -> dict[str, str]:
    """``| `name` | default | source |`` rows of the table under ``heading``: name -> source."""
    rows: dict[str, str] = {}
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            inside = line.lstrip("#").strip() == heading
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if inside and len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    return rows


def test_training_doc_gives_each_grescale_source():
    rows = doc_rows(DOCS / "training.md", "GreScale parameters and where they come from")
    for name, source in GRESCALE_SOURCES.items():
        assert name in rows, f"docs/training.md: no source row for {name}"
        assert rows[name] == source
    assert sum(source == NOT_IN_THESIS for source in GRESCALE_SOURCES.values()) == 3
