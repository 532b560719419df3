"""Time to accuracy (issue 11.3) on a hand-made history with times worked out by hand.

Dice values are binary fractions, so ``>=`` against the targets is exact.

======================  ==================  ======================  ====================
run                     epoch_time_s        val_dice per epoch      notes
======================  ==================  ======================  ====================
none   1 GPU  rep0      10 10 10 10         .5 .625 .75 .875        final .875
none   1 GPU  rep1      12 12 12 12         .5 .75 .8125 .625       final .625
none   2 GPUs rep0       6  6  6  6         .25 .5 .75 .8125
gradual 2 GPUs rep0      5  5  5  5         .25 .5 .625 .6875       never reaches .75
none   4 GPUs rep0       4  4               .75 nan                 diverged
grescale 4 GPUs rep0    (failed: no history)
======================  ==================  ======================  ====================

Baseline Dice = mean(.875, .625) = .75. Fraction 1.0, target .75: baseline times 30 (rep0,
epoch 2) and 24 (rep1, epoch 1), mean 27; none/2: 18 (epoch 2) -> speedup 1.5; gradual/2
never; none/4 (diverged) 4 -> 6.75. Fraction 0.5, target .375: baseline 10 and 12, mean 11;
none/2: 12 (epoch 1) -> 11/12; gradual/2: 10 -> 1.1; none/4: 4 -> 2.75. Fraction 1.25,
target .9375: nobody, the baseline included.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from segscale.report import accuracy_time as tta
from segscale.report import style

NAN = float("nan")
RUNS = {  # (policy, gpus, repeat): (status, epoch times, val dice)
    ("none", 1, 0): ("ok", [10, 10, 10, 10], [.5, .625, .75, .875]),
    ("none", 1, 1): ("ok", [12, 12, 12, 12], [.5, .75, .8125, .625]),
    ("none", 2, 0): ("ok", [6, 6, 6, 6], [.25, .5, .75, .8125]),
    ("gradual", 2, 0): ("ok", [5, 5, 5, 5], [.25, .5, .625, .6875]),
    ("none", 4, 0): ("diverged", [4, 4], [.75, NAN]),
    ("grescale", 4, 0): ("failed", [], []),
}


def tables(runs: dict = RUNS) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = {"dataset": "lasc", "arch": "unet"}
    run_rows = [{**keys, "policy": p, "gpus": g, "repeat": r, "status": st}
                for (p, g, r), (st, _, _) in runs.items()]
    hist_rows = [{**keys, "policy": p, "gpus": g, "repeat": r, "status": st, "epoch": e,
                  "val_dice": d, "epoch_time_s": t}
                 for (p, g, r), (st, times, dice) in runs.items()
                 for e, (t, d) in enumerate(zip(times, dice, strict=True))]
    return pd.DataFrame(run_rows), pd.DataFrame(hist_rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return tta.time_to_accuracy(*tables(), fractions=(1.0, 0.5, 1.25))


def _get(table, policy, gpus, repeat, fraction) -> pd.Series:
    sel = table[table.policy.eq(policy) & table.gpus.eq(gpus) & table.repeat.eq(repeat)
                & table.fraction.eq(fraction)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_time_to_target_is_the_end_of_the_first_epoch_reaching_it():
    hist = pd.DataFrame({"epoch": [2, 0, 1], "val_dice": [.9, .5, .8],
                         "epoch_time_s": [3.0, 1.0, 2.0]})  # out of order on purpose
    assert tta.time_to_target(hist, .8) == (3.0, 1.0)   # 1 + 2
    assert tta.time_to_target(hist, .5) == (1.0, 0.0)
    assert tta.time_to_target(hist, .85) == (6.0, 2.0)
    assert all(math.isnan(v) for v in tta.time_to_target(hist, .95))
    assert all(math.isnan(v) for v in tta.time_to_target(hist.iloc[:0], .5))


def test_equal_finals_reach_their_own_mean():
    """0.5 + 0.1 x 3 three times: the mean is 1 rounding step above each; still reached."""
    finals = [0.5 + 0.1 * 3] * 3
    runs = {("none", 1, r): ("ok", [1.0, 1.0], [0.5, d]) for r, d in enumerate(finals)}
    table = tta.time_to_accuracy(*tables(runs), fractions=(1.0,))
    assert table.reached.all() and (table.time_s == 2.0).all()


def test_baseline_dice_is_the_mean_final_val_dice_of_ok_one_gpu_none_runs():
    base = tta.baseline_dice(*tables())
    assert base.to_dict("records") == [{"dataset": "lasc", "arch": "unet",
                                        "strategy": "horovod",
                                        "baseline_dice": .75, "baseline_n": 2}]


def test_each_strategy_is_compared_with_its_own_one_gpu_runs():
    """The same runs as tf-collective, one epoch slower everywhere: its own 1-GPU baseline
    (same Dice) gives the same speedups, never a speedup against Horovod's 1-GPU time."""
    runs, history = tables()
    slow = history.assign(strategy="tf-collective", epoch_time_s=history["epoch_time_s"] * 2)
    both = tta.time_to_accuracy(
        pd.concat([runs.assign(strategy="horovod"), runs.assign(strategy="tf-collective")]),
        pd.concat([history.assign(strategy="horovod"), slow]), [1.0])
    fast = both[both["strategy"].eq("horovod")].reset_index(drop=True)
    doubled = both[both["strategy"].eq("tf-collective")].reset_index(drop=True)
    assert doubled["time_s"].tolist() == pytest.approx((2 * fast["time_s"]).tolist(),
                                                       nan_ok=True)
    assert doubled["speedup"].tolist() == pytest.approx(fast["speedup"].tolist(), nan_ok=True)


