"""Aggregate every run of a sweep into tidy tables, so figures never read run directories.

Inputs follow docs/formats.md: a run directory
``{dataset}/{arch}/{policy}/gpus{n}/rep{r}/`` with ``run.json``, ``history.csv``,
``resources/rank{k}.csv`` and, once evaluated, ``metrics.json``.

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

A run directory without ``metrics.json`` (found with ``--runs-root``) is a *failed* run:
Snakemake deletes the declared outputs of a failed job, but the directory survives.

CLI::

    python -m segscale.aggregate --metrics M1 M2 ... [--runs-root results/runs] \\
        --runs-csv T/runs.csv --runs-parquet T/runs.parquet --summary T/summary.csv \\
        --scaling T/scaling.csv --history T/history.csv --resources T/resources.csv
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segscale.io import atomic_path, read_json
from segscale.logs import configure

log = logging.getLogger(__name__)

RUN_KEYS = ("dataset", "arch", "policy", "gpus", "repeat")
CONFIG_KEYS = ("dataset", "arch", "policy", "gpus")
STATUSES = ("ok", "diverged", "failed")
POLICY_ORDER = ("none", "constant", "gradual", "grescale")
BASELINE_POLICY = "none"
PURE_WARMUPS = ("constant", "gradual")  # identical to `none` on 1 GPU, so never run there
RUN_DIR_RE = re.compile(
    r"(?P<dataset>[^/]+)/(?P<arch>[^/]+)/(?P<policy>[^/]+)/gpus(?P<gpus>[1-9]\d*)/rep(?P<repeat>\d+)$"
)
HISTORY_COLUMNS = ("epoch", "lr", "loss", "val_loss", "val_dice", "epoch_time_s",
                   "images_per_s", "ranks")
RESOURCE_COLUMNS = ("time_s", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb",
                    "net_sent_bytes", "net_recv_bytes")
# Numeric run columns that describe the run rather than measure it: never summarised.
NOT_MEASURES = frozenset({"gpus", "repeat", "seed", "n_classes", "resumed_from_epoch",
                          "global_batch", "lr_target", "steps_per_epoch"})
# Diagnostic counts from metrics.json (how many values a mean had): kept per run, not summarised.
COUNT_MARKERS = ("valid_counts", "infinite_counts")


# --------------------------------------------------------------------------- parsing
def parse_run_dir(run_dir: str | Path) -> dict[str, Any] | None:
    """Sweep parameters encoded in a run directory path, or None if it does not match.

    Only the last five components count, so any results root works.
    """
    tail = "/".join(Path(run_dir).parts[-5:])
    m = RUN_DIR_RE.search(tail)
    if m is None:
        return None
    found: dict[str, Any] = m.groupdict()
    found["gpus"] = int(found["gpus"])
    found["repeat"] = int(found["repeat"])
    return found


def _slug(name: Any) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_") or "x"


def _scalar(value: Any) -> float | None:
    """A JSON number as float (None -> NaN); None for anything that is not a number."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _num(value: Any) -> float:
    """A JSON number as float; NaN for null or anything that is not a number."""
    found = _scalar(value)
    return math.nan if found is None else found


def _flatten(obj: Any, prefix: str, out: dict[str, Any], class_names: Sequence[str],
             keep_strings: bool = False) -> None:
    """Flatten nested dicts/lists of numbers into ``prefix_key`` columns.

    A list as long as ``class_names`` is per class and gets the class names as suffixes.
    Strings are skipped unless ``keep_strings`` (hyper-parameters such as the optimizer).
    """
    if isinstance(obj, dict):
        for key, val in obj.items():
            _flatten(val, f"{prefix}{_slug(key)}_", out, class_names, keep_strings)
        return
    if keep_strings and isinstance(obj, str):
        out[prefix.rstrip("_")] = obj
        return
    name = prefix.rstrip("_")
    if isinstance(obj, (list, tuple)):
        labels = ([_slug(c) for c in class_names] if len(obj) == len(class_names)
                  else [str(i) for i in range(len(obj))])
        for label, val in zip(labels, obj, strict=True):
            _flatten(val, f"{name}_{label}_", out, class_names, keep_strings)
        return
    value = _scalar(obj)
    if value is not None and name:
        out[name] = value


