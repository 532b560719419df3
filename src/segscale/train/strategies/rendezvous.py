"""The ranks of a ``tf-collective`` run agree on their cluster (``TF_CONFIG``) through the run
directory, whatever launched them (srun, mpirun over oarsh, horovodrun, segscale.train.spawn).

Each rank binds a free port on its host, writes ``host:port node`` to
``<run dir>/.rendezvous/<launch id>/rank<k>`` and waits for all ``size`` files; rank order
gives the worker list, and the node names (the scheduler's, else the host name) give each
rank its local rank, by which it picks its GPU.

Why not ``SlurmClusterResolver``: it gives every task of a node the same fixed port range
from node names that must resolve, which breaks where two "nodes" share a host (the local
emulation) or a port is taken; the run directory is on the shared filesystem every cluster
job already needs. The launch id keeps a retry from reading the files of the attempt
before it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from segscale.fileio import atomic_path
from segscale.train.launch import RANK_ENV, SIZE_ENV

FOLDER = ".rendezvous"


def rank_and_size(environ: dict[str, str]) -> tuple[int, int]:
    """This process's rank and the number of ranks, as its launcher announced them ((0, 1)
    when started alone)."""
    rank = next((int(environ[k]) for k in RANK_ENV if environ.get(k, "").isdigit()), 0)
    size = next((int(environ[k]) for k in SIZE_ENV if environ.get(k, "").isdigit()), 1)
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} is outside the launcher's {size} ranks")
    return rank, size


def launch_id(environ: dict[str, str]) -> str:
    """What every rank of one launch shares and the next launch does not.

    Raises:
        ValueError: no launcher this module knows set one.
    """
    if environ.get("SEGSCALE_LAUNCH_ID"):
        return environ["SEGSCALE_LAUNCH_ID"]
    if environ.get("SLURM_JOB_ID") and environ.get("SLURM_STEP_ID"):
        return f"slurm-{environ['SLURM_JOB_ID']}.{environ['SLURM_STEP_ID']}"
    for key in ("OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE"):
        if environ.get(key):
            return f"mpi-{environ[key]}"
    if environ.get("HOROVOD_GLOO_RENDEZVOUS_PORT"):
        return (f"horovodrun-{environ.get('HOROVOD_GLOO_RENDEZVOUS_ADDR', '')}-"
                f"{environ['HOROVOD_GLOO_RENDEZVOUS_PORT']}")
    raise ValueError("cannot tell this launch from another: start the ranks with srun, mpirun, "
                     "horovodrun or python -m segscale.train.spawn (or set SEGSCALE_LAUNCH_ID)")


def free_port() -> int:
    """A TCP port free on this host now (the TensorFlow server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def agree(folder: Path, rank: int, size: int, address: str, timeout_s: float = 300,
          poll_s: float = 0.2) -> list[str]:
    """Publish ``address`` as rank ``rank`` and return every rank's, in rank order.

    Raises:
        TimeoutError: not every rank published within ``timeout_s`` (names the missing ones).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"rank{rank}") as tmp:
        Path(tmp).write_text(address)
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [k for k in range(size) if not (folder / f"rank{k}").exists()]
        if not missing:
            return [(folder / f"rank{k}").read_text().strip() for k in range(size)]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: rank(s) {missing} of {size} did not publish their "
                               f"address within {timeout_s:.0f} s")
        time.sleep(poll_s)


def tf_config(addresses: list[str], rank: int) -> dict:
    """``TF_CONFIG`` of worker ``rank`` in a cluster of ``addresses`` (all workers)."""
    return {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": rank}}


def local_rank_and_size(nodes: list[str], rank: int) -> tuple[int, int]:
    """Rank and number of ranks on this rank's node (GPU pinning), from every rank's node."""
    same = [k for k, node in enumerate(nodes) if node == nodes[rank]]
    return same.index(rank), len(same)


def node_name(environ: dict[str, str]) -> str:
    """The scheduler's name for this rank's node (two emulated nodes may share a host)."""
    return (environ.get("SLURMD_NODENAME") or environ.get("OAR_NODENAME")
            or socket.gethostname())


def exchange(run_dir: Path, environ: dict[str, str], rank: int, size: int,
             timeout_s: float = 300) -> tuple[Path, list[str], list[str]]:
    """Publish this process's ``host:port node`` in the launch's folder and read every
    rank's: (the folder, addresses and node names in rank order)."""
    folder = Path(run_dir) / FOLDER / launch_id(environ)
    published = f"{socket.gethostname()}:{free_port()} {node_name(environ)}"
    entries = [entry.split(" ", 1) for entry in agree(folder, rank, size, published, timeout_s)]
    return folder, [e[0] for e in entries], [e[-1] for e in entries]


def join(run_dir: Path, environ: dict[str, str] | None = None,
         timeout_s: float = 300) -> tuple[int, int, list[str], list[str]]:
    """Agree on the cluster and set ``TF_CONFIG`` (removed for one rank); returns (rank,
    size, worker addresses, node names)."""
    environ = dict(os.environ) if environ is None else environ
    rank, size = rank_and_size(environ)
    if size == 1:
        os.environ.pop("TF_CONFIG", None)
        return 0, 1, [f"{socket.gethostname()}:0"], [node_name(environ)]
    _folder, addresses, nodes = exchange(run_dir, environ, rank, size, timeout_s)
    os.environ["TF_CONFIG"] = json.dumps(tf_config(addresses, rank))
    return rank, size, addresses, nodes
