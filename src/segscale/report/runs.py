"""Read a sweep's run directories into one row per run (and their long series).

Inputs follow docs/formats.md: a run directory
``{dataset}/{arch}/{strategy}/{policy}/gpus{n}/rep{r}/``
(:data:`segscale.study.RUN_DIR_PATTERN`) with ``run.json``, ``history.csv``,
``resources/rank{k}.csv`` and, once evaluated, ``metrics.json``. A run directory without
``metrics.json`` is a *failed* run: Snakemake deletes the declared outputs of a failed job,
but the directory survives. Computing tables from these rows is :mod:`segscale.report.tables`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segscale.fileio import read_json
from segscale.study import (
    DEFAULT_STRATEGY,
    FAILED,
    HISTORY_COLUMNS,
    POLICIES,
    RESOURCE_COLUMNS,
    RUN_KEYS,
    RUN_RECORD,
    STATUSES,
    STRATEGIES,
    parse_run_dir,
)

log = logging.getLogger(__name__)

# Diagnostic counts from metrics.json (how many values a mean had): kept per run, not summarised.
COUNT_MARKERS = ("valid_counts", "infinite_counts")


# --------------------------------------------------------------------------- parsing
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


def run_work(run: dict) -> dict[str, float]:
    """The work a run did, from run.json: global images per epoch (the 1-GPU run's for the
    same store and caps beside it) and images seen over its whole epochs.

    Records written before these fields existed give them from ``steps_per_epoch`` (per rank)
    x ``global_batch`` and ``epochs_completed``; the 1-GPU figure is then unknown (NaN).
    """
    per_epoch = _num(run.get("images_per_epoch"))
    if math.isnan(per_epoch):
        per_epoch = _num(run.get("steps_per_epoch")) * _num(run.get("global_batch"))
    seen = _num(run.get("images_seen"))
    if math.isnan(seen):
        seen = per_epoch * _num(run.get("epochs_completed"))
    return {"images_per_epoch": per_epoch,
            "images_per_epoch_1gpu": _num(run.get("images_per_epoch_1gpu")),
            "images_seen": seen}


def _run_json_fields(run: dict, path: Path, params: dict[str, Any] | None) -> dict[str, Any]:
    """Columns from run.json, after checking it agrees with the path's sweep parameters."""
    # records from before the strategy axis are Horovod's
    from_json = {"dataset": run.get("dataset"), "arch": run.get("arch"),
                 "strategy": run.get("strategy", DEFAULT_STRATEGY),
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
        "run_error": run.get("error"),
        "stop_reason": run.get("stop_reason"),
        "global_batch": _num(run.get("global_batch")),
        "lr_target": _num(run.get("lr_target")),
        "steps_per_epoch": _num(run.get("steps_per_epoch")),
        **run_work(run),
        "seed": _num(run.get("seed")),
        "epochs_planned": _num(run.get("epochs_planned")),
        "epochs_completed": _num(run.get("epochs_completed")),
        "resumed_from_epoch": _num(run.get("resumed_from_epoch")),
        "train_time_s": _num(run.get("train_time_s")),
        "startup_s": _num(run.get("startup_s")),
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
                         "does not end in {dataset}/{arch}/{strategy}/{policy}/gpus{n}/rep{r} and "
                         "there is "
                         "no run.json beside it")
    if any(row.get(k) is None for k in RUN_KEYS):
        raise ValueError(f"{run_json}: missing one of {', '.join(RUN_KEYS)}")
    row["gpus"], row["repeat"] = int(row["gpus"]), int(row["repeat"])

    if metrics_path is None:
        row["status"] = FAILED
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
        row["note"] = str(metrics.get("error") or row.get("run_error") or "") \
            if status == FAILED else ""
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
    """Run directories under ``root`` laid out as ``{dataset}/{arch}/{strategy}/{policy}/
    gpus{n}/rep{r}`` (or, stored before the strategy axis, without ``{strategy}``)."""
    found = [*root.glob("*/*/*/*/gpus*/rep*"), *root.glob("*/*/*/gpus*/rep*")]
    return sorted({p for p in found if p.is_dir() and parse_run_dir(p) is not None})


