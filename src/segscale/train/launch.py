"""What a rank knows from its launcher before Horovod starts: its rank for log lines, the
number of ranks, and the preemption signals it must catch from the first instant."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

log = logging.getLogger("segscale.train")

RANK_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
SIZE_ENV = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


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
    """Set by SIGTERM / SIGUSR1 (Slurm preemption, time limit); the callbacks poll it and
    stop all ranks together at the next synchronisation point."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def install(self) -> SignalFlag:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        log.warning("received signal %d: stopping at the next synchronisation point", signum)
        self.signum = signum
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()
