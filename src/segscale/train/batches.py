"""The input stream of a rank: batches that depend only on (seed, rank, epoch), so a resumed
run sees exactly the batches an uninterrupted one would have."""

from __future__ import annotations

import numpy as np


def train_batches(store, rows: np.ndarray, batch_size: int, steps: int, seed: int, rank: int,
                  start_epoch: int):
    """Endless stream of training batches, epoch after epoch, from ``start_epoch`` on.

    Epoch ``e`` is ``steps`` batches of this rank's rows shuffled by
    ``default_rng([seed, rank, e])``; its content depends on nothing else.
    """
    epoch = start_epoch
    while True:
        rng = np.random.default_rng([seed, rank, epoch])
        for i, batch in enumerate(store.batches(rows, batch_size, rng)):
            if i >= steps:
                break
            yield batch
        epoch += 1


def val_batches(store, rows: np.ndarray, batch_size: int, steps: int):
    """Endless repetition of the first ``steps`` validation batches, in order."""
    while True:
        for i, batch in enumerate(store.batches(rows, batch_size, None, drop_last=False)):
            if i >= steps:
                break
            yield batch
