"""What a rank knows from its launcher before Horovod starts: its rank for log lines, the
number of ranks, the preemption signals it must catch from the first instant, and which GPU
it may take (no two ranks of a node on one GPU)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import NamedTuple

log = logging.getLogger("segscale.train")

# What each launcher calls a rank's index and the number of ranks, first match wins:
# segscale.train.spawn, horovodrun, OpenMPI's mpirun, PMI(x) launchers, srun.
RANK_ENV = ("SEGSCALE_RANK", "HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
            "SLURM_PROCID")
SIZE_ENV = ("SEGSCALE_SIZE", "HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
            "SLURM_NTASKS")


class RankFilter(logging.Filter):
    """Prefixes every record with the rank, known from the launcher's environment early and
    from Horovod once initialised (:func:`set_rank`)."""

    rank = next((os.environ[k] for k in RANK_ENV if k in os.environ), "0")

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def set_rank(rank: int) -> None:
    RankFilter.rank = str(rank)


def is_rank_zero() -> bool:
    return RankFilter.rank == "0"


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RankFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [rank %(rank)s] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def launcher_size() -> int:
    """Number of ranks as the launcher announced it (1 when started alone)."""
    for key in SIZE_ENV:
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


class SignalFlag:
    """Set by SIGTERM / SIGUSR1 / SIGURG (preemption, the walltime warning); the callbacks
    poll it and stop all ranks together at the next synchronisation point.

    SIGURG is the Slurm walltime warning of the train rule (``--signal=URG@<margin>``,
    docs/slurm.md): its default action is to ignore it, so the Snakemake and shell processes
    that share the 1-GPU baseline's job step with the rank survive it, where SIGUSR1 or
    SIGTERM would kill or stop them before the rank could checkpoint.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def install(self) -> SignalFlag:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signum = signum  # first: the log line below may fail (stderr busy), the flag not
        self.event.set()
        log.warning("received signal %d: stopping at the next synchronisation point", signum)

    def is_set(self) -> bool:
        return self.event.is_set()

    def ignore(self) -> None:
        """Ignore the signals from now on: the run has stopped and its checkpoint is on disk.
        A launcher that stops the other ranks once one exits (srun --kill-on-bad-exit sends
        SIGTERM) must not turn a rank's exit 75 into a death by signal; Python restores the
        default action of its handled signals while it shuts down, not of ignored ones."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


class GpuPlacement(NamedTuple):
    """Where one rank trains, as every rank reports it (gathered before training)."""

    host: str
    local_size: int   # ranks on this host
    gpus_seen: int    # GPUs visible to this rank (0: CPU)
    gpu: str | None   # the GPU it takes: its CUDA_VISIBLE_DEVICES entry, else its index


def gpu_placement(host: str, local_rank: int, local_size: int, gpus_seen: int,
                  cuda_visible_devices: str | None = None) -> GpuPlacement:
    """This rank's GPU: visible GPU ``local_rank % gpus_seen``, named by its
    ``CUDA_VISIBLE_DEVICES`` entry when that is set (a launcher that binds one GPU per rank,
    e.g. Slurm's ``--ntasks-per-gpu=1``, gives each rank a different one), else by index."""
    if not gpus_seen:
        return GpuPlacement(host, local_size, 0, None)
    index = local_rank % gpus_seen
    ids = [v.strip() for v in (cuda_visible_devices or "").split(",") if v.strip()]
    return GpuPlacement(host, local_size, gpus_seen, ids[index] if index < len(ids) else
                        str(index))


def gpu_conflict(placements: list[GpuPlacement]) -> str | None:
    """None when no two ranks take the same GPU of the same host, else the refusal: the
    ranks, host, local size, GPUs seen and the fix. CPU ranks never conflict."""
    taken: dict[tuple[str, str], int] = {}
    for rank, p in enumerate(placements):
        if p.gpu is None:
            continue
        first = taken.setdefault((p.host, p.gpu), rank)
        if first != rank:
            return (f"ranks {first} and {rank} would share GPU {p.gpu} on {p.host}: "
                    f"{p.local_size} ranks on that node (local size) but {p.gpus_seen} GPU(s) "
                    "visible to each; run one rank per GPU (config gpus_per_node; by hand: "
                    "srun --ntasks-per-node=<GPUs per node> or --ntasks-per-gpu=1, "
                    "horovodrun -H host:<GPUs per node>)")
    return None
