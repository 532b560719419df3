"""Time to accuracy: the wall time at which a run's validation Dice first reaches the 1-GPU
baseline's, and the speedup that makes, per run and GPU count.

Speed and accuracy in one number: a larger N that trains faster but needs more epochs to reach
the same Dice, or never reaches it, shows it here and nowhere else.

- **target** of (dataset, arch) at ``fraction`` f: f x the mean over the 1-GPU baseline's ok
  repeats (policy ``none``) of their final validation Dice (last epoch of ``history.csv``);
- **time to target** of a run: the cumulative ``epoch_time_s`` at the end of the first epoch
  whose ``val_dice`` >= target (validation ends each epoch, so this is when it is known);
  NaN and ``reached`` False when no epoch gets there;
- **speedup**: the baseline's own time to the same target (mean over its repeats that reach
  it) / the run's.

Pure functions over the aggregate tables (``runs.csv`` for which runs exist and their status,
``history.csv`` for the epochs); never the run directories.

CLI::

    python -m segscale.report.accuracy_time --runs T/runs.csv --history T/history.csv \\
        --fractions 1.0 0.95 --table T/time_to_accuracy.csv --out-dir results/figures
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from segscale import cli
from segscale.fileio import atomic_path
from segscale.logs import configure
from segscale.report.figures import provenance, save
from segscale.report.runs import of_strategy, primary_strategy, read_table, sort_runs, with_strategy
from segscale.report.style import (
    BASELINE_COLOR,
    apply_style,
    combos,
    dodge,
    draw_series,
    empty_panel,
    finish,
    gpu_axis,
    grid,
    panel_title,
    policy_order,
    policy_style,
    select,
)
from segscale.study import BASELINE_POLICY, OK, RUN_KEYS

log = logging.getLogger(__name__)

#: Fractions of the baseline's final validation Dice used when none are given.
DEFAULT_FRACTIONS = (1.0, 0.95)
FIGURE = "time_to_accuracy"
#: What a run's time to accuracy is compared within: each strategy against its own 1-GPU run.
BASE_KEYS = ("dataset", "arch", "strategy")
COLUMNS = [*RUN_KEYS, "status", "fraction", "target", "baseline_dice", "epoch", "time_s",
           "reached", "baseline_time_s", "baseline_n", "baseline_n_reached", "speedup",
           "note"]
APART_LABEL = "did not reach the target, or not ok (x, at the bottom)"
#: A Dice this close below the target reaches it: the mean of equal finals can exceed each
#: of them by a rounding step, which would leave every repeat "short" of their own mean.
ROUNDING = 1e-9


# --------------------------------------------------------------------------- computing
def time_to_target(hist: pd.DataFrame, target: float) -> tuple[float, float]:
    """(time_s, epoch) at the end of the first epoch with ``val_dice >= target``, the time
    being the sum of ``epoch_time_s`` up to and including it; (NaN, NaN) if no epoch does.

    Epochs are taken in ``epoch`` order; a missing ``val_dice`` never reaches the target;
    one within :data:`ROUNDING` below it does.
    """
    if hist.empty or not np.isfinite(target):
        return math.nan, math.nan
    h = hist.sort_values("epoch")
    dice = pd.to_numeric(h["val_dice"], errors="coerce").to_numpy(float)
    elapsed = pd.to_numeric(h["epoch_time_s"], errors="coerce").cumsum().to_numpy(float)
    hit = np.flatnonzero(np.nan_to_num(dice, nan=-np.inf) >= target - ROUNDING)
    if not hit.size:
        return math.nan, math.nan
    return float(elapsed[hit[0]]), float(h["epoch"].iloc[hit[0]])


def final_val_dice(history: pd.DataFrame) -> pd.Series:
    """Each run's validation Dice at its last recorded epoch, indexed by :data:`RUN_KEYS`."""
    if history.empty or not {*RUN_KEYS, "epoch", "val_dice"} <= set(history):
        return pd.Series(dtype=float)
    last = history.sort_values("epoch").groupby(list(RUN_KEYS)).tail(1)
    return pd.to_numeric(last.set_index(list(RUN_KEYS))["val_dice"], errors="coerce")