def flatten_metrics(metrics: dict) -> dict[str, float]:
    """Every number in ``metrics.json`` as one flat ``{column: value}`` dict.

    ``summary`` keeps its names (``dice``, ``mean_iou``...), ``levels`` become
    ``{level}_{metric}`` (``slice_dice``, ``volume_n``, ``split_valid_counts_dice``),
    ``regions`` become ``region_...`` and ``inference`` ``inference_...``; per-class lists are
    suffixed with the class names.
    """
    out: dict[str, float] = {}
    names = metrics.get("class_names") or []
    _flatten(metrics.get("summary") or {}, "", out, names)
    for level, values in (metrics.get("levels") or {}).items():
        _flatten(values, f"{_slug(level)}_", out, names)
    regions = {name: {k: v for k, v in entry.items() if k != "labels"}  # ids, not measures
               for name, entry in (metrics.get("regions") or {}).items()
               if isinstance(entry, dict)}
    _flatten(regions, "region_", out, names)
    _flatten(metrics.get("inference") or {}, "inference_", out, names)
    if metrics.get("n_classes") is not None:
        out["n_classes"] = float(metrics["n_classes"])
    return out


def history_summary(hist: pd.DataFrame, gpus: int) -> dict[str, float]:
    """Per-run figures from ``history.csv``: throughput and last-epoch training values.

    ``images_per_s`` is the median over epochs: the first epoch carries start-up costs
    (graph building, caches) that the median ignores and the mean would not.
    """
    def col(name: str) -> pd.Series:
        if name not in hist:
            return pd.Series(dtype=float)
        return pd.to_numeric(hist[name], errors="coerce").replace([np.inf, -np.inf], np.nan)

    def last(name: str) -> float:
        s = col(name)
        return float(s.iloc[-1]) if len(s) else math.nan

    ips = col("images_per_s").median()
    return {
        "epochs_in_history": float(len(hist)),
        "epoch_time_mean_s": float(col("epoch_time_s").mean()),
        "epoch_time_first_s": float(col("epoch_time_s").iloc[0]) if len(hist) else math.nan,
        "images_per_s": float(ips),
        "images_per_s_per_gpu": float(ips) / gpus,
        "final_lr": last("lr"),
        "max_lr": float(col("lr").max()),
        "final_loss": last("loss"),
        "final_val_loss": last("val_loss"),
        "final_val_dice": last("val_dice"),
        "best_val_dice": float(col("val_dice").max()),
    }


def read_csv_named(path: Path) -> pd.DataFrame:
    """``pd.read_csv`` with an error that names the file."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from None


def _run_json_fields(run: dict, path: Path, params: dict[str, Any] | None) -> dict[str, Any]:
    """Columns from run.json, after checking it agrees with the path's sweep parameters."""
    from_json = {"dataset": run.get("dataset"), "arch": run.get("arch"),
                 "policy": run.get("policy"), "gpus": run.get("n_ranks"),
                 "repeat": run.get("repeat")}
    if params is not None:
        for key, val in from_json.items():
            if val is not None and val != params[key]:
                raise ValueError(f"{path}: {key}={val!r} disagrees with the run directory "
                                 f"({key}={params[key]!r})")
    env = run.get("environment") or {}
    hosts = run.get("hosts") or []
    fields: dict[str, Any] = {
        "run_status": run.get("status"),
        "stop_reason": run.get("stop_reason"),
        "global_batch": _num(run.get("global_batch")),
        "lr_target": _num(run.get("lr_target")),
        "steps_per_epoch": _num(run.get("steps_per_epoch")),
        "seed": _num(run.get("seed")),
        "epochs_planned": _num(run.get("epochs_planned")),
        "epochs_completed": _num(run.get("epochs_completed")),
        "resumed_from_epoch": _num(run.get("resumed_from_epoch")),
        "train_time_s": _num(run.get("train_time_s")),
        "hosts": ",".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts),
        "n_hosts": float(len(set(hosts))) if isinstance(hosts, list) else math.nan,
        "gpu_model": (env.get("gpus") or [None])[0],
        "git_revision": env.get("git"),
        "slurm_job_id": (env.get("slurm") or {}).get("SLURM_JOB_ID"),
    }
    hp: dict[str, Any] = {}
    _flatten(run.get("hparams") or {}, "hp_", hp, (), keep_strings=True)
    fields.update(hp)
    if params is None:
        fields.update({k: v for k, v in from_json.items()})
    return fields


