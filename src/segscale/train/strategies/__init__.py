"""How the ranks of one run train together: the ``strategy`` axis of the sweep.

Every strategy gives :mod:`segscale.train.run` the same few things (:class:`base.Strategy`):
rank and size, the collectives the callbacks use (max-allreduce of flags and timings, object
gather and broadcast), the scope the model and optimizer are built in, the optimizer wrapper,
and the datasets ``fit`` takes. The model code, lr policies, checkpoints, divergence
handling and records are the same for all of them.

- ``horovod`` (:mod:`.horovod`): Horovod's ring-allreduce (``hvd.DistributedOptimizer``);
  ranks from horovodrun, srun or mpirun.
- ``tf-collective`` (:mod:`.collective`): ``tf.distribute.MultiWorkerMirroredStrategy``,
  TensorFlow's own collectives; the cluster (``TF_CONFIG``) is agreed at start-up through the
  run directory (:mod:`.rendezvous`), whatever launched the ranks.
- ``tf-ps`` (:mod:`.ps`): ``tf.distribute.ParameterServerStrategy``, asynchronous updates
  of variables held by parameter servers; one coordinator process runs ``fit``, the workers
  and parameter servers only serve (the roles come from the same rendezvous).

Imports TensorFlow and Horovod lazily, inside :func:`start`.
"""

from __future__ import annotations

from segscale.study import PS_STRATEGY, STRATEGIES


def start(name: str, run_dir, configure=None, cluster=None):
    """Initialise strategy ``name`` in this rank and return it; ``configure(local_rank,
    local_size)`` pins the rank's devices at the moment TensorFlow still allows it
    (``tf-ps``: ``cluster`` is the coordinator's :class:`.ps.Cluster`, whose devices
    :func:`segscale.train.run.run` has already set).

    Raises:
        ValueError: an unknown strategy.
    """
    if name == "horovod":
        from segscale.train.strategies.horovod import HorovodStrategy

        return HorovodStrategy.start(configure)
    if name == "tf-collective":
        from segscale.train.strategies.collective import CollectiveStrategy

        return CollectiveStrategy.start(run_dir, configure)
    if name == PS_STRATEGY:
        from segscale.train.strategies.ps import PSStrategy

        if cluster is None:
            raise ValueError("tf-ps: the coordinator starts from its cluster (ps.join)")
        return PSStrategy.start(cluster)
    raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
