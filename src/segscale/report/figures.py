"""Scaling and accuracy figures drawn from the aggregate tables only (never run directories).

Reads ``runs.csv``, ``scaling.csv``, ``history.csv`` and ``resources.csv`` written by
``segscale.report.tables`` and always writes the same files, so a Snakemake rule can declare them:
``{name}.png`` and ``{name}.svg`` for every name in :data:`FIGURES`. Odd data (one GPU count,
one policy, every run diverged, no resource samples) gives annotated empty panels, not a crash.

Published values (:mod:`segscale.report.published`) are drawn as black stars labelled
"published (Guedria thesis)" wherever the same quantity, architecture and dataset exist.

CLI::

    python -m segscale.report.figures --tables-dir results/tables --out-dir results/figures \\
        [--published CSV | --no-published] [--curve-gpus N]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from segscale import cli

matplotlib.use("Agg")  # before pyplot: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    MaxNLocator,
    NullLocator,
    PercentFormatter,
)

from segscale.fileio import atomic_path  # noqa: E402
from segscale.logs import configure  # noqa: E402
from segscale.report.published import (  # noqa: E402
    default_published,
    load_published,
    published_points,
)
from segscale.report.runs import (  # noqa: E402
    of_strategy,
    primary_strategy,
    read_table,
    with_strategy,
)
from segscale.report.strategies import fig_strategies  # noqa: E402
from segscale.report.style import (  # noqa: E402
    BASELINE_COLOR,
    apply_style,
    combos,
    dodge,
    draw_published,
    draw_series,
    empty_panel,
    excluded_note,
    finish,
    gpu_axis,
    grid,
    human_duration,
    ok_runs,
    panel_title,
    policy_order,
    policy_style,
    select,
    time_unit,
    wrap,
)
from segscale.study import BASELINE_POLICY, EARLY_STOPPED, OK  # noqa: E402

log = logging.getLogger(__name__)

FIGURES = ("training_time", "speedup", "efficiency", "metrics_vs_gpus", "curves", "resources",
           "strategies")
FORMATS = ("png", "svg")
# (column, title, higher is better); drawn in this order when present.
METRICS = (
    ("dice", "Dice", True), ("mean_iou", "mean IoU", True),
    ("mean_accuracy", "mean accuracy (MA)", True), ("pixel_accuracy", "pixel accuracy (PA)", True),
    ("fw_iou", "frequency-weighted IoU", True), ("sensitivity", "sensitivity (TPR)", True),
    ("specificity", "specificity (TNR)", True),
    ("avg_hausdorff", "average Hausdorff distance", False),
)
METRIC_COLS = 4  # metric panels per row: 8 metrics are two rows per (dataset, arch)
RESOURCE_PANELS = (
    ("gpu_util", "GPU utilisation (%)", 1.0), ("gpu_mem_mb", "GPU memory (GiB)", 1 / 1024),
    ("cpu_percent", "CPU (% of one core)", 1.0), ("rss_mb", "resident memory (GiB)", 1 / 1024),
    ("net_mb_s", "network sent + received (MB/s)", 1.0),
)


# How scaling figures mark points that are not plain time-to-train comparisons.
UNEQUAL_LABEL = "unequal work (hollow): speedup of different work, see scaling.csv note"
EARLY_LABEL = "early-stopped run (x): not in the mean"


@dataclass(frozen=True)
class Tables:
    """The aggregate tables a figure may use."""

    runs: pd.DataFrame
    scaling: pd.DataFrame
    history: pd.DataFrame
    resources: pd.DataFrame


# --------------------------------------------------------------------------- inputs
def load_tables(tables_dir: Path) -> Tables:
    return Tables(runs=read_table(tables_dir / "runs.csv"),
                  scaling=read_table(tables_dir / "scaling.csv"),
                  history=read_table(tables_dir / "history.csv", required=False),
                  resources=read_table(tables_dir / "resources.csv", required=False))


# --------------------------------------------------------------------------- figures
def unequal_work(sc: pd.DataFrame) -> pd.Series:
    """Rows of the scaling table whose speedup compares different work (``equal_work``
    False); an unknown (empty) value is not marked."""
    if "equal_work" not in sc:
        return pd.Series(False, index=sc.index)
    return sc["equal_work"].map(lambda v: str(v).strip().lower() in ("false", "0", "0.0"))


def early_stopped(runs: pd.DataFrame) -> pd.Series:
    """Ok runs that stopped early: kept out of the time to train."""
    if runs.empty or "stop_reason" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["status"].eq(OK) & runs["stop_reason"].eq(EARLY_STOPPED)


def mark_unequal(ax, d: pd.DataFrame, y, policy: str, i: int, n: int) -> None:
    """Hollow markers over a series' points that compare unequal work."""
    bad = unequal_work(d).to_numpy()
    if bad.any():
        style = policy_style(policy)
        ax.scatter(dodge(d["gpus"].to_numpy()[bad], i, n), np.asarray(y, float)[bad],
                   marker=style["marker"], s=64, facecolors="white", edgecolors=style["color"],
                   linewidths=1.6, zorder=5, label=UNEQUAL_LABEL)


