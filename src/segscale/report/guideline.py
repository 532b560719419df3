"""The guideline's results beside the sweep (thesis figures 6.4-6.6 and tables 6.1-6.10).

Reads each tuned loop's ``iterations.csv`` (written by ``segscale.tune.step --table``:
one row per iteration, then a ``baseline`` row) and the sweep's ``runs.csv``, and writes

- ``iterations``: every loop's rows stacked, with ``dataset``, ``arch``, ``gpus``;
- ``tuned``: one row per loop: its last iteration (the confirmed model when the baseline was
  reached, the last attempt otherwise), how many iterations it took, whether it reached;
- ``guideline.{png,svg}``: per (dataset, arch), Dice, mean accuracy and mean IoU against GPUs
  for the sweep's fixed policies (mean ± sd over ok repeats), the guideline-tuned GreScale
  (filled when it reached the baseline, hollow when the budget ran out) and the 1-GPU baseline.

CLI::

    python -m segscale.report.guideline --iterations results/tune/*/*/gpus*/iterations.csv \\
        --runs results/tables/runs.csv --iterations-out T/guideline_iterations.csv \\
        --tuned-out T/guideline_tuned.csv --figure F/guideline.png
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are files, never windows

import pandas as pd  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from segscale import cli  # noqa: E402
from segscale.fileio import atomic_path  # noqa: E402
from segscale.logs import configure  # noqa: E402
from segscale.report.runs import of_strategy, read_table  # noqa: E402
from segscale.report.style import (  # noqa: E402
    BASELINE_COLOR,
    apply_style,
    draw_series,
    empty_panel,
    finish,
    gpu_axis,
    grid,
    ok_runs,
    panel_title,
    policy_order,
    policy_style,
)
from segscale.study import (  # noqa: E402
    BASELINE_POLICY,
    DEFAULT_STRATEGY,
    TUNED_POLICY,
    parse_tune_dir,
)

log = logging.getLogger(__name__)

#: (column, title) of the panels: the metrics the thesis's figures 6.4-6.6 compare.
PANELS = (("dice", "Dice"), ("mean_accuracy", "mean accuracy (MA)"), ("mean_iou", "mean IoU"))
LOOP_KEYS = ("dataset", "arch", "gpus")
TUNED_LABEL = f"{TUNED_POLICY} (guideline-tuned)"


def read_iterations(path: Path) -> pd.DataFrame:
    """One loop's table with its (dataset, arch, gpus) from the path and a ``baseline`` flag.

    Raises:
        ValueError: a path not ending in ``{dataset}/{arch}/gpus{n}/iterations.csv``, an
            unreadable CSV, or one without iterations or a baseline row.
    """
    point = parse_tune_dir(str(Path(path).parent))
    if point is None:
        raise ValueError(f"{path}: not a loop's table ({{dataset}}/{{arch}}/gpus{{n}}/...)")
    table = read_table(Path(path))
    if "action" not in table or "iteration" not in table:
        raise ValueError(f"{path}: columns 'iteration' and 'action' missing")
    baseline = table["action"].eq("baseline") & table["iteration"].isna()
    if not baseline.any() or baseline.all():
        raise ValueError(f"{path}: needs iteration rows and one baseline row")
    return table.assign(baseline=baseline, **point)


def stack_iterations(paths: Sequence[Path]) -> pd.DataFrame:
    """Every loop's rows, loops in (dataset, arch, gpus) order."""
    if not paths:
        raise ValueError("no iterations.csv given: run the guideline loop (target tune) first")
    frames = [read_iterations(Path(p)) for p in paths]
    table = pd.concat(frames, ignore_index=True)
    first = [*LOOP_KEYS, "iteration", "action"]
    table = table[[*first, *(c for c in table.columns if c not in first)]]
    return table.sort_values([*LOOP_KEYS, "baseline", "iteration"], kind="stable",
                             ignore_index=True)


def tuned_results(iterations: pd.DataFrame) -> pd.DataFrame:
    """One row per loop: the last iteration's metrics, iterations run, reached or not, and
    the baseline it was compared with (``baseline_{metric}``)."""
    metrics = [c for c, _ in PANELS if c in iterations]
    rows = []
    for key, loop in iterations.groupby(list(LOOP_KEYS), sort=True):
        runs = loop[~loop["baseline"]].sort_values("iteration")
        last, base = runs.iloc[-1], loop[loop["baseline"]].iloc[0]
        row = dict(zip(LOOP_KEYS, key))
        row.update(iterations_run=len(runs), final_iteration=int(last["iteration"]),
                   final_action=last["action"],
                   reached=str(last.get("reached", "")).lower() == "true")
        row.update({m: float(last[m]) for m in metrics})
        row.update({f"baseline_{m}": float(base[m]) for m in metrics})
        rows.append(row)
    return pd.DataFrame(rows)


