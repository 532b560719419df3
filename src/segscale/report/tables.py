"""Tidy tables from the runs, so figures never read run directories.

Outputs (one row per run unless said otherwise):

- ``runs`` (CSV + Parquet): sweep parameters, ``status`` (ok | diverged | failed), total and
  per-epoch training time, images/s, last-epoch training values and every metric at every
  level of ``metrics.json``, flattened to ``{level}_{metric}`` columns.
- ``summary``: long format, one row per configuration x measure: mean, sample standard
  deviation and count over the *ok* repeats, plus the run counts per status.
- ``scaling``: speedup and efficiency against the matching 1-GPU baseline, with the spread over
  repeats propagated (see :func:`scaling`).
- ``history``: every run's ``history.csv`` rows, stacked, with the run's parameters.
- ``resources``: every rank's sampler series, stacked and thinned to a bounded size.

Reading the run directories is :mod:`segscale.report.runs`.

CLI::

    python -m segscale.report.tables --metrics M1 M2 ... [--runs-root results/runs] \\
        --runs-csv T/runs.csv --runs-parquet T/runs.parquet --summary T/summary.csv \\
        --scaling T/scaling.csv --history T/history.csv --resources T/resources.csv
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from segscale import cli
from segscale.fileio import atomic_path
from segscale.logs import configure
from segscale.report.runs import (
    COUNT_MARKERS,
    collect_history,
    collect_resources,
    collect_runs,
    sort_runs,
)
from segscale.study import (
    BASELINE_POLICY,
    CONFIG_KEYS,
    DIVERGED,
    EARLY_STOPPED,
    FAILED,
    OK,
    PURE_WARMUPS,
    STATUSES,
)

log = logging.getLogger(__name__)

# Numeric run columns that describe the run rather than measure it: never summarised.
NOT_MEASURES = frozenset({"gpus", "repeat", "seed", "n_classes", "resumed_from_epoch",
                          "global_batch", "lr_target", "steps_per_epoch", "images_per_epoch",
                          "images_per_epoch_1gpu", "images_seen"})


# --------------------------------------------------------------------------- statistics
def measure_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns that are measurements (not parameters, hyper-parameters or counts)."""
    return [c for c in df.columns
            if c not in NOT_MEASURES and not c.startswith("hp_")
            and not any(m in c for m in COUNT_MARKERS)
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Runs per configuration and status: ``n_runs``, ``n_ok``, ``n_diverged``, ``n_failed``."""
    counts = (df.groupby(list(CONFIG_KEYS))["status"].value_counts()
              .unstack(fill_value=0).reindex(columns=list(STATUSES), fill_value=0))
    counts.columns = [f"n_{s}" for s in counts.columns]
    counts.insert(0, "n_runs", counts.sum(axis=1))
    return counts.reset_index()


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count of every measure over the *ok* repeats.

    Long format: one row per (dataset, arch, policy, gpus, measure). Diverged and failed runs
    are excluded from the statistics (their values describe a broken model or nothing) but
    counted in ``n_diverged``/``n_failed``; a configuration with no ok run still appears, with
    count 0 and NaN mean. A single ok repeat has NaN std.
    """
    keys = list(CONFIG_KEYS)
    measures = measure_columns(df)
    values = df[measures].where(df["status"].eq(OK), axis=0)
    grouped = pd.concat([df[keys], values], axis=1).groupby(keys)
    stats = []
    for name, frame in (("mean", grouped.mean()), ("std", grouped.std(ddof=1)),
                        ("count", grouped.count())):
        stats.append(frame.reset_index().melt(id_vars=keys, var_name="measure", value_name=name))
    out = stats[0].merge(stats[1], on=[*keys, "measure"]).merge(stats[2], on=[*keys, "measure"])
    out["count"] = out["count"].astype(int)
    out = out.merge(status_counts(df), on=keys)
    out["_m"] = out["measure"].map({m: i for i, m in enumerate(measures)})
    out = sort_runs(out, [*keys, "_m"]).drop(columns="_m")
    return out


def ratio_std(ratio: float, num_mean: float, num_std: float,
              den_mean: float, den_std: float) -> float:
    """First-order error propagation for ``ratio = num/den`` with independent num, den.

    ``std = ratio * sqrt((num_std/num_mean)^2 + (den_std/den_mean)^2)``. Uses the repeat
    spread (sample std), so it is the spread of one run's ratio, not of the mean's. NaN when
    either std is unknown (a single repeat).
    """
    if not num_mean or not den_mean:
        return math.nan
    return ratio * math.sqrt((num_std / num_mean) ** 2 + (den_std / den_mean) ** 2)


#: Columns of the runs table that say how much work a run did (report.runs.run_work).
WORK_COLUMNS = ("images_per_epoch", "images_per_epoch_1gpu", "images_seen")


def timed_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs whose ``train_time_s`` is a time to train: ok and not stopped early.

    An early-stopped run is ``ok`` (its model is evaluated), but it trained fewer epochs than
    planned, so its time is not the time of the planned training.
    """
    stop = df["stop_reason"] if "stop_reason" in df else pd.Series(None, index=df.index)
    return df[df["status"].eq(OK) & ~stop.eq(EARLY_STOPPED)]


def _left_out(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per configuration, the runs left out of the time to train and why."""
    stop = df["stop_reason"] if "stop_reason" in df else pd.Series(None, index=df.index)
    flags = pd.DataFrame({"n_early_stopped": df["status"].eq(OK) & stop.eq(EARLY_STOPPED),
                          "n_diverged": df["status"].eq(DIVERGED),
                          "n_failed": df["status"].eq(FAILED)}, index=df.index).astype(int)
    return pd.concat([df[keys], flags], axis=1).groupby(keys).sum()


def work_check(work: pd.Series, base: pd.Series) -> tuple[bool | None, float, str, float]:
    """Whether a configuration's timed runs did its baseline's work: (equal_work,
    work_ratio, note, time_scale).

    Equal means the same images per epoch and the same epochs, in every timed repeat. Splitting
    the 1-GPU run's steps over N ranks can leave an epoch short by less than one global batch
    (60 images at batch 4 over 2 ranks of 8 ... 56): that rounding is still equal work, and
    ``time_scale`` (baseline images / these images, > 1) scales the N-GPU time to the
    baseline's images so that the speedup compares the same work; the note says so. Any other
    difference is unequal work (scale 1). None when either side's work is not recorded.
    """
    def same(w: pd.Series, col: str) -> bool:
        return w[f"{col}_min"] == w[f"{col}_max"]

    ipe, b_ipe = work["images_per_epoch_max"], base["images_per_epoch_max"]
    ep, b_ep = work["epochs_completed_max"], base["epochs_completed_max"]
    if any(pd.isna(v) for v in (ipe, b_ipe, ep, b_ep)):
        return None, math.nan, "work not recorded: speedup not checked for equal work", 1.0
    ratio = (ipe * ep) / (b_ipe * b_ep) if b_ipe and b_ep else math.nan
    batch = work.get("global_batch_max", math.nan)
    notes, scale = [], 1.0
    if not (same(work, "images_per_epoch") and same(base, "images_per_epoch")):
        notes.append("repeats differ in images per epoch")
    elif ipe != b_ipe:
        if 0 < b_ipe - ipe < batch:
            scale = b_ipe / ipe
        else:
            notes.append(f"{ipe:.0f} images per epoch vs the 1-GPU baseline's {b_ipe:.0f}")
    if not (same(work, "epochs_completed") and same(base, "epochs_completed")):
        notes.append("repeats differ in epochs")
    elif ep != b_ep:
        notes.append(f"{ep:.0f} epochs vs the 1-GPU baseline's {b_ep:.0f}")
    if notes:
        return False, ratio, "unequal work: " + "; ".join(notes), 1.0
    if scale != 1.0:
        return True, ratio, (f"time scaled to the baseline's {b_ipe:.0f} images per epoch "
                             f"(the split over ranks leaves {ipe:.0f}: less than one global "
                             f"batch of {batch:.0f})"), scale
    return True, ratio, "", 1.0


def scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Speedup S(N) = T(1)/T(N) and efficiency E(N) = S(N)/N per configuration.

    T is ``train_time_s`` (sum of epoch times) averaged over the *timed* repeats
    (:func:`timed_runs`: ok and not early-stopped; ``n_ok`` counts them). Early-stopped,
    diverged and failed runs are left out of T and counted apart (``n_early_stopped``,
    ``n_diverged``, ``n_failed``, said in ``note``). The 1-GPU
    baseline of (dataset, arch, policy) is that policy's own 1-GPU runs when it has timed ones;
    otherwise (always for ``constant``/``gradual``, which equal ``none`` on 1 GPU and are not
    run there) the (dataset, arch, ``none``) 1-GPU runs; ``baseline_policy`` says which.
    ``speedup_std`` propagates both spreads with :func:`ratio_std`; ``efficiency_std`` is
    ``speedup_std / N``. A baseline row itself (N = 1, own policy) has S = 1 and std 0, as
    numerator and denominator are the same runs. No baseline: NaN and an empty
    ``baseline_policy``.

    Equal work (strong scaling): ``equal_work`` is True when the timed runs trained on the
    baseline's images per epoch for as many epochs, False (the speedup is still given, but
    compares different work: ``note`` says how; ``work_ratio`` = images seen / the
    baseline's) or empty when a record does not say.
    """
    keys = list(CONFIG_KEYS)
    df = df.assign(**{c: math.nan for c in (*WORK_COLUMNS, "epochs_completed") if c not in df})
    ok = df[df["status"].eq(OK)]
    timed = timed_runs(df)
    time = timed.groupby(keys)["train_time_s"].agg(time_mean_s="mean", time_std_s="std",
                                                   n_ok="count")
    # an epoch of an early-stopped run is an epoch like any other: per-epoch figures keep it
    per_epoch = ok.groupby(keys)["time_per_epoch_s"].agg(time_per_epoch_mean_s="mean",
                                                        time_per_epoch_std_s="std")
    ips = ok.groupby(keys)["images_per_s"].agg(images_per_s_mean="mean",
                                               images_per_s_std="std")
    if "global_batch" not in timed:
        timed = timed.assign(global_batch=math.nan)
    work = timed.groupby(keys)[["images_per_epoch", "epochs_completed", "global_batch"]] \
        .agg(["min", "max"])
    work.columns = [f"{c}_{f}" for c, f in work.columns]
    configs = df[keys].drop_duplicates().set_index(keys)
    table = configs.join([time, per_epoch, ips, _left_out(df, keys)]).reset_index()
    table["n_ok"] = table["n_ok"].fillna(0).astype(int)
    # (dataset, arch, strategy, policy) -> its timed 1-GPU runs: each strategy against its
    # own 1-GPU run (the same model, steps and data, one rank of that strategy)
    base = {k[:4]: row for k, row in time.iterrows() if k[4] == 1 and row["n_ok"] > 0}

    records = []
    for row in table.itertuples(index=False):
        ds, arch, strategy, policy, n = row.dataset, row.arch, row.strategy, row.policy, \
            row.gpus
        config = (ds, arch, strategy, policy, n)
        left = [f"{count} {what}" for count, what in ((row.n_early_stopped, "early-stopped"),
                                                     (row.n_diverged, "diverged"),
                                                     (row.n_failed, "failed")) if count]
        notes = [f"left out of the time to train: {', '.join(left)} run(s)"] if left else []
        own = work.loc[config] if config in work.index else None
        bpol = policy if (ds, arch, strategy, policy) in base else BASELINE_POLICY
        b = base.get((ds, arch, strategy, bpol))
        if b is None:
            log.warning("no ok 1-GPU baseline for %s/%s/%s/%s", ds, arch, strategy, policy)
            records.append({"baseline_policy": "", "baseline_n": 0,
                            "images_per_epoch": own["images_per_epoch_max"]
                            if own is not None else math.nan,
                            "note": "; ".join(["no 1-GPU baseline", *notes])})
            continue
        if bpol != policy and policy not in PURE_WARMUPS:
            log.warning("%s/%s/%s/%s: no ok 1-GPU runs of its own; baseline is %s",
                        ds, arch, strategy, policy, bpol)
        bwork = work.loc[(ds, arch, strategy, bpol, 1)]
        equal, ratio, why, scale = (work_check(own, bwork) if own is not None
                                    else (None, math.nan, "", 1.0))
        time_mean, time_std = row.time_mean_s * scale, row.time_std_s * scale
        s = b["time_mean_s"] / time_mean
        if n == 1 and bpol == policy:
            s_std = 0.0 if not math.isnan(s) else math.nan
        else:
            s_std = ratio_std(s, b["time_mean_s"], b["time_std_s"], time_mean, time_std)
        if equal is False:
            log.warning("%s/%s/%s/%s/%d GPUs: %s", ds, arch, strategy, policy, n, why)
        records.append({"baseline_policy": bpol, "baseline_n": int(b["n_ok"]),
                        "baseline_time_mean_s": b["time_mean_s"],
                        "baseline_time_std_s": b["time_std_s"],
                        "speedup": s, "speedup_std": s_std,
                        "efficiency": s / n, "efficiency_std": s_std / n,
                        "images_per_epoch": own["images_per_epoch_max"]
                        if own is not None else math.nan,
                        "baseline_images_per_epoch": bwork["images_per_epoch_max"],
                        "equal_work": equal, "work_ratio": ratio,
                        "note": "; ".join(filter(None, [why, *notes]))})
    extra = pd.DataFrame(records, index=table.index,
                         columns=["baseline_policy", "baseline_n", "baseline_time_mean_s",
                                  "baseline_time_std_s", "speedup", "speedup_std",
                                  "efficiency", "efficiency_std", "images_per_epoch",
                                  "baseline_images_per_epoch", "equal_work", "work_ratio",
                                  "note"])
    extra["note"] = extra["note"].fillna("")
    table = pd.concat([table, extra], axis=1)
    table["ideal_speedup"] = table["gpus"].astype(float)
    return sort_runs(table, keys)


# --------------------------------------------------------------------------- writing
def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns as strings or None: Parquet needs one type per column."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: None if v is None or (isinstance(v, float)
                                                                   and math.isnan(v)) else str(v))
    return out


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".parquet") as tmp:
        parquet_safe(df).to_parquet(tmp, index=False)


@dataclass(frozen=True)
class AggregateConfig:
    """What to read and where to write the tables."""

    metrics: tuple[Path, ...]
    runs_root: Path | None
    expected_runs: tuple[Path, ...] | None
    runs_csv: Path
    runs_parquet: Path
    summary: Path
    scaling: Path
    history: Path
    resources: Path
    resources_max_points: int = 600


def aggregate(cfg: AggregateConfig) -> pd.DataFrame:
    """Build every table in memory first, then write them all: bad input writes nothing."""
    runs = collect_runs(cfg.metrics, cfg.runs_root, cfg.expected_runs)
    tables = {
        cfg.summary: summarise(runs),
        cfg.scaling: scaling(runs),
        cfg.history: collect_history(runs),
        cfg.resources: collect_resources(runs, cfg.resources_max_points),
        cfg.runs_csv: runs,
    }
    counts = runs["status"].value_counts().to_dict()
    log.info("%d runs (%s)", len(runs), ", ".join(f"{k}: {v}" for k, v in counts.items()))
    write_parquet(runs, cfg.runs_parquet)
    for path, table in tables.items():
        write_csv(table, path)
        log.info("wrote %s (%d rows)", path, len(table))
    return runs


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.report.tables", __doc__)
    p.add_argument("--metrics", nargs="*", default=[], type=Path,
                   help="metrics.json files of the runs to aggregate")
    p.add_argument("--expected-runs", nargs="*", type=Path, default=None,
                   help="the sweep's run directories: those existing without metrics.json "
                        "become failed rows (instead of scanning --runs-root)")
    p.add_argument("--runs-root", type=Path, default=None,
                   help="results/runs: run directories without metrics.json become failed rows")
    for flag in ("runs-csv", "runs-parquet", "summary", "scaling", "history", "resources"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    p.add_argument("--resources-max-points", type=int, default=600,
                   help="keep at most this many samples per rank (0: all)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(logging.DEBUG if args.verbose else logging.INFO)
    cfg = AggregateConfig(
        metrics=tuple(args.metrics), runs_root=args.runs_root,
        expected_runs=None if args.expected_runs is None else tuple(args.expected_runs),
        runs_csv=args.runs_csv,
        runs_parquet=args.runs_parquet, summary=args.summary, scaling=args.scaling,
        history=args.history, resources=args.resources,
        resources_max_points=args.resources_max_points)
    try:
        aggregate(cfg)
    except (ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