@pytest.mark.parametrize("policy, gpus, repeat, fraction, time_s, epoch, speedup", [
    ("none", 1, 0, 1.0, 30, 2, 27 / 30), ("none", 1, 1, 1.0, 24, 1, 27 / 24),
    ("none", 2, 0, 1.0, 18, 2, 1.5), ("none", 4, 0, 1.0, 4, 0, 6.75),
    ("none", 1, 0, 0.5, 10, 0, 1.1), ("none", 1, 1, 0.5, 12, 0, 11 / 12),
    ("none", 2, 0, 0.5, 12, 1, 11 / 12), ("gradual", 2, 0, 0.5, 10, 1, 1.1),
    ("none", 4, 0, 0.5, 4, 0, 2.75),
])
def test_hand_computed_times_and_speedups(table, policy, gpus, repeat, fraction, time_s,
                                          epoch, speedup):
    row = _get(table, policy, gpus, repeat, fraction)
    assert row.target == pytest.approx(.75 * fraction) and row.baseline_dice == .75
    assert (row.time_s, row.epoch, row.reached) == (time_s, epoch, True)
    assert row.speedup == pytest.approx(speedup)
    assert row.baseline_time_s == pytest.approx({1.0: 27, 0.5: 11}[fraction])
    assert (row.baseline_n, row.baseline_n_reached) == (2, 2)


def test_unreached_runs_are_nan_and_flagged(table):
    never = _get(table, "gradual", 2, 0, 1.0)
    assert not never.reached and math.isnan(never.time_s) and math.isnan(never.speedup)
    failed = _get(table, "grescale", 4, 0, 1.0)
    assert not failed.reached and failed.status == "failed" and failed.note == "no history"
    assert _get(table, "none", 4, 0, 1.0).status == "diverged"  # listed with its status
    nobody = table[table.fraction.eq(1.25)]
    assert not nobody.reached.any() and nobody.baseline_time_s.isna().all()
    assert (nobody.baseline_n_reached == 0).all()
    assert nobody.note.str.contains("0 of 2 baseline repeats reach the target").all()