def scaling_note(runs: pd.DataFrame) -> str:
    """The runs not drawn, and the early-stopped ones left out of the time to train."""
    notes = [excluded_note(runs)]
    n_early = int(early_stopped(runs).sum())
    if n_early:
        notes.append(f"{n_early} early-stopped run(s) left out of the time to train")
    return "; ".join(filter(None, notes))


def fig_scaling(t: Tables, pub: pd.DataFrame, kind: str):
    """Training time, speedup or efficiency vs GPUs, one panel per (dataset, arch)."""
    panels = combos(t.scaling)
    fig, axes = grid(*wrap(len(panels)))
    if not panels:
        empty_panel(axes[0, 0], "no runs in the scaling table")
    ok_time = ok_runs(t.runs)
    stopped = early_stopped(ok_time)
    tmax = float(np.nanmax(t.scaling["time_mean_s"])) if "time_mean_s" in t.scaling and \
        t.scaling["time_mean_s"].notna().any() else math.nan
    unit, div = time_unit(tmax)
    for ax, (ds, arch) in zip(axes.ravel(), panels, strict=False):
        sc = select(t.scaling, ds, arch)
        col = {"training_time": "time_mean_s", "speedup": "speedup",
               "efficiency": "efficiency"}[kind]
        sc_ok = sc[sc[col].notna()]
        ax.set_title(panel_title(ds, arch))
        if sc_ok.empty:
            why = "no successful runs" if kind == "training_time" else \
                "no speedup: no successful 1-GPU baseline"
            empty_panel(ax, why)
            continue
        pts = published_points(pub, "train_time" if kind == "training_time" else kind, ds, arch)
        gpus = sorted(set(sc["gpus"]) | set(pts["gpus"].astype(int) if not pts.empty else []))
        pols = policy_order(sc_ok["policy"].unique())
        for i, pol in enumerate(pols):
            d = sc_ok[sc_ok["policy"].eq(pol)].sort_values("gpus")
            if kind == "training_time":
                draw_series(ax, d["gpus"], d["time_mean_s"] / div, d["time_std_s"] / div,
                            pol, i, len(pols))
                mark_unequal(ax, d, d["time_mean_s"] / div, pol, i, len(pols))
                r = select(ok_time, ds, arch)
                r = r[r["policy"].eq(pol)]
                early = stopped.reindex(r.index, fill_value=False)
                ax.scatter(dodge(r["gpus"][~early], i, len(pols)),
                           r["train_time_s"][~early] / div, s=12,
                           color=policy_style(pol)["color"], alpha=0.45, zorder=2, lw=0)
                if early.any():
                    ax.scatter(dodge(r["gpus"][early], i, len(pols)),
                               r["train_time_s"][early] / div, s=30, marker="x",
                               color=policy_style(pol)["color"], zorder=4, lw=1.4,
                               label=EARLY_LABEL)
            else:
                draw_series(ax, d["gpus"], d[kind], d[f"{kind}_std"], pol, i, len(pols))
                mark_unequal(ax, d, d[kind], pol, i, len(pols))
        xs = np.geomspace(min(gpus), max(gpus), 50)
        if kind == "training_time":
            base = sc[sc["gpus"].eq(1) & sc["policy"].eq(BASELINE_POLICY)]["time_mean_s"]
            if base.notna().any():
                ax.plot(xs, float(base.iloc[0]) / div / xs, ls="--", color=BASELINE_COLOR,
                        lw=1.2, label="ideal: T(1)/N from the 1-GPU baseline (none)")
            draw_published(ax, pts, 1 / div, human_duration)
            ax.set_yscale("log")
            ax.set_ylabel(f"training time ({unit}, log scale)")
        elif kind == "speedup":
            ax.plot(xs, xs, ls="--", color=BASELINE_COLOR, lw=1.2, label="ideal (S = N)")
            draw_published(ax, pts)
            ax.set_yscale("log", base=2)
            ax.yaxis.set_major_locator(FixedLocator(gpus))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.set_yticklabels([str(g) for g in gpus])
            ax.set_ylabel("speedup S(N) = T(1)/T(N)")
        else:
            ax.axhline(1.0, ls="--", color=BASELINE_COLOR, lw=1.2, label="ideal (E = 100%)")
            draw_published(ax, pts, text="{:.0%}".format)
            top = np.nanmax(sc_ok["efficiency"] + sc_ok["efficiency_std"].fillna(0))
            ax.set_ylim(0, max(1.15, float(top) * 1.1))
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_ylabel("efficiency E(N) = S(N)/N")
        gpu_axis(ax, gpus)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(len(panels) == 0)
    title = {"training_time": "Training time vs GPUs (mean ± sd over repeats; dots: runs)",
             "speedup": "Speedup vs GPUs (mean ± propagated sd)",
             "efficiency": "Scaling efficiency vs GPUs (mean ± propagated sd)"}[kind]
    finish(fig, axes, title, scaling_note(t.runs))
    return fig