def baseline_dice(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch, strategy): the mean final validation Dice of the ok 1-GPU ``none``
    runs (``baseline_dice``) and how many there are (``baseline_n``)."""
    runs, history = with_strategy(runs), with_strategy(history)
    final = final_val_dice(history).dropna().rename("dice")
    if final.empty:
        return pd.DataFrame(columns=[*BASE_KEYS, "baseline_dice", "baseline_n"])
    final = final.reset_index()
    ok = runs[runs["status"].eq(OK)][list(RUN_KEYS)]
    base = final.merge(ok, on=list(RUN_KEYS))
    base = base[base["gpus"].eq(1) & base["policy"].eq(BASELINE_POLICY)]
    return (base.groupby(list(BASE_KEYS))["dice"]
            .agg(baseline_dice="mean", baseline_n="count").reset_index())


def time_to_accuracy(runs: pd.DataFrame, history: pd.DataFrame,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS) -> pd.DataFrame:
    """One row per run and fraction: target, epoch and time reached, speedup (see module).

    Every run of ``runs`` is listed, whatever its status (``status`` says it); a run without
    history, or a (dataset, arch) without an ok 1-GPU baseline, has NaN and a ``note``.
    """
    runs, history = with_strategy(runs), with_strategy(history)
    bases = {(r.dataset, r.arch, r.strategy): r
             for r in baseline_dice(runs, history).itertuples()}
    hist_of = {k: h for k, h in history.groupby(list(RUN_KEYS))} if not history.empty else {}
    rows = []
    for run in runs[[*RUN_KEYS, "status"]].itertuples(index=False):
        key = tuple(getattr(run, k) for k in RUN_KEYS)
        base = bases.get((run.dataset, run.arch, run.strategy))
        hist = hist_of.get(key, pd.DataFrame())
        for fraction in fractions:
            row = {**run._asdict(), "fraction": float(fraction), "note": ""}
            if base is None:
                rows.append({**row, "reached": False,
                             "note": "no ok 1-GPU baseline (none) with a validation Dice"})
                continue
            target = float(fraction) * base.baseline_dice
            time_s, epoch = time_to_target(hist, target)
            rows.append({**row, "target": target, "baseline_dice": base.baseline_dice,
                         "baseline_n": int(base.baseline_n), "time_s": time_s, "epoch": epoch,
                         "reached": not math.isnan(time_s),
                         "note": "" if not hist.empty else "no history"})
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["reached"] = out["reached"].fillna(False).astype(bool)
    return add_speedup(out)


def add_speedup(table: pd.DataFrame) -> pd.DataFrame:
    """``baseline_time_s``: mean time to the same target over the baseline's ok repeats that
    reach it (``baseline_n_reached`` of ``baseline_n``); ``speedup`` = it / ``time_s``."""
    keys = [*BASE_KEYS, "fraction"]
    is_base = (table["gpus"].eq(1) & table["policy"].eq(BASELINE_POLICY)
               & table["status"].eq(OK) & table["reached"])
    base = (table[is_base].groupby(keys)["time_s"]
            .agg(baseline_time_s="mean", baseline_n_reached="count").reset_index())
    out = table.drop(columns=["baseline_time_s", "baseline_n_reached"]).merge(
        base, on=keys, how="left")
    out["baseline_n_reached"] = out["baseline_n_reached"].fillna(0).astype(int)
    out["baseline_n"] = out["baseline_n"].astype("Int64")  # empty without a baseline
    out["speedup"] = out["baseline_time_s"] / out["time_s"]
    short = out["baseline_n"].gt(out["baseline_n_reached"])
    out.loc[short, "note"] = out.loc[short].apply(
        lambda r: "; ".join(filter(None, [r["note"], f"{r['baseline_n_reached']} of "
                                          f"{r['baseline_n']:.0f} baseline repeats reach the "
                                          "target"])), axis=1)
    return sort_runs(out[COLUMNS], ["dataset", "arch", "strategy", "fraction", "policy", "gpus",
                                    "repeat"])


# --------------------------------------------------------------------------- figure
def fig_time_to_accuracy(table: pd.DataFrame, fractions: Sequence[float]):
    """Time-to-accuracy speedup vs GPUs per policy: one row of panels per fraction, one
    column per (dataset, arch); the ideal S = N dashed; runs that did not reach the target
    (or are not ok) as x at the bottom of their panel. With several strategies, the first
    one's runs (the table has them all; strategies.png compares them)."""
    strategy = primary_strategy(table)
    several = not table.empty and with_strategy(table)["strategy"].nunique() > 1
    table = of_strategy(table, strategy)
    panels = combos(table)
    fractions = list(fractions) or list(DEFAULT_FRACTIONS)
    fig, axes = grid(len(fractions), max(len(panels), 1), width=4.4, height=3.3)
    if not panels:
        empty_panel(axes[0, 0], "no runs: nothing to draw")
    for r, fraction in enumerate(fractions):
        for c, (ds, arch) in enumerate(panels):
            ax = axes[r, c]
            d = select(table, ds, arch)
            d = d[np.isclose(d["fraction"].astype(float), fraction)]
            target = d["target"].dropna()
            ax.set_title(f"{panel_title(ds, arch)}: {fraction:.0%} of the 1-GPU Dice"
                         + (f" ({float(target.iloc[0]):.3f})" if len(target) else ""),
                         fontsize=10)
            if d.empty or d["target"].isna().all():
                empty_panel(ax, "no ok 1-GPU baseline (none)\nwith a validation Dice")
                continue
            if d["baseline_time_s"].isna().all():
                empty_panel(ax, "the 1-GPU baseline never\nreaches this target")
                continue
            _draw_panel(ax, d)
    for ax in axes.ravel()[len(fractions) * len(panels):]:
        ax.set_visible(len(panels) == 0)
    finish(fig, axes, "Time-to-accuracy speedup vs GPUs: the baseline's time to its own "
           "validation Dice / the run's\n(mean ± sd over ok repeats that reach it"
           + (f"; {strategy} runs)" if several else ")"))
    return fig