def test_table_shape_and_order(table):
    assert list(table.columns) == tta.COLUMNS
    assert len(table) == len(RUNS) * 3
    first = table[table.fraction.eq(0.5)]
    assert list(first.policy) == ["none"] * 4 + ["gradual", "grescale"]
    assert list(table.fraction.unique()) == [0.5, 1.0, 1.25]


def test_without_a_baseline_every_row_says_so():
    runs = {k: v for k, v in RUNS.items() if k[1] > 1}
    table = tta.time_to_accuracy(*tables(runs), fractions=(1.0,))
    assert not table.reached.any() and table.target.isna().all()
    assert table.note.str.startswith("no ok 1-GPU baseline").all()
    fig = tta.fig_time_to_accuracy(table, (1.0,))
    fig.canvas.draw()
    text = " ".join(t.get_text() for t in fig.findobj(plt.Text))
    plt.close(fig)
    assert "no ok 1-GPU baseline (none)" in text


@pytest.mark.parametrize("history", ["header only", "absent"])
def test_only_failed_runs_without_history(history):
    runs, _ = tables({("none", 1, 0): ("failed", [], []), ("none", 2, 0): ("failed", [], [])})
    hist = (pd.DataFrame(columns=["dataset", "arch", "policy", "gpus", "repeat", "status",
                                  "epoch", "val_dice", "epoch_time_s"])
            if history == "header only" else pd.DataFrame())
    table = tta.time_to_accuracy(runs, hist)
    assert len(table) == 4 and not table.reached.any()
    assert table.note.str.startswith("no ok 1-GPU baseline").all()
    plt.close(tta.fig_time_to_accuracy(table, tta.DEFAULT_FRACTIONS))


def test_figure_speedup_ideal_and_runs_apart(table):
    style.apply_style()
    fig = tta.fig_time_to_accuracy(table, (1.0, 0.5, 1.25))
    fig.set_dpi(30)
    fig.canvas.draw()
    text = " ".join(t.get_text() for t in fig.findobj(plt.Text))
    plt.close(fig)
    for words in ("ideal (S = N)", tta.APART_LABEL, "100% of the 1-GPU Dice (0.750)",
                  "50% of the 1-GPU Dice (0.375)", "never", "none", "gradual"):
        assert words in text, words


def test_cli_writes_table_and_figure(tmp_path):
    runs, history = tables()
    runs.to_csv(tmp_path / "runs.csv", index=False)
    history.to_csv(tmp_path / "history.csv", index=False)
    out = tmp_path / "figs"
    assert tta.main(["--runs", str(tmp_path / "runs.csv"), "--history",
                     str(tmp_path / "history.csv"), "--fractions", "1.0", "0.5",
                     "--table", str(tmp_path / "tta.csv"), "--out-dir", str(out)]) == 0
    back = pd.read_csv(tmp_path / "tta.csv", keep_default_na=False, na_values=["", "nan"])
    assert len(back) == len(RUNS) * 2 and set(back.policy) == {"none", "gradual", "grescale"}
    assert back[back.policy.eq("none") & back.gpus.eq(2) & back.fraction.eq(1.0)].speedup.item() \
        == pytest.approx(1.5)
    assert sorted(p.name for p in out.iterdir()) == ["time_to_accuracy.png",
                                                     "time_to_accuracy.svg"]
    assert ET.parse(out / "time_to_accuracy.svg").getroot().tag.endswith("svg")
    img = plt.imread(out / "time_to_accuracy.png")
    assert img[..., :3].std() > 0.05 and np.isfinite(img).all()


def test_cli_refuses_bad_fractions(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        tta.main(["--runs", "r", "--history", "h", "--fractions", "0", "--table", "t",
                  "--out-dir", str(tmp_path)])
    assert exc.value.code == 2 and "--fractions" in capsys.readouterr().err