def fig_metrics(t: Tables, pub: pd.DataFrame):
    """Each test metric vs GPUs per warmup policy, with the 1-GPU ``none`` baseline dashed.

    Panels wrap :data:`METRIC_COLS` to a row; each (dataset, arch) starts a new row block.
    """
    ok = ok_runs(t.runs)
    metrics = [m for m in METRICS if m[0] in ok and ok[m[0]].notna().any()]
    panels = combos(t.runs)
    block, ncols = wrap(len(metrics), METRIC_COLS)
    fig, axes = grid(block * len(panels), ncols, width=3.5, height=2.9)
    if not metrics or not panels:
        empty_panel(axes[0, 0], "no evaluated successful runs: nothing to draw")
        for ax in axes.ravel()[1:]:
            ax.set_visible(False)
        finish(fig, axes, "Test metrics vs GPUs", excluded_note(t.runs))
        return fig
    for p, (ds, arch) in enumerate(panels):
        data = select(ok, ds, arch)
        pols = policy_order(data["policy"].unique()) if not data.empty else []
        block_axes = axes[p * block:(p + 1) * block].ravel()
        for ax in block_axes[len(metrics):]:
            ax.set_visible(False)
        for ax, (col, name, higher) in zip(block_axes, metrics, strict=False):
            ax.set_title(f"{name}: {panel_title(ds, arch)}" if len(panels) > 1 else name,
                         fontsize=10)
            d = data[data[col].notna()] if not data.empty else data
            if d.empty:
                empty_panel(ax, "no successful runs\nwith this metric")
                continue
            pts = published_points(pub, col, ds, arch)
            base = d[d["gpus"].eq(1) & d["policy"].eq(BASELINE_POLICY)][col]
            if len(base):
                mu, sd = base.mean(), base.std()
                ax.axhline(mu, ls="--", color=BASELINE_COLOR, lw=1.2,
                           label="1-GPU baseline (none): mean ± sd")
                if np.isfinite(sd) and sd > 0:
                    ax.axhspan(mu - sd, mu + sd, color=BASELINE_COLOR, alpha=0.12, lw=0)
            for i, pol in enumerate(pols):
                g = d[d["policy"].eq(pol)].groupby("gpus")[col].agg(["mean", "std"])
                if len(g):
                    draw_series(ax, g.index, g["mean"], g["std"], pol, i, len(pols))
            if higher:
                draw_published(ax, pts, text="{:.2%}".format)
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
                ax.set_ylabel("% (higher is better)", fontsize=8, color="0.3")
            else:
                draw_published(ax, pts)
                ax.set_ylabel("distance (lower is better)", fontsize=8, color="0.3")
            gpu_axis(ax, set(d["gpus"]) | set(pts["gpus"].astype(int)))
            lo, hi = ax.get_ylim()
            if higher and hi > 1.0 >= d[col].max():  # a score never exceeds 100%
                ax.set_ylim(max(lo, 2 * d[col].min() - 1.0 - 0.005), 1.001)
    finish(fig, axes, "Test metrics vs GPUs per warmup policy (mean ± sd over successful "
           "repeats)", excluded_note(t.runs))
    return fig