def load_run(run_dir: Path, metrics_path: Path | None) -> dict[str, Any]:
    """One row of the runs table from a run directory (``metrics_path`` None: failed run).

    Raises:
        ValueError: unreadable JSON/CSV, an unknown status, run.json contradicting the path,
            or no way to tell the sweep parameters (no matching path and no run.json).
    """
    params = parse_run_dir(run_dir)
    row: dict[str, Any] = dict(params or {})
    row["run_dir"] = str(run_dir)
    run_json = run_dir / "run.json"
    if run_json.is_file():
        row.update(_run_json_fields(read_json(run_json), run_json, params))
    elif params is None:
        raise ValueError(f"{metrics_path or run_dir}: cannot tell the sweep parameters: the path "
                         "does not end in {dataset}/{arch}/{policy}/gpus{n}/rep{r} and there is "
                         "no run.json beside it")
    if any(row.get(k) is None for k in RUN_KEYS):
        raise ValueError(f"{run_json}: missing one of {', '.join(RUN_KEYS)}")
    row["gpus"], row["repeat"] = int(row["gpus"]), int(row["repeat"])

    if metrics_path is None:
        row["status"] = "failed"
        row["note"] = ("no metrics.json: training or evaluation did not finish"
                       + (f" (run.json status: {row['run_status']})" if row.get("run_status")
                          else " (no run.json)"))
    else:
        metrics = read_json(metrics_path)
        if not isinstance(metrics, dict):
            raise ValueError(f"{metrics_path}: expected a JSON object")
        status = metrics.get("status")
        if status not in STATUSES:
            raise ValueError(f"{metrics_path}: status {status!r} is not one of {STATUSES}")
        row["status"] = status
        row["note"] = ""
        if row.get("run_status") not in (None, status):
            log.warning("%s: status %r but run.json says %r; using metrics.json",
                        metrics_path, status, row["run_status"])
        row.update(flatten_metrics(metrics))

    hist_path = run_dir / "history.csv"
    if hist_path.is_file():
        row.update(history_summary(read_csv_named(hist_path), row["gpus"]))
    epochs = row.get("epochs_completed")
    if epochs is None or math.isnan(epochs):
        epochs = row.get("epochs_in_history", math.nan)
    time_s = row.get("train_time_s", math.nan)
    row["time_per_epoch_s"] = time_s / epochs if epochs and not math.isnan(epochs) else math.nan
    return row


def discover_run_dirs(root: Path) -> list[Path]:
    """Run directories under ``root`` laid out as ``{dataset}/{arch}/{policy}/gpus{n}/rep{r}``."""
    return sorted(p for p in root.glob("*/*/*/gpus*/rep*")
                  if p.is_dir() and parse_run_dir(p) is not None)


def _policy_rank(policy: pd.Series) -> pd.Series:
    order = {p: i for i, p in enumerate(POLICY_ORDER)}
    return policy.map(lambda p: order.get(p, len(order)))


def sort_runs(df: pd.DataFrame, keys: Sequence[str] = RUN_KEYS) -> pd.DataFrame:
    """Sort by sweep parameters with policies in their natural order (none first)."""
    if df.empty:
        return df.reset_index(drop=True)
    tmp = df.assign(_p=_policy_rank(df["policy"]))
    by = [k if k != "policy" else "_p" for k in keys] + (["policy"] if "policy" in keys else [])
    return tmp.sort_values(by, kind="stable").drop(columns="_p").reset_index(drop=True)