def draw(tuned: pd.DataFrame, runs: pd.DataFrame):
    """The figure: one row of panels per tuned (dataset, arch)."""
    apply_style()
    combos = sorted(set(zip(tuned["dataset"], tuned["arch"])))
    fig, axes = grid(len(combos), len(PANELS), width=3.8, height=3.0)
    ok = ok_runs(runs)
    for row, (ds, arch) in enumerate(combos):
        loops = tuned[tuned["dataset"].eq(ds) & tuned["arch"].eq(arch)].sort_values("gpus")
        sweep = ok[ok["dataset"].astype(str).eq(ds) & ok["arch"].astype(str).eq(arch)] \
            if not ok.empty else ok
        fixed = sweep[~sweep["policy"].eq(TUNED_POLICY)] if not sweep.empty else sweep
        pols = policy_order(fixed["policy"].unique()) if not fixed.empty else []
        for ax, (col, name) in zip(axes[row], PANELS):
            ax.set_title(f"{name}: {panel_title(ds, arch)}", fontsize=10)
            if col not in loops or loops[col].isna().all():
                empty_panel(ax, f"the loop recorded no {name}")
                continue
            base = sweep[sweep["gpus"].eq(1) & sweep["policy"].eq(BASELINE_POLICY)] \
                if col in sweep else sweep.iloc[0:0]
            level = base[col].mean() if len(base) else loops[f"baseline_{col}"].iloc[0]
            ax.axhline(level, ls="--", color=BASELINE_COLOR, lw=1.2,
                       label="1-GPU baseline (none)")
            for i, pol in enumerate(pols):
                g = fixed[fixed["policy"].eq(pol) & fixed["gpus"].gt(1)].groupby("gpus")[col] \
                    .agg(["mean", "std"]) if col in fixed else pd.DataFrame()
                if len(g):
                    draw_series(ax, g.index, g["mean"], g["std"], pol, i, len(pols) + 1)
            style = policy_style(TUNED_POLICY)
            ax.plot(loops["gpus"], loops[col], color=style["color"], lw=1.8, zorder=4,
                    label=TUNED_LABEL)
            for reached, marker_face in ((True, style["color"]), (False, "white")):
                pts = loops[loops["reached"].eq(reached)]
                ax.scatter(pts["gpus"], pts[col], marker=style["marker"], s=55, zorder=5,
                           facecolor=marker_face, edgecolor=style["color"], linewidth=1.6,
                           label=None if reached else "tuned, baseline not reached")
            gpu_axis(ax, [*loops["gpus"], *(fixed["gpus"][fixed["gpus"].gt(1)]
                                            if not fixed.empty else [])])
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
    if not combos:
        empty_panel(axes[0, 0], "no tuned loop: nothing to draw")
    finish(fig, axes, "GreScale tuned by the guideline vs fixed lr policies (thesis figs 6.4-6.6)")
    return fig


def write_guideline(iteration_paths: Sequence[Path], runs_csv: Path | None,
                    iterations_out: Path, tuned_out: Path, figure: Path) -> pd.DataFrame:
    """Read everything first, then write the two tables and the figure (PNG and SVG)."""
    from segscale.report.figures import provenance, save

    iterations = stack_iterations(iteration_paths)
    tuned = tuned_results(iterations)
    runs = pd.DataFrame(columns=["dataset", "arch", "policy", "gpus", "status"])
    if runs_csv is not None:
        # the loop trains Horovod runs: the sweep's lines it is drawn against are Horovod's
        runs = of_strategy(read_table(runs_csv), DEFAULT_STRATEGY)
    fig = draw(tuned, runs)
    for path, table in ((iterations_out, iterations), (tuned_out, tuned)):
        with atomic_path(path, suffix=".csv") as tmp:
            table.to_csv(tmp, index=False)
    save(fig, figure.parent, figure.stem, provenance())
    log.info("%d tuned loops; %d reached the baseline", len(tuned), int(tuned["reached"].sum()))
    return tuned


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.report.guideline", __doc__)
    p.add_argument("--iterations", nargs="+", type=Path, required=True,
                   help="iterations.csv of every tuned loop")
    p.add_argument("--runs", type=Path, default=None, help="the sweep's runs.csv")
    p.add_argument("--iterations-out", type=Path, required=True)
    p.add_argument("--tuned-out", type=Path, required=True)
    p.add_argument("--figure", type=Path, required=True,
                   help="the PNG to write (the SVG goes beside it)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()
    return cli.run_logged(lambda: write_guideline(args.iterations, args.runs,
                                                  args.iterations_out, args.tuned_out,
                                                  args.figure), log)


if __name__ == "__main__":
    sys.exit(main())

