"""Calibration from what the workflow measures.

Links: the allreduce microbenchmark (``segscale.train.allreduce_bench``) gives, per rank
count N and message size b, the median time t of one allreduce. The ring model says
``t = 2(N-1) alpha + 2(N-1)/N * b / beta`` for one message, linear in (alpha, 1/beta):
:func:`fit_link` solves that by least squares over every (N > 1, b) row given, weighted by
1/t so small messages (latency) count as much as large ones (bandwidth). :func:`fit_per_n`
gives the per-N line ``t = a + b / B`` as well, for the record. Rows within one node
(N <= gpus_per_node) calibrate the intra-node link, the others the inter-node one; with
only one kind measured, both links get it.

Compute: the 1-GPU runs' time per step, ``time_per_epoch_s / steps_per_epoch`` averaged
over the ok runs of the chosen policy (``none``) of each (dataset, arch).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from segscale.scaling.model import Link
from segscale.study import BASELINE_POLICY, DEFAULT_STRATEGY, OK

BENCH_COLUMNS = ("ranks", "bytes", "time_median_s")


def read_bench(paths: Iterable[str | Path]) -> pd.DataFrame:
    """The microbenchmark CSVs, concatenated.

    Raises:
        ValueError: a file lacks the ranks/bytes/time_median_s columns.
    """
    frames = []
    for path in paths:
        df = pd.read_csv(path)
        missing = sorted(set(BENCH_COLUMNS) - set(df.columns))
        if missing:
            raise ValueError(f"{path}: not an allreduce benchmark table (missing {missing})")
        frames.append(df.assign(source=str(path)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[*BENCH_COLUMNS, "source"])


def fit_link(ranks, nbytes, seconds) -> tuple[Link, dict]:
    """alpha and beta of one link from allreduce times (see the module docstring).

    A negative latency (noise on a bandwidth-bound table) is clamped to 0 and beta refitted
    alone. Returns the link and the fit's record (rows, relative rms residual).

    Raises:
        ValueError: no row with N > 1, or no size spread to separate alpha from beta.
    """
    n = np.asarray(ranks, float)
    b = np.asarray(nbytes, float)
    t = np.asarray(seconds, float)
    keep = (n > 1) & np.isfinite(t) & (t > 0)
    n, b, t = n[keep], b[keep], t[keep]
    if not len(t):
        raise ValueError("allreduce benchmark: no timing with more than one rank to fit")
    x = np.column_stack([2 * (n - 1), 2 * (n - 1) / n * b])
    w = 1 / t
    if len(np.unique(b)) < 2:
        raise ValueError("allreduce benchmark: at least two message sizes are needed to "
                         "separate latency from bandwidth")
    coef, *_ = np.linalg.lstsq(x * w[:, None], t * w, rcond=None)
    alpha, inv_beta = float(coef[0]), float(coef[1])
    if alpha < 0:
        alpha = 0.0
        inv_beta = float(np.sum(w * w * x[:, 1] * t) / np.sum((w * x[:, 1]) ** 2))
    if inv_beta <= 0:
        raise ValueError("allreduce benchmark: time does not grow with message size; "
                         "cannot fit a bandwidth")
    pred = x @ np.array([alpha, inv_beta])
    return Link(alpha=alpha, beta=1 / inv_beta), {
        "rows": int(len(t)), "rms_relative_residual": float(np.sqrt(np.mean((t / pred - 1) ** 2)))}


def fit_per_n(bench: pd.DataFrame) -> pd.DataFrame:
    """Per rank count: ``t = a + bytes * slope`` by least squares, with the alpha and beta
    it implies (``alpha = a / 2(N-1)``, ``beta = 2(N-1)/N / slope``)."""
    rows = []
    for n, group in bench[bench["ranks"] > 1].groupby("ranks"):
        if group["bytes"].nunique() < 2:
            continue
        slope, intercept = np.polyfit(group["bytes"], group["time_median_s"], 1)
        rows.append({"ranks": int(n), "intercept_s": intercept, "slope_s_per_byte": slope,
                     "alpha_s": intercept / (2 * (n - 1)),
                     "beta_bytes_per_s": 2 * (n - 1) / n / slope if slope > 0 else np.nan})
    return pd.DataFrame(rows, columns=["ranks", "intercept_s", "slope_s_per_byte", "alpha_s",
                                       "beta_bytes_per_s"])


def calibrate_links(bench: pd.DataFrame, gpus_per_node: int) -> tuple[Link, Link, dict]:
    """(intra, inter, record): the intra-node link from N <= gpus_per_node rows, the
    inter-node one from the rest; one kind missing takes the other's."""
    multi = bench[bench["ranks"] > 1]
    inside = multi[multi["ranks"] <= gpus_per_node]
    across = multi[multi["ranks"] > gpus_per_node]
    fitted, record = {}, {}
    for key, part in (("intra", inside), ("inter", across)):
        if len(part):
            fitted[key], record[key] = fit_link(part["ranks"], part["bytes"],
                                                part["time_median_s"])
            record[key].update(alpha_s=fitted[key].alpha,
                               beta_bytes_per_s=fitted[key].beta, from_ranks=sorted(
                                   int(r) for r in part["ranks"].unique()))
    if not fitted:
        raise ValueError("allreduce benchmark: no timing with more than one rank to fit")
    for key, other in (("intra", "inter"), ("inter", "intra")):
        if key not in fitted:
            fitted[key] = fitted[other]
            record[key] = {"same_as": other}
    return fitted["intra"], fitted["inter"], record


def of_modelled_strategy(table: pd.DataFrame) -> pd.Series:
    """The rows of Horovod runs: the α-β model is of its ring-allreduce (a table from before
    the strategy axis has no ``strategy`` column: all Horovod)."""
    if "strategy" not in table:
        return pd.Series(True, index=table.index)
    return table["strategy"].fillna(DEFAULT_STRATEGY).eq(DEFAULT_STRATEGY)


def compute_per_step(runs: pd.DataFrame, policy: str = BASELINE_POLICY) -> pd.DataFrame:
    """Per (dataset, arch): mean 1-GPU compute per step (s), steps per epoch, epoch time,
    fp16 allreduce flag and the number of runs averaged, from ``runs.csv``'s ok rows."""
    ok = runs[(runs["status"] == OK) & (runs["gpus"] == 1) & (runs["policy"] == policy)]
    ok = ok[of_modelled_strategy(ok)]
    ok = ok[(ok["steps_per_epoch"] > 0) & (ok["time_per_epoch_s"] > 0)]
    columns = ["dataset", "arch", "compute_step_s", "steps_per_epoch", "epoch_one_s",
               "fp16_allreduce", "n_runs"]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    ok = ok.assign(step=ok["time_per_epoch_s"] / ok["steps_per_epoch"],
                   fp16=ok.get("hp_fp16_allreduce", pd.Series(False, index=ok.index))
                   .fillna(False).astype(bool))
    out = ok.groupby(["dataset", "arch"]).agg(
        compute_step_s=("step", "mean"), steps_per_epoch=("steps_per_epoch", "mean"),
        epoch_one_s=("time_per_epoch_s", "mean"), fp16_allreduce=("fp16", "any"),
        n_runs=("step", "size")).reset_index()
    return out[columns]
