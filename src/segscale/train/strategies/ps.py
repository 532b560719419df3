"""``tf-ps``: ``tf.distribute.ParameterServerStrategy``, asynchronous training with the
variables on parameter servers.

A launch of ``P = workers + ps_tasks + 1`` processes (any launcher :mod:`.rendezvous`
knows) agrees on its cluster through the run directory, as ``tf-collective`` does; then
:func:`assign_roles` makes ``P - ps_tasks - 1`` of them workers (spread over the nodes, at
most as many per node as a node needs, so one GPU each), the lowest remaining rank the chief
(the coordinator, the only process that runs ``fit`` and the segscale callbacks, on CPU) and
the rest parameter servers (CPU). Workers and parameter servers only run a
``tf.distribute.Server`` and sample their resources (:func:`serve`) until the coordinator
writes ``<rendezvous folder>/done`` with its exit code (:func:`finish`); then they hand their
samples over through the same folder and exit with that code.

Each step of ``fit`` is one worker's batch applied to the variables on the parameter servers,
without waiting for the other workers (no allreduce): see docs/strategies.md for the work per
epoch, the lr and why the data order is not reproducible.

:func:`assign_roles` needs no TensorFlow; the rest imports it lazily.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segscale.fileio import atomic_path
from segscale.study import PS_STRATEGY
from segscale.train.strategies import rendezvous
from segscale.train.strategies.base import Strategy

log = logging.getLogger(__name__)

CHIEF, WORKER, PS = "chief", "worker", "ps"
DONE = "done"
#: How long the coordinator waits for the servers' resource samples after ``done``.
SAMPLES_TIMEOUT_S = 60.0


def assign_roles(nodes: list[str], ps_tasks: int) -> list[tuple[str, int]]:
    """(role, index) of every process, in rank order, from each process's node name.

    Workers: ``len(nodes) - ps_tasks - 1``, taken round-robin over the nodes in order of
    first appearance, lowest ranks of a node first (no node gets more workers than its share:
    one GPU each). Chief: the lowest rank left. Parameter servers: the rest, in rank order.

    Raises:
        ValueError: ``ps_tasks`` < 1, or no process left for a worker.
    """
    if ps_tasks < 1:
        raise ValueError(f"hparams.ps_tasks: at least 1 parameter server, got {ps_tasks}")
    n_workers = len(nodes) - ps_tasks - 1
    if n_workers < 1:
        raise ValueError(f"tf-ps: {len(nodes)} processes leave no worker with ps_tasks "
                         f"{ps_tasks} (one chief + {ps_tasks} ps + the workers): launch "
                         f"workers + {ps_tasks + 1} processes")
    by_node: dict[str, list[int]] = {}
    for rank, node in enumerate(nodes):
        by_node.setdefault(node, []).append(rank)
    queues = [list(ranks) for ranks in by_node.values()]
    workers: list[int] = []
    while len(workers) < n_workers:
        for queue in queues:
            if queue and len(workers) < n_workers:
                workers.append(queue.pop(0))
    roles: list[tuple[str, int] | None] = [None] * len(nodes)
    for index, rank in enumerate(sorted(workers)):
        roles[rank] = (WORKER, index)
    rest = [rank for rank in range(len(nodes)) if roles[rank] is None]
    roles[rest[0]] = (CHIEF, 0)
    for index, rank in enumerate(rest[1:]):
        roles[rank] = (PS, index)
    return [role for role in roles if role is not None]


def check_processes(processes: int, ps_tasks: int) -> None:
    """Refuse a launch of ``processes`` that leaves no worker with ``ps_tasks``.

    Raises:
        ValueError: fewer than ``ps_tasks + 2`` processes (names both numbers).
    """
    assign_roles(["node"] * processes, ps_tasks)


def role_names(roles: list[tuple[str, int]]) -> list[str]:
    """``chief``, ``ps0``, ``worker1``... per rank, as ``run.json`` records them."""
    return [CHIEF if role == CHIEF else f"{role}{index}" for role, index in roles]


def tf_config(addresses: list[str], roles: list[tuple[str, int]], rank: int) -> dict:
    """``TF_CONFIG`` of process ``rank``: the cluster by role, and this process's task."""
    cluster: dict[str, list[str]] = {CHIEF: [], WORKER: [], PS: []}
    for (role, _index), address in sorted(zip(roles, addresses, strict=True),
                                          key=lambda pair: pair[0]):
        cluster[role].append(address)
    role, index = roles[rank]
    return {"cluster": cluster, "task": {"type": role, "index": index}}


