"""``tf-collective``: ``tf.distribute.MultiWorkerMirroredStrategy``, TensorFlow's own
collectives (ring on CPU, NCCL on GPUs), one replica per rank.

The workers agree on ``TF_CONFIG`` through the run directory (:mod:`.rendezvous`) before the
strategy starts. Each rank feeds its own shard to its replica through
``tf.keras.utils.experimental.DatasetCreator`` (``distribute_datasets_from_function``): the
same per-rank batches, from ``(seed, rank, epoch)``, as under Horovod, so the global batch is
``batch_size x ranks`` in both. Keras averages the loss over the global batch and sums the
gradients over the replicas, which is Horovod's average; the logs it gives the callbacks are
already global. The segscale callbacks' collectives (max of flags and timings, objects) are
sum-allreduces of the strategy outside the training step, called on every rank in the same
order (:mod:`.base`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segscale.train.strategies import rendezvous
from segscale.train.strategies.base import Strategy, allgather_object_by_sum, gather_by_sum


@dataclass
class CollectiveStrategy(Strategy):
    tf: Any = None
    strategy: Any = None
    rendezvous_dir: Path | None = None

    @classmethod
    def start(cls, run_dir: Path, configure: Callable[[int, int], None] | None = None
              ) -> CollectiveStrategy:
        """Agree on the cluster, let ``configure(local_rank, local_size)`` pin the devices
        (TensorFlow allows it only before the strategy starts), then start the strategy."""
        rank, size, addresses, nodes = rendezvous.join(Path(run_dir))
        local_rank, local_size = rendezvous.local_rank_and_size(nodes, rank)
        if configure is not None:
            configure(local_rank, local_size)
        import tensorflow as tf

        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        if strategy.num_replicas_in_sync != size:
            raise ValueError(f"tf-collective: {strategy.num_replicas_in_sync} replicas for "
                             f"{size} ranks: one visible device per rank is expected")
        folder = Path(run_dir) / rendezvous.FOLDER if size > 1 else None
        return cls("tf-collective", rank, size, local_rank, local_size,
                   {"workers": addresses, "communication": "AUTO",
                    "tensorflow": tf.__version__},
                   tf=tf, strategy=strategy, rendezvous_dir=folder)

    def _allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        tf = self.tf
        value = self.strategy.experimental_distribute_values_from_function(
            lambda _ctx: tf.constant(array, tf.float64))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy()

    def allgather_object(self, obj):
        objects = allgather_object_by_sum(self.rank, self.size, obj, self._allreduce_sum)
        if self.rank == 0 and self.rendezvous_dir is not None:
            # every rank has read the addresses (it is past its first collective)
            shutil.rmtree(self.rendezvous_dir, ignore_errors=True)
            self.rendezvous_dir = None
        return objects

    def allreduce_max(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return gather_by_sum(self.rank, self.size, values, self._allreduce_sum).max(axis=0)

    def allreduce_probe(self, fp16_allreduce: bool):
        """A gradient-sized allreduce through the strategy's collectives, as Horovod's probe
        (outside the step; TensorFlow fuses the real one into it)."""
        tf = self.tf

        def probe(tensor):
            value = self.strategy.experimental_distribute_values_from_function(
                lambda _ctx: tensor)
            return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

        return probe

    def scope(self):
        return self.strategy.scope()

    def fit_inputs(self, tf, make_train, make_val, stores=None):
        creator = tf.keras.utils.experimental.DatasetCreator
        return creator(lambda _ctx: make_train()), creator(lambda _ctx: make_val())