def _rank_in(values: pd.Series, order: Sequence[str]) -> pd.Series:
    where = {v: i for i, v in enumerate(order)}
    return values.map(lambda v: where.get(v, len(where)))


#: Columns sorted in the study's order rather than alphabetically.
ORDERED = {"policy": POLICIES, "strategy": STRATEGIES}


def sort_runs(df: pd.DataFrame, keys: Sequence[str] = RUN_KEYS) -> pd.DataFrame:
    """Sort by sweep parameters with policies and strategies in the study's order (none,
    horovod first)."""
    if df.empty:
        return df.reset_index(drop=True)
    ranked = {f"_{k}": _rank_in(df[k], ORDERED[k]) for k in ORDERED if k in keys and k in df}
    tmp = df.assign(**ranked)
    by = [f"_{k}" if f"_{k}" in ranked else k for k in keys]
    by += [k for k in keys if f"_{k}" in ranked]  # unknown names: alphabetically after
    return tmp.sort_values(by, kind="stable").drop(columns=list(ranked)).reset_index(drop=True)


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
    ids = [*RUN_KEYS, "status"]
    return out[[*ids, *(c for c in out.columns if c not in ids)]]


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


def rank_roles(run_dir: Path) -> list[str]:
    """What each rank of a run was (``run.json`` ``strategy_details.roles``: tf-ps's
    ``chief``, ``ps0``, ``worker1``...); empty when every rank is a worker (or unknown)."""
    try:
        details = read_json(Path(run_dir) / RUN_RECORD).get("strategy_details") or {}
    except (OSError, ValueError):
        return []
    roles = details.get("roles") if isinstance(details, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else []


def collect_resources(runs: pd.DataFrame, max_points: int = 600) -> pd.DataFrame:
    """All ranks' sampler series stacked with ``rank`` and ``role`` columns (``worker``
    unless the run recorded other roles), at most ``max_points`` samples each."""
    frames = []
    for ids in _run_ids(runs):
        roles = rank_roles(ids["run_dir"])
        for path in sorted(Path(ids["run_dir"]).glob("resources/rank*.csv")):
            m = re.fullmatch(r"rank(\d+)\.csv", path.name)
            if m is None:
                continue
            rank = int(m.group(1))
            role = re.sub(r"\d+$", "", roles[rank]) if rank < len(roles) else "worker"
            series = thin(read_csv_named(path), max_points)
            frames.append(series.assign(rank=rank, role=role,
                                        **{k: ids[k] for k in (*RUN_KEYS, "status")}))
    first = [*RUN_KEYS, "status", "rank", "role"]
    if not frames:
        return pd.DataFrame(columns=[*first, *RESOURCE_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[[*first, *(c for c in out.columns if c not in first)]]


def read_table(path: Path, required: bool = True) -> pd.DataFrame:
    """A CSV table; a missing optional one is empty (with a warning), a required one an error.

    Only empty cells and ``nan`` are missing values, so a policy named ``none`` stays a string.
    A run table (``policy`` and ``gpus`` columns) without ``strategy`` gets ``horovod``.
    """
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: table not found (written by segscale.report.tables)")
        log.warning("%s: not found; its panels will be empty", path)
        return pd.DataFrame()
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from None
    # a run table from before the strategy axis: its runs were Horovod's
    return with_strategy(table) if "policy" in table and "gpus" in table else table


# --------------------------------------------------------------------------- strategies
def with_strategy(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``strategy`` column: tables written before the strategy axis (and frames
    that never had one) are Horovod's."""
    if df.empty or "strategy" in df:
        return df
    return df.assign(strategy=DEFAULT_STRATEGY)


def primary_strategy(df: pd.DataFrame) -> str | None:
    """The strategy the per-policy figures show: the first of the study's order present."""
    present = set(with_strategy(df)["strategy"]) if not df.empty else set()
    return next((s for s in (*STRATEGIES, *sorted(present)) if s in present), None)


def of_strategy(df: pd.DataFrame, strategy: str | None) -> pd.DataFrame:
    """The rows of one strategy (all rows when ``strategy`` is None or the frame is empty)."""
    if df.empty or strategy is None:
        return df
    df = with_strategy(df)
    return df[df["strategy"].eq(strategy)].reset_index(drop=True)
