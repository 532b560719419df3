"""Per-rank resource sampler: a background thread recording CPU, memory, GPU and network use.

One row every ``interval_s`` seconds (and one at start and stop): ``time_s`` since start,
``cpu_percent`` of this process (100 = one core busy), ``rss_mb``, ``gpu_util`` (%) and
``gpu_mem_mb`` (device memory used) of this rank's GPU through NVML, NaN when NVML or a GPU
is absent, and ``net_sent_bytes`` / ``net_recv_bytes``: host-wide network bytes since the
sampler started (several ranks on one host see the same counters). No TensorFlow here.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
import time
from pathlib import Path

import psutil

from segscale.fileio import atomic_path
from segscale.study import RESOURCE_COLUMNS

log = logging.getLogger(__name__)

COLUMNS = RESOURCE_COLUMNS


def physical_gpu_index(local_rank: int) -> int:
    """NVML index of the GPU this rank uses: ``CUDA_VISIBLE_DEVICES[local_rank]`` when that
    lists integers (Slurm's binding), else ``local_rank``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if ids and all(v.isdigit() for v in ids):
        return int(ids[local_rank % len(ids)])
    return local_rank


class _Nvml:
    """NVML handle for one GPU; every reading is NaN when NVML is unavailable."""

    def __init__(self, index: int | None) -> None:
        self.handle = None
        if index is None:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            if index < pynvml.nvmlDeviceGetCount():
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                self._nvml = pynvml
        except Exception as err:  # no library, no driver, no device: sample without GPU
            log.debug("NVML unavailable: %s", err)

    def read(self) -> tuple[float, float]:
        if self.handle is None:
            return math.nan, math.nan
        try:
            util = self._nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
            mem = self._nvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20
            return float(util), float(mem)
        except Exception:
            return math.nan, math.nan


class ResourceSampler:
    """Samples in a daemon thread between :meth:`start` and :meth:`stop`."""

    def __init__(self, interval_s: float = 5.0, gpu_index: int | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.rows: list[dict[str, float]] = []
        self._gpu = _Nvml(gpu_index)
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._net0 = (0, 0)

    def _net(self) -> tuple[int, int]:
        try:
            c = psutil.net_io_counters()
            return c.bytes_sent, c.bytes_recv
        except Exception:
            return 0, 0

    def sample(self) -> dict[str, float]:
        """Take one reading now and append it to :attr:`rows`."""
        sent, recv = self._net()
        util, mem = self._gpu.read()
        row = {
            "time_s": round(time.monotonic() - self._t0, 3),
            "cpu_percent": self._proc.cpu_percent(None),
            "rss_mb": self._proc.memory_info().rss / 2**20,
            "gpu_util": util,
            "gpu_mem_mb": mem,
            "net_sent_bytes": sent - self._net0[0],
            "net_recv_bytes": recv - self._net0[1],
        }
        self.rows.append(row)
        return row

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> ResourceSampler:
        self._t0 = time.monotonic()
        self._net0 = self._net()
        self._proc.cpu_percent(None)  # prime: the first call always returns 0
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, float]]:
        """Stop the thread, take a last reading and return all rows."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=self.interval_s + 5)
            self._thread = None
            self.sample()
        return self.rows

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def write_rows(path: str | os.PathLike, rows: list[dict[str, float]]) -> None:
    """Write sampler rows as CSV with :data:`COLUMNS`, atomically."""
    with atomic_path(Path(path)) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, math.nan) for k in COLUMNS})
