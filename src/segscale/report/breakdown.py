"""Where the time goes: per-run breakdown table and a stacked bar figure per GPU count.

Reads the aggregate tables (``history.csv``, ``runs.csv``; never run directories) and writes

- ``breakdown.csv``: one row per run, the mean seconds per epoch of each component over the
  run's recorded epochs: ``compute_s``, ``allreduce_s``, ``input_wait_s``, ``validation_s``
  (inside ``epoch_time_s``), ``other_s = epoch_time_s`` minus those four (the rest of the
  epoch: callbacks between steps and their rank synchronisation, the slowest rank's lead),
  ``checkpoint_s`` (after the epoch), and the run's ``startup_s`` (once per run, rank process
  start to first step, slowest rank) with ``startup_per_epoch_s`` (it spread over the run's
  epochs). ``epochs`` says how many epochs the means are over.
- ``breakdown.{png,svg}``: per (dataset, arch), x = GPUs, stacked mean seconds per epoch by
  component over the *ok* runs of every policy at that GPU count (the policies change the
  learning rate, not the work of a step).

What each component measures, and its limits: docs/training.md, "Where the time goes".

CLI::

    python -m segscale.report.breakdown --tables-dir results/tables \\
        --table results/tables/breakdown.csv --out-dir results/figures
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from segscale import cli
from segscale.logs import configure
from segscale.report.figures import save
from segscale.report.runs import read_table, sort_runs, with_strategy
from segscale.report.style import (
    apply_style,
    combos,
    empty_panel,
    excluded_note,
    finish,
    grid,
    ok_runs,
    panel_title,
    select,
    wrap,
)
from segscale.study import BREAKDOWN_COLUMNS, RUN_KEYS

log = logging.getLogger(__name__)

FIGURE = "breakdown"
#: Components inside ``epoch_time_s``; ``other_s`` is what they leave of it.
IN_EPOCH = ("compute_s", "allreduce_s", "input_wait_s", "validation_s")
#: (column, legend label), bottom to top of a bar.
STACK = (
    ("compute_s", "compute (forward, backward, update)"),
    ("allreduce_s", "allreduce (exposed, incl. waiting for the slowest rank)"),
    ("input_wait_s", "input wait"),
    ("validation_s", "validation"),
    ("other_s", "other (in the epoch)"),
    ("checkpoint_s", "checkpointing"),
    ("startup_per_epoch_s", "start-up (per epoch)"),
)
TABLE_COLUMNS = (*RUN_KEYS, "status", "epochs", "epoch_time_s", *IN_EPOCH, "other_s",
                 "checkpoint_s", "startup_s", "startup_per_epoch_s")


def _numeric(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[col], errors="coerce")


def breakdown_table(history: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run with history: mean seconds per epoch of every component.

    ``other_s`` is computed epoch by epoch and then averaged (so the in-epoch columns and it
    add up to ``epoch_time_s``); a history without the breakdown columns (older runs) gives
    NaN components. ``startup_s`` comes from ``runs`` (``run.json``); NaN when unknown.
    """
    if history.empty or "epoch" not in history:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    history, runs = with_strategy(history), with_strategy(runs)
    h = history[[*RUN_KEYS, "status"]].copy()
    h["epoch_time_s"] = _numeric(history, "epoch_time_s")
    for col in BREAKDOWN_COLUMNS:
        h[col] = _numeric(history, col)
    h["other_s"] = h["epoch_time_s"] - h[list(IN_EPOCH)].sum(axis=1, min_count=len(IN_EPOCH))
    keys = [*RUN_KEYS, "status"]
    means = h.groupby(keys, dropna=False)[["epoch_time_s", *IN_EPOCH, "other_s",
                                           "checkpoint_s"]].mean()
    means.insert(0, "epochs", h.groupby(keys, dropna=False).size())
    table = means.reset_index()
    table["status"] = table["status"].astype(str)
    startup = (runs.set_index(list(RUN_KEYS))["startup_s"]
               if not runs.empty and "startup_s" in runs else pd.Series(dtype=float))
    table["startup_s"] = [
        float(startup.get(tuple(r), math.nan)) if len(startup) else math.nan
        for r in table[list(RUN_KEYS)].itertuples(index=False, name=None)]
    table["startup_s"] = pd.to_numeric(table["startup_s"], errors="coerce")
    table["startup_per_epoch_s"] = table["startup_s"] / table["epochs"]
    return sort_runs(table[list(TABLE_COLUMNS)])


