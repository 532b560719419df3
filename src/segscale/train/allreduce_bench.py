"""Horovod allreduce microbenchmark: time allreduces of given message sizes on N ranks.

Runs inside the training environment and is launched exactly like a training run::

    python -m segscale.train.env [LAUNCHER -n N] python -m segscale.train.allreduce_bench \\
        --sizes 4096 65536 1048576 --repeats 10 --out results/scaling/allreduce/gpus2.csv

Every rank pins its GPU as training does (local rank; CPU when there is none), allreduces a
float32 tensor of each size ``warmup`` times untimed, then ``repeats`` times timed, each
repeat started together (a one-element allreduce as barrier) and ended when the result is
usable (one element read back). A repeat's time is the slowest rank's: the step waits for
it. Rank 0 writes one CSV row per size: ``ranks``, ``hosts``, ``bytes``, ``repeats``,
``time_median_s``, ``time_min_s``, ``time_mean_s``, ``algbw_bytes_per_s`` (bytes / median
time), ``busbw_bytes_per_s`` (x 2(N-1)/N, the ring's per-link traffic), ``device``, and
what produced it (``horovod``, ``tensorflow``, ``controller``, ``fusion_threshold``,
``segscale``, ``git_revision``, ``created``). ``segscale.scaling.calibrate`` fits alpha and
beta to these rows.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import os
import socket
import statistics
import sys
import time
from pathlib import Path

from segscale import cli
from segscale.fileio import atomic_path

log = logging.getLogger("segscale.train.allreduce_bench")

DEFAULT_SIZES = (4096, 65536, 1 << 20, 1 << 22, 1 << 24)
COLUMNS = ("ranks", "hosts", "bytes", "repeats", "time_median_s", "time_min_s", "time_mean_s",
           "algbw_bytes_per_s", "busbw_bytes_per_s", "device", "horovod", "tensorflow",
           "controller", "fusion_threshold", "segscale", "git_revision", "created")


def summarise(nbytes: int, times: list[float], ranks: int) -> dict:
    """One CSV row's measurements from the per-repeat (slowest-rank) times."""
    median = statistics.median(times)
    algbw = nbytes / median if median > 0 else float("nan")
    return {"bytes": int(nbytes), "repeats": len(times), "time_median_s": median,
            "time_min_s": min(times), "time_mean_s": statistics.fmean(times),
            "algbw_bytes_per_s": algbw,
            "busbw_bytes_per_s": algbw * 2 * (ranks - 1) / ranks if ranks > 1 else 0.0}


def write_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def bench(sizes: list[int], repeats: int, warmup: int) -> tuple[list[dict], int]:
    """Time the allreduces on every rank; the rows (rank 0's are complete) and the rank."""
    import horovod
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from segscale.provenance import git_revision

    hvd.init()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        tf.config.set_visible_devices(gpus[hvd.local_rank() % len(gpus)], "GPU")
    device = f"GPU {hvd.local_rank() % len(gpus)}" if gpus else "CPU"
    n = hvd.size()
    hosts = sorted(set(hvd.allgather_object(socket.gethostname())))
    controller = "mpi" if hvd.mpi_enabled() and hvd.mpi_built() and not hvd.gloo_enabled() \
        else "gloo"
    barrier = tf.zeros([1])
    rows = []
    for nbytes in sizes:
        x = tf.ones([max(1, int(nbytes) // 4)], tf.float32)
        name = f"bench_{nbytes}"
        for _ in range(warmup):
            hvd.allreduce(x, op=hvd.Sum, name=name)[:1].numpy()
        times = []
        for _ in range(repeats):
            hvd.allreduce(barrier, op=hvd.Sum, name="bench_barrier").numpy()
            t0 = time.perf_counter()
            hvd.allreduce(x, op=hvd.Sum, name=name)[:1].numpy()
            times.append(time.perf_counter() - t0)
        every = hvd.allgather(tf.constant([times], tf.float64)).numpy()  # (ranks, repeats)
        slowest = [float(t) for t in every.max(axis=0)]
        row = summarise(int(x.shape[0]) * 4, slowest, n)
        row.update(ranks=n, hosts=len(hosts), device=device, horovod=horovod.__version__,
                   tensorflow=tf.__version__, controller=controller,
                   fusion_threshold=os.environ.get("HOROVOD_FUSION_THRESHOLD", "default"),
                   segscale=_version(), git_revision=git_revision(Path(__file__).parent) or "",
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        rows.append(row)
        if hvd.rank() == 0:
            log.info("%d ranks, %d bytes: median %.3g s", n, row["bytes"], row["time_median_s"])
    return rows, hvd.rank()


def _version() -> str:
    from segscale import __version__
    return __version__


def build_parser():
    p = cli.parser("segscale.train.allreduce_bench", __doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                   help="message sizes in bytes (rounded down to whole float32 elements)")
    p.add_argument("--repeats", type=int, default=10, help="timed allreduces per size")
    p.add_argument("--warmup", type=int, default=2, help="untimed allreduces per size")
    p.add_argument("--out", required=True, help="CSV written by rank 0")
    p.add_argument("--expect-ranks", type=int, default=None,
                   help="fail unless the launcher started this many ranks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.repeats < 1 or args.warmup < 0 or any(s < 4 for s in args.sizes):
        sys.stderr.write("segscale.train.allreduce_bench: need repeats >= 1, warmup >= 0 and "
                         "sizes >= 4 bytes\n")
        return cli.EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows, rank = bench(sorted(set(args.sizes)), args.repeats, args.warmup)
    if args.expect_ranks and rows and rows[0]["ranks"] != args.expect_ranks:
        sys.stderr.write(f"segscale.train.allreduce_bench: {rows[0]['ranks']} ranks started, "
                         f"{args.expect_ranks} expected (launcher?)\n")
        return 1
    if rank == 0:
        write_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
