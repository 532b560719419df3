"""``horovod``: Horovod's ring-allreduce of the gradients (``hvd.DistributedOptimizer``), the
platform's original strategy. Ranks come from horovodrun, srun or mpirun."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segscale.train.strategies.base import Strategy


@dataclass
class HorovodStrategy(Strategy):
    hvd: Any = None      # horovod.tensorflow.keras
    hvd_tf: Any = None   # horovod.tensorflow
    tf: Any = None
    broadcasts_variables = True

    @classmethod
    def start(cls, configure: Callable[[int, int], None] | None = None) -> HorovodStrategy:
        """Start Horovod, then let ``configure(local_rank, local_size)`` pin the devices."""
        import horovod.tensorflow as hvd_tf
        import horovod.tensorflow.keras as hvd
        import tensorflow as tf

        hvd.init()
        if configure is not None:
            configure(hvd.local_rank(), hvd.local_size())
        return cls("horovod", hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(),
                   {"mpi": bool(hvd_tf.mpi_enabled()), "gloo": bool(hvd_tf.gloo_enabled())},
                   hvd=hvd, hvd_tf=hvd_tf, tf=tf)

    def allgather_object(self, obj):
        return self.hvd_tf.allgather_object(obj)

    def broadcast_object(self, obj, root: int = 0):
        return self.hvd_tf.broadcast_object(obj, root_rank=root)

    def allreduce_max(self, values: np.ndarray) -> np.ndarray:
        tf = self.tf
        with tf.device("/cpu:0"):  # tiny control messages: keep them off the GPU/NCCL path
            return self.hvd_tf.allreduce(tf.constant(values, tf.float64),
                                         op=self.hvd_tf.Max).numpy()

    def _compression(self, fp16_allreduce: bool):
        return self.hvd.Compression.fp16 if fp16_allreduce else self.hvd.Compression.none

    def wrap_optimizer(self, optimizer, fp16_allreduce: bool):
        return self.hvd.DistributedOptimizer(optimizer,
                                             compression=self._compression(fp16_allreduce))

    def sync_variables(self, model, optimizer) -> None:
        self.hvd_tf.broadcast_variables(model.variables, root_rank=0)
        self.hvd_tf.broadcast_variables(optimizer.variables(), root_rank=0)

    def keras_callbacks(self) -> list:
        return [self.hvd.callbacks.MetricAverageCallback()]  # every rank decides on the same

    def allreduce_probe(self, fp16_allreduce: bool):
        compression = self._compression(fp16_allreduce)
        return lambda t: self.hvd_tf.allreduce(t, op=self.hvd_tf.Average,
                                               compression=compression,
                                               name="segscale_allreduce_probe")
