"""TF-free parts of segscale.train: data order per epoch, fingerprint, CLI argument errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from segscale.data.store import SliceStore, SliceStoreWriter
from segscale.train.batches import train_batches, val_batches
from segscale.train.cli import main
from segscale.train.config import RunSpec, TrainConfig
from segscale.train.record import fingerprint, weights_digest


@pytest.fixture
def store(tmp_path) -> SliceStore:
    n = 20
    w = SliceStoreWriter(tmp_path / "s", n, (4, 4), 1, "float32")
    w.write(0, np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((n, 4, 4, 1)),
            np.zeros((n, 4, 4), np.uint8))
    w.commit(pd.DataFrame({"patient": ["p"] * n, "slice": range(n)}),
             {"n_classes": 2, "count": n})
    return SliceStore.open(tmp_path / "s")


def ids(batch) -> list[int]:
    return [int(v) for v in batch[0][:, 0, 0, 0]]


def take(gen, k):
    return [ids(next(gen)) for _ in range(k)]


def test_epoch_content_depends_only_on_seed_rank_epoch(store):
    rows = store.shard(0, 2)                    # 10 rows
    steps = 3                                   # of 5 possible batches of 2: a cap
    full = take(train_batches(store, rows, 2, steps, 7, 0, 0), 3 * steps)
    resumed = take(train_batches(store, rows, 2, steps, 7, 0, 1), 2 * steps)
    assert resumed == full[steps:]              # resuming at epoch 1 replays it exactly
    assert full[:steps] != full[steps:2 * steps]  # reshuffled every epoch
    assert all(set(b) <= set(rows.tolist()) for b in full)
    other_rank = take(train_batches(store, store.shard(1, 2), 2, steps, 7, 1, 0), steps)
    assert not set(sum(other_rank, [])) & set(sum(full[:steps], []))


def test_validation_repeats_in_order_with_partial_last_batch(store):
    rows = store.shard(0, 1)
    gen = val_batches(store, rows, 8, 3)
    first = take(gen, 3)
    assert [len(b) for b in first] == [8, 8, 4] and sum(first, []) == list(range(20))
    assert take(gen, 3) == first


def test_fingerprint_changes_with_what_matters(tmp_path):
    spec = RunSpec(tmp_path, tmp_path, tmp_path, "d", "unet", "none", 0)
    base = fingerprint(spec, TrainConfig(), 2, 10, (32, 32, 1), 3)
    assert base == fingerprint(spec, TrainConfig(), 2, 10, (32, 32, 1), 3)
    assert base != fingerprint(spec, TrainConfig(lr=2e-5), 2, 10, (32, 32, 1), 3)
    assert base != fingerprint(spec, TrainConfig(), 4, 10, (32, 32, 1), 3)


def test_weights_digest():
    a = [np.ones((2, 2), np.float32), np.zeros(3, np.float32)]
    assert weights_digest(a) == weights_digest([x.copy() for x in a])
    assert weights_digest(a) != weights_digest([a[0] * 2, a[1]])


ARGS = ["--train-store", "t", "--val-store", "v", "--out", "o", "--dataset", "d",
        "--arch", "unet", "--seed", "0"]


@pytest.mark.parametrize("extra, message", [
    (["--policy", "none", "--hparams", json.dumps({"epoch": 3})], "'epoch'"),
    (["--policy", "none", "--hparams", json.dumps({"lr": -1})], "hparams.lr"),
    (["--policy", "none", "--hparams", "{bad"], "not valid JSON"),
    (["--policy", "linear"], "--policy"),
])
def test_cli_rejects_bad_arguments_before_tensorflow(extra, message, capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert main(ARGS + extra) == 2
    finally:  # main() installs its own handler: give pytest's back
        root.handlers[:], root.level = saved[0], saved[1]
    err = capsys.readouterr().err
    assert message in err and "[rank 0] ERROR" in err