def collect_runs(metrics_paths: Iterable[str | Path],
                 runs_root: str | Path | None = None,
                 expected: Iterable[str | Path] | None = None) -> pd.DataFrame:
    """The runs table: one row per run, evaluated runs first found via their ``metrics.json``.

    Run directories without ``metrics.json`` become ``failed`` rows: those in ``expected``
    (the sweep's directories) when given, else every one found under ``runs_root``; ones
    whose ``metrics.json`` is not in ``metrics_paths`` are outside the requested sweep and are
    skipped.

    Raises:
        ValueError: on any unreadable input (message names the file), on two metrics files
            for the same run, or when there are no runs at all.
        FileNotFoundError: a listed ``metrics.json`` does not exist.
    """
    rows, seen = [], {}
    for mpath in map(Path, metrics_paths):
        if not mpath.is_file():
            raise FileNotFoundError(f"{mpath}: file not found")
        run_dir = mpath.parent
        rows.append(load_run(run_dir, mpath))
        key = tuple(rows[-1][k] for k in RUN_KEYS)
        if key in seen:
            raise ValueError(f"{mpath}: same run {key} as {seen[key]}")
        seen[key] = mpath
    if runs_root is not None or expected is not None:
        listed = {Path(r["run_dir"]).resolve() for r in rows}
        # The sweep's own run directories when known: leftovers of an earlier sweep (a GPU
        # count since removed from the config) are not this study's failures.
        candidates = ([Path(d) for d in expected if Path(d).is_dir()] if expected is not None
                      else discover_run_dirs(Path(runs_root)))
        for run_dir in candidates:
            if run_dir.resolve() in listed:
                continue
            if (run_dir / "metrics.json").is_file():
                log.info("%s: has metrics.json but was not requested; skipped", run_dir)
                continue
            rows.append(load_run(run_dir, None))
            log.warning("%s: no metrics.json, counted as a failed run", run_dir)
    if not rows:
        raise ValueError("no runs: pass --metrics files or a --runs-root with run directories")
    df = pd.DataFrame(rows)
    first = [*RUN_KEYS, "status", "note", "train_time_s", "time_per_epoch_s", "images_per_s"]
    for col in first[len(RUN_KEYS) + 2:]:  # always present, even if no run reached an epoch
        if col not in df:
            df[col] = math.nan
    df = df[[*first, *(c for c in df.columns if c not in first)]]
    return sort_runs(df)


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
    values = df[measures].where(df["status"].eq("ok"), axis=0)
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