@dataclass
class Cluster:
    """This process's place in a ``tf-ps`` launch."""

    rank: int
    size: int
    addresses: list[str]
    nodes: list[str]
    roles: list[tuple[str, int]]
    ps_tasks: int
    folder: Path | None  # the launch's rendezvous folder (None: alone, which is refused)

    @property
    def role(self) -> str:
        return self.roles[self.rank][0]

    @property
    def index(self) -> int:
        return self.roles[self.rank][1]

    @property
    def n_workers(self) -> int:
        return sum(role == WORKER for role, _ in self.roles)

    def local_worker(self) -> tuple[int, int]:
        """This worker's index among the workers of its node, and their number (GPU)."""
        mine = [k for k, (role, _) in enumerate(self.roles)
                if role == WORKER and self.nodes[k] == self.nodes[self.rank]]
        return mine.index(self.rank), len(mine)

    def details(self, tf_version: str) -> dict[str, Any]:
        return {"roles": role_names(self.roles), "ps_tasks": self.ps_tasks,
                "workers": self.n_workers, "processes": self.size,
                "addresses": list(self.addresses), "tensorflow": tf_version,
                # one worker's batch per update: the lr is the 1-GPU run's (docs/strategies.md)
                "replicas_per_update": 1}


def join(run_dir: Path, ps_tasks: int, environ: dict[str, str] | None = None,
         timeout_s: float = 300) -> Cluster:
    """Agree on the cluster through the run directory, assign the roles and set
    ``TF_CONFIG``.

    Raises:
        ValueError: too few processes for one worker (every process refuses alike).
    """
    environ = dict(os.environ) if environ is None else environ
    rank, size = rendezvous.rank_and_size(environ)
    check_processes(size, ps_tasks)
    folder, addresses, nodes = rendezvous.exchange(run_dir, environ, rank, size, timeout_s)
    roles = assign_roles(nodes, ps_tasks)
    os.environ["TF_CONFIG"] = json.dumps(tf_config(addresses, roles, rank))
    return Cluster(rank, size, addresses, nodes, roles, ps_tasks, folder)


def placement_path(folder: Path, rank: int) -> Path:
    return folder / f"placement-rank{rank}.json"


def publish_placement(cluster: Cluster, placement: tuple) -> None:
    """A worker's GPU placement (segscale.train.launch.GpuPlacement as a tuple), for the
    coordinator's check that no two workers of a node share a GPU."""
    with atomic_path(placement_path(cluster.folder, cluster.rank)) as tmp:
        Path(tmp).write_text(json.dumps(list(placement)))


def worker_placements(cluster: Cluster, timeout_s: float = 300,
                      poll_s: float = 0.2) -> list[tuple]:
    """Every worker's published placement, in rank order (the coordinator waits for them).

    Raises:
        TimeoutError: a worker did not publish within ``timeout_s`` (names it).
    """
    deadline = time.monotonic() + timeout_s
    found = []
    for rank, (role, index) in enumerate(cluster.roles):
        if role != WORKER:
            continue
        path = placement_path(cluster.folder, rank)
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"tf-ps: worker {index} (rank {rank}) did not say which "
                                   f"GPU it took within {timeout_s:.0f} s")
            time.sleep(poll_s)
        found.append(tuple(json.loads(path.read_text())))
    return found


def samples_path(folder: Path, rank: int) -> Path:
    return folder / f"samples-rank{rank}.json"


def serve(cluster: Cluster, sampler, poll_s: float = 0.5) -> int:
    """Run this worker's or parameter server's ``tf.distribute.Server`` until the coordinator
    writes ``done``; hand over the resource samples; return the coordinator's exit code.

    The server keeps threads TensorFlow never stops: the caller must leave with ``os._exit``.
    """
    import tensorflow as tf

    spec = tf.train.ClusterSpec(json.loads(os.environ["TF_CONFIG"])["cluster"])
    server = tf.distribute.Server(spec, job_name=cluster.role, task_index=cluster.index,
                                  protocol="grpc", start=True)
    log.info("tf-ps %s %d serving at %s", cluster.role, cluster.index, server.target)
    done = cluster.folder / DONE
    while not done.exists():
        time.sleep(poll_s)
    text = done.read_text().strip()
    code = int(text) if text.lstrip("-").isdigit() else 1
    rows = sampler.stop()
    with atomic_path(samples_path(cluster.folder, cluster.rank)) as tmp:
        Path(tmp).write_text(json.dumps(rows))
    log.info("tf-ps %s %d: the coordinator is done (exit %d)", cluster.role, cluster.index,
             code)
    # until the coordinator has collected every sample and leaves (it removes the folder):
    # a server gone before it would be reported as a failed worker
    deadline = time.monotonic() + SAMPLES_TIMEOUT_S + 10
    while cluster.folder.exists() and time.monotonic() < deadline:
        time.sleep(poll_s)
    time.sleep(poll_s)
    return code