def choose_curve_gpus(history: pd.DataFrame, requested: int | None) -> int | None:
    """The requested GPU count if ``history`` has it, else its largest one (warned)."""
    if history.empty:
        return requested
    have = sorted(set(history["gpus"].astype(int)))
    if requested in have:
        return requested
    if requested is not None:
        log.warning("%s: no curves at %d GPUs; drawing %d GPUs instead",
                    "/".join(map(str, combos(history)[0])), requested, have[-1])
    return have[-1]


def fig_curves(t: Tables, gpus: int | None):
    """lr, training loss and validation loss per epoch, one line per policy at ``gpus``.

    A (dataset, arch) without runs at ``gpus`` shows its largest GPU count instead (said in
    its title). The 1-GPU ``none`` baseline is drawn dashed for comparison.
    """
    rows = (("lr", "learning rate"), ("loss", "training loss"), ("val_loss", "validation loss"))
    hist = t.history
    panels = combos(t.runs)
    fig, axes = grid(len(rows), max(len(panels), 1), width=4.6, height=2.6, sharex="col")
    if hist.empty or not panels:
        for r, (_, label) in enumerate(rows):
            axes[r, 0].set_ylabel(label)
            empty_panel(axes[r, 0], "no training history (history.csv) in any run")
        finish(fig, axes, "Learning rate and loss per epoch")
        return fig
    hist = hist.replace([np.inf, -np.inf], np.nan)
    for c, (ds, arch) in enumerate(panels):
        h = select(hist, ds, arch)
        n = choose_curve_gpus(h, gpus)
        axes[0, c].set_title(f"{panel_title(ds, arch)}, {n} GPU{'s' if n != 1 else ''}"
                             if n is not None else panel_title(ds, arch))
        at_n = h[h["gpus"].eq(n)] if not h.empty else h
        base = h[h["gpus"].eq(1) & h["policy"].eq(BASELINE_POLICY) & h["status"].eq(OK)] \
            if not h.empty else h
        pols = policy_order(at_n["policy"].unique()) if not at_n.empty else []
        for r, (col, label) in enumerate(rows):
            ax = axes[r, c]
            ax.set_ylabel(label)
            if at_n.empty or col not in at_n or at_n[col].notna().sum() == 0:
                empty_panel(ax, f"no {label} recorded")
                continue
            if n != 1 and len(base) and base[col].notna().any():
                m = base.groupby("epoch")[col].mean()
                ax.plot(m.index + 1, m.values, ls="--", color=BASELINE_COLOR, lw=1.3,
                        label="1-GPU baseline (none)")
            for pol in pols:
                d = at_n[at_n["policy"].eq(pol)]
                style = policy_style(pol)
                ok = d[d["status"].eq(OK)]
                if len(ok):
                    g = ok.groupby("epoch")[col].agg(["mean", "std"]).fillna({"std": 0})
                    ax.plot(g.index + 1, g["mean"], color=style["color"], lw=1.9, label=pol)
                    ax.fill_between(g.index + 1, g["mean"] - g["std"], g["mean"] + g["std"],
                                    color=style["color"], alpha=0.18, lw=0)
                for _, run in d[~d["status"].eq(OK)].groupby("repeat"):
                    ax.plot(run["epoch"] + 1, run[col], color=style["color"], lw=1.1, ls=":",
                            marker="x", ms=6, label="diverged / failed run (dotted, x)")
            vals = at_n[col].dropna()
            if col != "lr" and len(vals) and (vals > 0).all():
                ax.set_yscale("log")
            elif col == "lr":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[-1, c].set_xlabel("epoch")
    finish(fig, axes, "Learning rate and loss per epoch (mean ± sd over successful repeats)")
    return fig


