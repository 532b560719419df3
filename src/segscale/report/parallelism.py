"""Local parallelism (Lerat et al. 2022): how a node's cores are best split into ranks per
node x threads per rank, for the same work: ``results/tables/parallelism.csv`` and
``parallelism.png`` of the ``parallelism`` target (workflow/rules/parallelism.smk).

Every split trains the same model on the same store with the same *global* batch (divided
over the ranks) and the same images per epoch; threads per rank are TensorFlow's intra- and
inter-op threads (``hparams.threads_per_rank``). A split's speed is its steady-state images/s
(median over the epochs after the first, which traces the graph). The splits (:func:`splits`)
and the global batch (:func:`global_batch`) are pure functions the workflow also uses.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import pandas as pd

from segscale import cli
from segscale.fileio import atomic_path, read_json
from segscale.logs import configure
from segscale.report.runs import read_csv_named
from segscale.study import HISTORY_FILE, OK, RUN_RECORD

log = logging.getLogger(__name__)
FIGURE = "parallelism"

COLUMNS = ("dataset", "arch", "strategy", "ranks_per_node", "threads_per_rank", "cores",
           "batch_per_rank", "global_batch", "images_per_epoch", "equal_work", "status",
           "epochs", "images_per_s", "train_s_per_epoch", "speedup_vs_one_rank", "best")


def splits(cores: int, ranks_per_node: list[int] | None = None,
           threads_per_rank: list[int] | None = None) -> list[tuple[int, int]]:
    """(ranks per node, threads per rank) to measure, fewest ranks first.

    With both lists: every pair of them (the sweep as configured, oversubscribed or not).
    Otherwise every split of ``cores`` into ranks x threads = cores, kept to the ranks or
    threads listed when one list is given.

    Raises:
        ValueError: ``cores`` below 1, or a list that leaves no split.
    """
    if cores < 1:
        raise ValueError(f"parallelism.cores_per_node must be >= 1, got {cores}")
    if ranks_per_node and threads_per_rank:
        return sorted((r, t) for r in set(ranks_per_node) for t in set(threads_per_rank))
    found = [(r, cores // r) for r in range(1, cores + 1) if cores % r == 0]
    if ranks_per_node:
        found = [(r, t) for r, t in found if r in ranks_per_node]
    if threads_per_rank:
        found = [(r, t) for r, t in found if t in threads_per_rank]
    if not found:
        raise ValueError(f"parallelism: no split of {cores} cores into ranks x threads has "
                         f"ranks in {ranks_per_node} and threads in {threads_per_rank}")
    return found


def global_batch(rank_counts: list[int], at_least: int) -> int:
    """The smallest multiple of every rank count that is >= ``at_least``: every split then
    trains whole per-rank batches of the same global batch."""
    lcm = math.lcm(*rank_counts)
    return lcm * max(1, math.ceil(at_least / lcm))


def steady(history: pd.DataFrame, column: str) -> float:
    """Median of ``column`` over the epochs after the first (all of them if only one)."""
    values = history[column].iloc[1:] if len(history) > 1 else history[column]
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def split_row(run_dir: Path) -> dict:
    """One split's row from its run directory (``run.json`` and ``history.csv``).

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable record (names the file).
    """
    record = read_json(run_dir / RUN_RECORD)
    history = (read_csv_named(run_dir / HISTORY_FILE) if (run_dir / HISTORY_FILE).is_file()
               else pd.DataFrame(columns=["images_per_s", "epoch_time_s", "validation_s"]))
    hparams = record.get("hparams") or {}
    ranks, threads = int(record["n_ranks"]), int(hparams.get("threads_per_rank") or 0)
    batch = int(hparams.get("batch_size") or 0)
    history = history.assign(train_s=history["epoch_time_s"] - history["validation_s"])
    return {
        "dataset": record.get("dataset"), "arch": record.get("arch"),
        "strategy": record.get("strategy"), "ranks_per_node": ranks,
        "threads_per_rank": threads, "cores": ranks * threads, "batch_per_rank": batch,
        "global_batch": batch * ranks, "images_per_epoch": record.get("images_per_epoch"),
        "status": record.get("status"), "epochs": len(history),
        "images_per_s": steady(history, "images_per_s"),
        "train_s_per_epoch": steady(history, "train_s"),
    }


def split_table(rows: list[dict]) -> pd.DataFrame:
    """The splits side by side: equal work checked (same images per epoch and global batch
    as the first split), speedup against one rank with all its threads (the first split of
    the fewest ranks), and the fastest ok split marked ``best``."""
    table = pd.DataFrame(rows).sort_values(["ranks_per_node", "threads_per_rank"],
                                           ignore_index=True)
    first = table.iloc[0]
    table["equal_work"] = ((table["images_per_epoch"] == first["images_per_epoch"])
                           & (table["global_batch"] == first["global_batch"]))
    ok = table["status"].eq(OK)
    reference = table[ok & table["ranks_per_node"].eq(table["ranks_per_node"].min())]
    ref = float(reference["images_per_s"].max()) if len(reference) else math.nan
    table["speedup_vs_one_rank"] = table["images_per_s"] / ref
    table["best"] = False
    if ok.any() and table.loc[ok, "images_per_s"].notna().any():
        table.loc[table.loc[ok, "images_per_s"].idxmax(), "best"] = True
    return table[list(COLUMNS)]


def draw(table: pd.DataFrame):
    """Bars of images/s per split (best one dark), the speedup over the fewest-ranks split
    written on each; a split that did other work or did not finish ok is hatched."""
    from segscale.report.style import BASELINE_COLOR, plt, sns

    labels = [f"{r} × {t}" for r, t in zip(table["ranks_per_node"], table["threads_per_rank"],
                                           strict=True)]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(table) + 2), 3.6),
                           layout="constrained")
    palette = sns.color_palette("colorblind")
    colors = [palette[0] if best else "0.7" for best in table["best"]]
    bars = ax.bar(labels, table["images_per_s"].fillna(0), color=colors, edgecolor="black",
                  lw=0.6)
    for bar, (_, row) in zip(bars, table.iterrows(), strict=True):
        if row["status"] != OK or not row["equal_work"]:
            bar.set_hatch("//")
        text = ("not ok" if row["status"] != OK
                else f"{row['speedup_vs_one_rank']:.2f}×" if math.isfinite(
                    row["speedup_vs_one_rank"]) else "n/a")
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                    textcoords="offset points")
    ax.axhline(float(table["images_per_s"].iloc[0]), ls=":", color=BASELINE_COLOR, lw=1)
    ax.set_xlabel("ranks per node × threads per rank")
    ax.set_ylabel("images/s (steady state)")
    first = table.iloc[0]
    ax.set_title(f"Local parallelism: {first['dataset']} · {first['arch']} "
                 f"({first['strategy']}, global batch {first['global_batch']})",
                 fontsize=10)
    return fig


def build_parser():
    p = cli.parser("segscale.report.parallelism", __doc__)
    p.add_argument("--runs", nargs="+", type=Path, required=True,
                   help="run directories of the splits")
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True,
                   help="where parallelism.png and parallelism.svg go")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()

    def work() -> None:
        from segscale.report.figures import save

        table = split_table([split_row(run) for run in args.runs])
        with atomic_path(args.table) as tmp:
            table.to_csv(tmp, index=False)
        save(draw(table), args.out_dir, FIGURE)
        best = table[table["best"]]
        if best.empty:
            log.warning("no split finished ok")
        else:
            row = best.iloc[0]
            log.info("best split: %d ranks x %d threads, %.1f images/s (%.2f x the "
                     "fewest-ranks split)", row["ranks_per_node"], row["threads_per_rank"],
                     row["images_per_s"], row["speedup_vs_one_rank"])

    return cli.run_logged(work, log)


if __name__ == "__main__":
    sys.exit(main())