def finish(cluster: Cluster, code: int, own_rows: list, out: Path | None,
           write_rows: Callable[[Path, list], None] | None,
           timeout_s: float = SAMPLES_TIMEOUT_S, poll_s: float = 0.2) -> None:
    """The coordinator's last act, whatever the outcome: write ``done`` with ``code`` (the
    servers exit with it), collect their samples (bounded wait), write
    ``resources/rank{k}.csv`` for every process (``out`` None: none) and remove the
    rendezvous folder."""
    folder = cluster.folder
    with atomic_path(folder / DONE) as tmp:
        Path(tmp).write_text(f"{code}\n")
    samples: list[list] = []
    deadline = time.monotonic() + timeout_s
    for rank in range(cluster.size):
        if rank == cluster.rank:
            samples.append(own_rows)
            continue
        path = samples_path(folder, rank)
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(poll_s)
        try:
            samples.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            log.warning("tf-ps: no resource samples from rank %d (%s)", rank,
                        role_names(cluster.roles)[rank])
            samples.append([])
    if out is not None and write_rows is not None:
        for rank, rows in enumerate(samples):
            write_rows(Path(out) / "resources" / f"rank{rank}.csv", rows)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # .rendezvous itself, unless another launch is in it
        folder.parent.rmdir()


@dataclass
class PSStrategy(Strategy):
    """The coordinator's strategy: the only segscale rank (rank 0 of 1: the collectives are
    identities); ``n_workers`` is what the records count as ranks."""

    tf: Any = None
    strategy: Any = None
    cluster: Cluster | None = None
    n_workers: int = 1
    store_paths: tuple[Path, Path] | None = field(default=None)

    #: Checkpoints are read on the coordinator and set into the parameter servers' variables.
    broadcasts_variables = True
    #: resources/ is written after the servers stop (:func:`finish`), not by finalise.
    writes_resources = False
    #: each update is one worker's batch: no per-batch logs to read, no step breakdown.
    asynchronous = True

    @classmethod
    def start(cls, cluster: Cluster) -> PSStrategy:
        import tensorflow as tf

        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        strategy = tf.distribute.ParameterServerStrategy(resolver)
        return cls(PS_STRATEGY, 0, 1, 0, 1, cluster.details(tf.__version__), tf=tf,
                   strategy=strategy, cluster=cluster, n_workers=cluster.n_workers)

    @property
    def recorded_ranks(self) -> int:
        return self.n_workers

    def allgather_object(self, obj):
        return [obj]

    def allreduce_max(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def scope(self):
        return self.strategy.scope()

    def fit_inputs(self, tf, make_train, make_val, stores=None):
        """Pure-TF pipelines (:func:`store_dataset`): the function is traced once on the
        coordinator and runs on every worker, where no Python generator can."""
        if stores is None:
            raise ValueError("tf-ps needs the stores' paths and batch size")
        train_store, val_store, batch_size = stores
        creator = tf.keras.utils.experimental.DatasetCreator

        def train_fn(_ctx):
            return store_dataset(tf, train_store, batch_size, shuffle=True)

        def val_fn(_ctx):
            return store_dataset(tf, val_store, batch_size, shuffle=False)

        return creator(train_fn), creator(val_fn)


def npy_layout(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """(header bytes, shape, dtype) of a C-order ``.npy`` file."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
        if fortran:
            raise ValueError(f"{path}: Fortran-order arrays are not supported under tf-ps")
        return fh.tell(), tuple(int(d) for d in shape), np.dtype(dtype)


def store_dataset(tf, store: Path, batch_size: int, shuffle: bool):
    """Batches of (images float32, labels uint8) read from a slice store's ``.npy`` files
    with TensorFlow ops only; training: shuffled with seeds drawn at run time on each worker
    (every worker its own order), repeated, whole batches; validation: in order, the last
    partial batch kept, repeated."""
    from segscale.data.store import IMAGES, LABELS

    store = Path(store)
    pieces = []
    for name in (IMAGES, LABELS):
        header, shape, dtype = npy_layout(store / name)
        row = shape[1:]
        record = int(np.prod(row)) * dtype.itemsize
        ds = tf.data.FixedLengthRecordDataset(str(store / name), record_bytes=record,
                                              header_bytes=header)
        tf_dtype = tf.as_dtype(dtype.newbyteorder("="))
        little = dtype.byteorder != ">"

        def decode(raw, tf_dtype=tf_dtype, row=row, little=little):
            return tf.reshape(tf.io.decode_raw(raw, tf_dtype, little_endian=little), row)

        pieces.append(ds.map(decode))
    images, labels = pieces
    ds = tf.data.Dataset.zip((images.map(lambda x: tf.cast(x, tf.float32)), labels))
    n = shape[0]
    if shuffle:
        # The function is traced once, with the coordinator's global seed: without it the
        # shuffle's seeds are drawn at run time, by each worker's own pipeline.
        tf.random.set_seed(None)
        ds = ds.shuffle(n, reshuffle_each_iteration=True).repeat()
        return ds.batch(batch_size, drop_remainder=True).prefetch(2)
    return ds.batch(batch_size).repeat().prefetch(2)