def network_rate(run: pd.DataFrame) -> pd.Series:
    """MB/s sent + received; the sampler's byte columns are cumulative counters if monotone."""
    run = run.sort_values("time_s")
    total = run["net_sent_bytes"].astype(float) + run["net_recv_bytes"].astype(float)
    dt = run["time_s"].diff()
    cumulative = bool((total.diff().dropna() >= 0).all())
    rate = total.diff() / dt if cumulative else total / dt.median()
    return (rate / 1e6).where(dt > 0)


def pick_resource_run(res: pd.DataFrame, gpus: int | None) -> pd.DataFrame:
    """One run to show: at ``gpus`` (else the most GPUs), policy none, ok, lowest repeat."""
    have = sorted(set(res["gpus"].astype(int)))
    n = gpus if gpus in have else have[-1]
    cand = res[res["gpus"].eq(n)]
    key = cand.assign(_p=~cand["policy"].eq(BASELINE_POLICY), _s=~cand["status"].eq(OK))
    first = key.sort_values(["_p", "_s", "policy", "repeat"]).iloc[0]
    return cand[cand["policy"].eq(first["policy"]) & cand["repeat"].eq(first["repeat"])]


def _resource_series(d: pd.DataFrame, col: str, scale: float) -> pd.Series:
    if col == "net_mb_s":
        if {"net_sent_bytes", "net_recv_bytes"} <= set(d):
            return network_rate(d)
    elif col in d:
        return d[col].astype(float) * scale
    return pd.Series(np.nan, index=d.index)


def fig_resources(t: Tables, gpus: int | None):
    """Per-rank sampler timelines of one representative run per (dataset, arch)."""
    res = t.resources
    panels = combos(t.runs) or [("", "")]
    fig, axes = grid(len(RESOURCE_PANELS), len(panels), width=4.6, height=2.2, sharex="col")
    for c, (ds, arch) in enumerate(panels):
        sub = select(res, ds, arch) if not res.empty else res
        for r, (_, label, _) in enumerate(RESOURCE_PANELS):
            axes[r, c].set_ylabel(label, fontsize=9)
        if sub.empty:
            axes[0, c].set_title(panel_title(ds, arch) if ds else "")
            for r in range(len(RESOURCE_PANELS)):
                empty_panel(axes[r, c], "no resource samples\n(resources/rank*.csv)")
            continue
        run = pick_resource_run(sub, gpus)
        first = run.iloc[0]
        unit, div = ("min", 60.0) if float(run["time_s"].max()) >= 600 else ("s", 1.0)
        ranks = sorted(run["rank"].unique())
        colors = sns.color_palette("viridis", len(ranks))
        axes[0, c].set_title(f"{panel_title(ds, arch)}\n{first['policy']}, {int(first['gpus'])} "
                             f"GPUs, repeat {int(first['repeat'])} ({first['status']})",
                             fontsize=10)
        for r, (col, _, scale) in enumerate(RESOURCE_PANELS):
            ax = axes[r, c]
            drawn = False
            for rank, color in zip(ranks, colors, strict=True):
                d = run[run["rank"].eq(rank)].sort_values("time_s")
                y = _resource_series(d, col, scale)
                if y.notna().any():
                    ax.plot(d["time_s"] / div, y, color=color, lw=1.2, alpha=0.85,
                            label=f"rank {rank}" if len(ranks) <= 8 else None)
                    drawn = True
            if not drawn:
                why = "NVML unavailable" if col.startswith("gpu") else "not sampled"
                empty_panel(ax, f"no samples ({why})")
            elif col == "gpu_util":
                ax.set_ylim(0, 105)
        axes[-1, c].set_xlabel(f"time since start ({unit})")
    finish(fig, axes, "Resource utilisation per rank (one run per dataset and architecture)")
    return fig


