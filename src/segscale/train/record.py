"""What a run leaves behind besides its model: ``history.csv``, ``run.json``, resource
samples, and the digests that identify a resumable checkpoint and equal weights on ranks."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from segscale.fileio import atomic_path, write_json
from segscale.study import HISTORY_COLUMNS, RunRecord
from segscale.train.config import RunSpec, TrainConfig


def fingerprint(spec: RunSpec, cfg: TrainConfig, n_ranks: int, steps: int,
                image_shape: tuple[int, ...], n_classes: int) -> str:
    """Identifies what a checkpoint may resume: same model, data geometry, schedule, ranks."""
    payload = {"dataset": spec.dataset, "arch": spec.arch, "policy": spec.policy,
               "seed": spec.seed, "hparams": cfg.to_dict(), "n_ranks": n_ranks,
               "steps_per_epoch": steps, "image_shape": list(image_shape),
               "n_classes": n_classes}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def weights_digest(weights: list[np.ndarray]) -> str:
    """sha256 over all weight arrays in order: equal on every rank after synchronous steps."""
    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv with :data:`segscale.study.HISTORY_COLUMNS`, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_resources(out: Path, samples: list, write_rows) -> None:
    """Every rank's resource samples as ``resources/rank{k}.csv``."""
    for k, rows in enumerate(samples):
        write_rows(out / "resources" / f"rank{k}.csv", rows)


def base_record(spec: RunSpec, cfg: TrainConfig, status: str, n_ranks: int,
                environment: dict[str, Any]) -> RunRecord:
    """The record's identity fields, shared by finished and failed runs."""
    return RunRecord(status=status, dataset=spec.dataset, arch=spec.arch, policy=spec.policy,
                     n_ranks=n_ranks,
                     repeat=spec.repeat if spec.repeat is not None else spec.seed,
                     seed=spec.seed, hparams=cfg.to_dict(), epochs_planned=cfg.epochs,
                     environment=environment)


def write_record(path: Path, record: RunRecord) -> None:
    write_json(path, record.to_dict())