def by_gpus(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every stacked component over the ok runs of each (dataset, arch, strategy,
    gpus), with ``n_runs`` (how many runs the means are over)."""
    ok = with_strategy(ok_runs(table))
    cols = [c for c, _ in STACK]
    keys = ["dataset", "arch", "strategy", "gpus"]
    if ok.empty:
        return pd.DataFrame(columns=[*keys, "n_runs", "epoch_time_s", *cols])
    grouped = ok.groupby(keys)
    out = grouped[["epoch_time_s", *cols]].mean()
    out.insert(0, "n_runs", grouped.size())
    return sort_runs(out.reset_index(), keys)


def fig_breakdown(table: pd.DataFrame):
    """Stacked mean seconds per epoch by component, one bar per GPU count, per panel."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    means = by_gpus(table)
    panels = combos(table)
    nrows, ncols = wrap(len(panels))
    fig, axes = grid(nrows, ncols)
    colors = dict(zip([c for c, _ in STACK], sns.color_palette("colorblind", len(STACK)),
                      strict=True))
    if not panels:
        empty_panel(axes[0, 0], "no run has a time breakdown")
    for ax, (dataset, arch) in zip(np.ravel(axes), panels, strict=False):
        ax.set_title(panel_title(dataset, arch))
        data = select(means, dataset, arch)
        drawn = data.dropna(subset=["compute_s"]) if not data.empty else data
        if drawn.empty:
            empty_panel(ax, "no ok run with the breakdown columns\n(history.csv of an older "
                            "run, or every run failed)")
            continue
        x = np.arange(len(drawn))
        bottom = np.zeros(len(drawn))
        for col, label in STACK:
            height = np.clip(np.nan_to_num(drawn[col].to_numpy(float)), 0, None)
            ax.bar(x, height, bottom=bottom, width=0.65, color=colors[col], label=label,
                   edgecolor="white", linewidth=0.5)
            bottom += height
        for xi, top, n in zip(x, bottom, drawn["n_runs"], strict=True):
            ax.annotate(f"n={int(n)}", (xi, top), textcoords="offset points", xytext=(0, 2),
                        ha="center", fontsize=8, color="0.3")
        several = drawn["strategy"].nunique() > 1  # one bar per (strategy, GPUs)
        ax.set_xticks(x, [f"{int(g)}\n{s}" if several else str(int(g))
                          for g, s in zip(drawn["gpus"], drawn["strategy"], strict=True)],
                      fontsize=8 if several else None)
        ax.set_xlabel("GPUs" + (" and strategy" if several else ""))
        ax.set_ylabel("seconds per epoch (mean)")
        ax.set_ylim(0, max(bottom.max(), 1e-9) * 1.12)
    for ax in np.ravel(axes)[len(panels):]:
        ax.set_visible(False)
    finish(fig, axes, "Where the time of an epoch goes", excluded_note(table))
    plt.setp(fig.legends, title=None)
    return fig


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.report.breakdown", __doc__)
    p.add_argument("--tables-dir", type=Path, required=True,
                   help="folder of runs.csv and history.csv (segscale.report.tables)")
    p.add_argument("--table", type=Path, required=True, help="breakdown.csv to write")
    p.add_argument("--out-dir", type=Path, required=True,
                   help=f"folder for {FIGURE}.png and {FIGURE}.svg")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from segscale.report.tables import write_csv

    args = build_parser().parse_args(argv)
    configure(logging.DEBUG if args.verbose else logging.INFO)
    try:
        runs = read_table(args.tables_dir / "runs.csv")
        history = read_table(args.tables_dir / "history.csv", required=False)
        table = breakdown_table(history, runs)
    except (ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 1
    apply_style()
    fig = fig_breakdown(table)
    write_csv(table, args.table)
    save(fig, args.out_dir, FIGURE)
    log.info("wrote %s (%d runs) and %s/%s.{png,svg}", args.table, len(table), args.out_dir,
             FIGURE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
