"""What a run leaves behind besides its model: ``history.csv``, ``run.json``, resource
samples, the digests that identify a resumable checkpoint and equal weights on ranks, and the
per-rank seeds of stochastic layers."""

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


def weights_agree(digests: list[str]) -> str | None:
    """None when every rank holds rank 0's weights, else why the run cannot be trusted (the
    ranks that differ from rank 0, named): synchronous data-parallel training keeps the
    weights equal on every rank, so a difference means a rank trained on its own."""
    differ = [k for k, d in enumerate(digests) if d != digests[0]]
    if not differ:
        return None
    ranks = ", ".join(map(str, differ))
    which = f"ranks {ranks} differ" if len(differ) > 1 else f"rank {ranks} differs"
    return (f"ranks hold different weights after training: {which} from rank 0 "
            f"({len(digests)} ranks)")


def rank_seed(seed: int, rank: int) -> int:
    """The seed of this rank's stochastic layers (dropout): the first 32-bit word of the
    ``rank``-th child of ``numpy.random.SeedSequence(seed)`` (what ``SeedSequence(seed)
    .spawn(n)[rank]`` gives), so it depends on (seed, rank) only and differs between ranks.
    The data order, ``default_rng([seed, rank, epoch])`` (:mod:`.batches`), is another
    stream of the same (seed, rank)."""
    child = np.random.SeedSequence(seed, spawn_key=(rank,))
    return int(child.generate_state(1, np.uint32)[0])


def rank_seeds(seed: int, n_ranks: int) -> list[int]:
    """:func:`rank_seed` of every rank, as ``run.json`` records them."""
    return [rank_seed(seed, k) for k in range(n_ranks)]


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
                     environment=environment, strategy=spec.strategy)


def write_record(path: Path, record: RunRecord) -> None:
    write_json(path, record.to_dict())