def _draw_panel(ax, d: pd.DataFrame) -> None:
    good = d[d["status"].eq(OK) & d["reached"]]
    apart = d[~(d["status"].eq(OK) & d["reached"])]
    gpus = sorted(set(d["gpus"].astype(int)))
    pols = policy_order(d["policy"].unique())
    for i, pol in enumerate(pols):
        g = good[good["policy"].eq(pol)].groupby("gpus")["speedup"].agg(["mean", "std"])
        if len(g):
            draw_series(ax, g.index, g["mean"], g["std"], pol, i, len(pols))
        else:  # still in the legend: its runs are drawn apart
            ax.plot([], [], label=pol, **policy_style(pol))
        miss = apart[apart["policy"].eq(pol)]
        if len(miss):  # x in data coordinates, y at the bottom of the axes
            ax.scatter(dodge(miss["gpus"], i, len(pols)), np.full(len(miss), 0.04), marker="x",
                       s=40, lw=1.5, color=policy_style(pol)["color"], zorder=4,
                       transform=ax.get_xaxis_transform(), label=APART_LABEL, clip_on=False)
    xs = np.geomspace(min(gpus), max(gpus), 50) if len(gpus) > 1 else np.array(gpus, float)
    ax.plot(xs, xs, ls="--", color=BASELINE_COLOR, lw=1.2, label="ideal (S = N)")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("time-to-accuracy speedup")
    gpu_axis(ax, gpus)


# --------------------------------------------------------------------------- CLI
def write_table(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


@dataclass(frozen=True)
class AccuracyTimeConfig:
    runs: Path
    history: Path
    fractions: tuple[float, ...]
    table: Path
    out_dir: Path


def output_paths(out_dir: Path) -> list[Path]:
    return [out_dir / f"{FIGURE}.{fmt}" for fmt in ("png", "svg")]


def build(cfg: AccuracyTimeConfig) -> pd.DataFrame:
    """Read the tables, compute everything, then write the table and the figure."""
    runs = read_table(cfg.runs)
    history = read_table(cfg.history, required=False)
    if runs.empty:
        raise ValueError(f"{cfg.runs}: no runs")
    table = time_to_accuracy(runs, history, cfg.fractions)
    apply_style()
    fig = fig_time_to_accuracy(table, cfg.fractions)
    write_table(table, cfg.table)
    save(fig, cfg.out_dir, FIGURE, provenance())
    reached = table.groupby("fraction")["reached"].agg(["sum", "count"])
    for fraction, row in reached.iterrows():
        log.info("%.0f%% of the 1-GPU Dice: %d of %d runs reach it", 100 * fraction,
                 row["sum"], row["count"])
    log.info("wrote %s and %s/%s.{png,svg}", cfg.table, cfg.out_dir, FIGURE)
    return table


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.report.accuracy_time", __doc__)
    p.add_argument("--runs", type=Path, required=True, help="runs.csv (segscale.report.tables)")
    p.add_argument("--history", type=Path, required=True, help="history.csv (same)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS),
                   help="fractions of the 1-GPU baseline's final validation Dice "
                        "(default: 1.0 0.95)")
    p.add_argument("--table", type=Path, required=True, help="time_to_accuracy.csv to write")
    p.add_argument("--out-dir", type=Path, required=True,
                   help=f"where {FIGURE}.png and {FIGURE}.svg go")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    bad = [f for f in args.fractions if not (0 < f and math.isfinite(f))]
    if bad:
        build_parser().error(f"--fractions: must be > 0, got {bad}")
    cfg = AccuracyTimeConfig(args.runs, args.history, tuple(dict.fromkeys(args.fractions)),
                             args.table, args.out_dir)
    return cli.run_logged(lambda: build(cfg), log)


if __name__ == "__main__":
    sys.exit(main())