# --------------------------------------------------------------------------- output
def output_paths(out_dir: Path) -> list[Path]:
    """Every file :func:`render_all` writes: ``{name}.{fmt}`` for FIGURES x FORMATS."""
    return [out_dir / f"{name}.{fmt}" for name in FIGURES for fmt in FORMATS]


def provenance() -> str:
    """What drew a figure (package version and code revision), embedded in each file."""
    from segscale import __version__
    from segscale.provenance import git_revision

    return f"segscale {__version__} (git {git_revision() or 'unknown'})"


def save(fig, out_dir: Path, name: str, made_by: str | None = None) -> None:
    """PNG and SVG, atomically, without timestamps (same tables and code, same bytes), with
    the package version and code revision in the files' metadata."""
    made_by = made_by or provenance()
    for fmt in FORMATS:
        meta = ({"Date": None, "Creator": made_by} if fmt == "svg"
                else {"Software": made_by})
        with atomic_path(out_dir / f"{name}.{fmt}", suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, metadata=meta, bbox_inches="tight")
    plt.close(fig)


def of_primary_strategy(t: Tables) -> tuple[Tables, str | None]:
    """The tables restricted to one strategy (the first swept, Horovod when it is), for the
    figures whose lines are policies; None when the runs have a single strategy."""
    strategy = primary_strategy(t.runs)
    if t.runs.empty or with_strategy(t.runs)["strategy"].nunique() < 2:
        return t, None
    return Tables(*(of_strategy(frame, strategy) for frame in
                    (t.runs, t.scaling, t.history, t.resources))), strategy


def render_all(t: Tables, pub: pd.DataFrame, out_dir: Path, curve_gpus: int | None) -> list[Path]:
    apply_style()
    one, strategy = of_primary_strategy(t)
    if strategy is not None:
        log.info("several strategies: the per-policy figures show %s runs, strategies.png "
                 "compares them all", strategy)
    builders = {
        "training_time": lambda: fig_scaling(one, pub, "training_time"),
        "speedup": lambda: fig_scaling(one, pub, "speedup"),
        "efficiency": lambda: fig_scaling(one, pub, "efficiency"),
        "metrics_vs_gpus": lambda: fig_metrics(one, pub),
        "curves": lambda: fig_curves(one, curve_gpus),
        "resources": lambda: fig_resources(one, curve_gpus),
        "strategies": lambda: fig_strategies(t.runs, t.scaling, t.resources),
    }
    made_by = provenance()
    for name in FIGURES:
        fig = builders[name]()
        if strategy is not None and name != "strategies":
            fig.suptitle(f"{fig.get_suptitle()}\n{strategy} runs (strategies compared in "
                         "strategies.png)", fontsize=12)
        save(fig, out_dir, name, made_by)
        log.info("wrote %s/%s.{%s}", out_dir, name, ",".join(FORMATS))
    return output_paths(out_dir)


@dataclass(frozen=True)
class PlotConfig:
    tables_dir: Path
    out_dir: Path
    published: Path | None
    curve_gpus: int | None


def plot(cfg: PlotConfig) -> list[Path]:
    return render_all(load_tables(cfg.tables_dir), load_published(cfg.published),
                      cfg.out_dir, cfg.curve_gpus)


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.report.figures", __doc__)
    p.add_argument("--tables-dir", type=Path, required=True,
                   help="directory with runs.csv, scaling.csv, history.csv, resources.csv")
    p.add_argument("--out-dir", type=Path, required=True)
    pub = p.add_mutually_exclusive_group()
    pub.add_argument("--published", type=Path, default=None,
                     help="published values CSV (default: the packaged thesis.csv)")
    pub.add_argument("--no-published", action="store_true", help="draw no published values")
    p.add_argument("--curve-gpus", type=int, default=None,
                   help="GPU count for the lr/loss curves and resource timelines "
                        "(default: the largest)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    published = None if args.no_published else (args.published or default_published())
    cfg = PlotConfig(args.tables_dir, args.out_dir, published, args.curve_gpus)
    return cli.run_logged(lambda: plot(cfg), log)


if __name__ == "__main__":
    sys.exit(main())
