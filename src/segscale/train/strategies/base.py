"""What a strategy gives the training (:class:`Strategy`), and the object collectives built
from a plain sum-allreduce for strategies that have no object collectives of their own."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Strategy:
    """One rank's view of its strategy, once initialised.

    ``local_rank``/``local_size`` place the rank on its host (GPU pinning); the collectives
    must be called by every rank in the same order, as Horovod's are.
    """

    name: str
    rank: int
    size: int
    local_rank: int
    local_size: int
    details: dict[str, Any] = field(default_factory=dict)  # recorded in run.json
    #: Whether :meth:`sync_variables` broadcasts rank 0's weights (then only rank 0 needs
    #: to read a checkpoint).
    broadcasts_variables = False
    #: Whether :func:`segscale.train.run.finalise` writes ``resources/`` (tf-ps: the
    #: coordinator writes them once its servers have stopped).
    writes_resources = True
    #: Whether each update is one worker's batch, unsynchronised (tf-ps): the per-batch logs
    #: are not read and there is no per-step breakdown.
    asynchronous = False

    @property
    def recorded_ranks(self) -> int:
        """What ``run.json`` ``n_ranks`` and history ``ranks`` count: the GPUs that train."""
        return self.size

    def allgather_object(self, obj: Any) -> list[Any]:
        raise NotImplementedError

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.allgather_object(obj if self.rank == root else None)[root]

    def allreduce_max(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def scope(self):
        """Where the model, optimizer and ``compile`` are made."""
        return contextlib.nullcontext()

    def wrap_optimizer(self, optimizer, fp16_allreduce: bool):
        """The optimizer that averages gradients over the ranks (as is when the strategy
        does that itself)."""
        return optimizer

    def sync_variables(self, model, optimizer) -> None:
        """Make every rank start from rank 0's weights and optimizer state."""

    def keras_callbacks(self) -> list:
        """Callbacks that must come before segscale's (e.g. averaging the logs)."""
        return []

    def allreduce_probe(self, fp16_allreduce: bool) -> Callable[[Any], Any] | None:
        """One allreduce of a tensor, timed by the step timing callback; None: not measured."""
        return None

    def fit_inputs(self, tf, make_train: Callable[[], Any], make_val: Callable[[], Any],
                   stores: tuple[Any, Any, int] | None = None):
        """What ``fit`` takes for training and validation data, from the functions that make
        this rank's ``tf.data`` pipelines (``stores``: the training and validation stores'
        paths and the batch size, for strategies that build their own pipelines)."""
        return make_train(), make_val()


def encode(obj: Any) -> np.ndarray:
    return np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)


def decode(data: np.ndarray) -> Any:
    return pickle.loads(np.asarray(data, dtype=np.uint8).tobytes())  # noqa: S301 - our ranks


def gather_by_sum(rank: int, size: int, values: np.ndarray,
                  allreduce_sum: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Every rank's ``values`` (same shape on all ranks), stacked in rank order, from one
    sum-allreduce: each rank fills its own row of zeros, so the sum is exact (x + 0 = x,
    NaN and inf included)."""
    rows = np.zeros((size, *values.shape), dtype=np.float64)
    rows[rank] = values
    return allreduce_sum(rows)


def allgather_object_by_sum(rank: int, size: int, obj: Any,
                            allreduce_sum: Callable[[np.ndarray], np.ndarray]) -> list[Any]:
    """Every rank's picklable ``obj`` in rank order, through two sum-allreduces (lengths,
    then the bytes padded to the longest; bytes are exact in float64)."""
    data = encode(obj)
    lengths = gather_by_sum(rank, size, np.array([len(data)], dtype=np.float64), allreduce_sum)
    longest = int(lengths.max())
    padded = np.zeros(longest, dtype=np.float64)
    padded[:len(data)] = data
    rows = gather_by_sum(rank, size, padded, allreduce_sum)
    return [decode(rows[i, :int(lengths[i, 0])]) for i in range(size)]