def scaling(df: pd.DataFrame) -> pd.DataFrame:
    """Speedup S(N) = T(1)/T(N) and efficiency E(N) = S(N)/N per configuration.

    T is ``train_time_s`` (sum of epoch times) averaged over the *ok* repeats. The 1-GPU
    baseline of (dataset, arch, policy) is that policy's own 1-GPU runs when it has ok ones;
    otherwise (always for ``constant``/``gradual``, which equal ``none`` on 1 GPU and are not
    run there) the (dataset, arch, ``none``) 1-GPU runs; ``baseline_policy`` says which.
    ``speedup_std`` propagates both spreads with :func:`ratio_std`; ``efficiency_std`` is
    ``speedup_std / N``. A baseline row itself (N = 1, own policy) has S = 1 and std 0, as
    numerator and denominator are the same runs. No baseline: NaN and an empty
    ``baseline_policy``.
    """
    keys = list(CONFIG_KEYS)
    ok = df[df["status"].eq("ok")]
    time = ok.groupby(keys)["train_time_s"].agg(time_mean_s="mean", time_std_s="std",
                                                n_ok="count")
    per_epoch = ok.groupby(keys)["time_per_epoch_s"].agg(time_per_epoch_mean_s="mean",
                                                        time_per_epoch_std_s="std")
    ips = ok.groupby(keys)["images_per_s"].agg(images_per_s_mean="mean",
                                               images_per_s_std="std")
    configs = df[keys].drop_duplicates().set_index(keys)
    table = configs.join([time, per_epoch, ips]).reset_index()
    table["n_ok"] = table["n_ok"].fillna(0).astype(int)
    base = {k[:3]: row for k, row in time.iterrows() if k[3] == 1 and row["n_ok"] > 0}

    records = []
    for row in table.itertuples(index=False):
        ds, arch, policy, n = row.dataset, row.arch, row.policy, row.gpus
        bpol = policy if (ds, arch, policy) in base else BASELINE_POLICY
        b = base.get((ds, arch, bpol))
        if b is None:
            log.warning("no ok 1-GPU baseline for %s/%s/%s", ds, arch, policy)
            records.append({"baseline_policy": "", "baseline_n": 0})
            continue
        if bpol != policy and policy not in PURE_WARMUPS:
            log.warning("%s/%s/%s: no ok 1-GPU runs of its own; baseline is %s",
                        ds, arch, policy, bpol)
        s = b["time_mean_s"] / row.time_mean_s
        if n == 1 and bpol == policy:
            s_std = 0.0 if not math.isnan(s) else math.nan
        else:
            s_std = ratio_std(s, b["time_mean_s"], b["time_std_s"],
                              row.time_mean_s, row.time_std_s)
        records.append({"baseline_policy": bpol, "baseline_n": int(b["n_ok"]),
                        "baseline_time_mean_s": b["time_mean_s"],
                        "baseline_time_std_s": b["time_std_s"],
                        "speedup": s, "speedup_std": s_std,
                        "efficiency": s / n, "efficiency_std": s_std / n})
    extra = pd.DataFrame(records, index=table.index,
                         columns=["baseline_policy", "baseline_n", "baseline_time_mean_s",
                                  "baseline_time_std_s", "speedup", "speedup_std",
                                  "efficiency", "efficiency_std"])
    table = pd.concat([table, extra], axis=1)
    table["ideal_speedup"] = table["gpus"].astype(float)
    return sort_runs(table, keys)


# --------------------------------------------------------------------------- long tables
def _run_ids(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df[[*RUN_KEYS, "status", "run_dir"]].to_dict("records")


def collect_history(runs: pd.DataFrame) -> pd.DataFrame:
    """All runs' ``history.csv`` rows stacked, each tagged with its run's parameters/status."""
    frames = []
    for ids in _run_ids(runs):
        path = Path(ids["run_dir"]) / "history.csv"
        if path.is_file():
            hist = read_csv_named(path)
            frames.append(hist.assign(**{k: ids[k] for k in (*RUN_KEYS, "status")}))
    cols = [*RUN_KEYS, "status", *HISTORY_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    return out[[*cols[:6], *(c for c in out.columns if c not in cols[:6])]]


def thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """Every k-th row so at most ``max_points`` remain (plus the last one).

    Stride sampling, not averaging, keeps cumulative counters (network bytes) exact.
    """
    if max_points <= 0 or len(frame) <= max_points:
        return frame
    step = math.ceil(len(frame) / max_points)
    keep = np.zeros(len(frame), dtype=bool)
    keep[::step] = True
    keep[-1] = True
    return frame[keep]


def collect_resources(runs: pd.DataFrame, max_points: int = 600) -> pd.DataFrame:
    """All ranks' sampler series stacked with a ``rank`` column, at most ``max_points`` each."""
    frames = []
    for ids in _run_ids(runs):
        for path in sorted(Path(ids["run_dir"]).glob("resources/rank*.csv")):
            m = re.fullmatch(r"rank(\d+)\.csv", path.name)
            if m is None:
                continue
            series = thin(read_csv_named(path), max_points)
            frames.append(series.assign(rank=int(m.group(1)),
                                        **{k: ids[k] for k in (*RUN_KEYS, "status")}))
    first = [*RUN_KEYS, "status", "rank"]
    if not frames:
        return pd.DataFrame(columns=[*first, *RESOURCE_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[[*first, *(c for c in out.columns if c not in first)]]


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
    p = argparse.ArgumentParser(prog="python -m segscale.aggregate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
