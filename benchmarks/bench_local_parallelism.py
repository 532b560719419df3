"""(e) Local parallelism: every split of this machine's cores into Horovod ranks x TensorFlow
threads per rank (ranks x threads = cores), for the same work (after Lerat et al. 2022).

The cores are ``os.sched_getaffinity(0)`` (``--cores`` overrides); every divisor pair is one
split (``--max-ranks`` caps the rank count): on 2 cores 1 rank x 2 threads and 2 ranks x 1
thread. Each split trains the same U-Net through ``segscale.train`` on the same generated
store with the same *global* batch (``--global-batch``, divided over the ranks) and the same
number of global steps per epoch (``--steps``), so every split trains on exactly the same
number of images (checked from each run's ``run.json``). Threads per rank go through
``hparams.threads_per_rank`` (TensorFlow intra- and inter-op threads); ranks through
``horovodrun --gloo`` (as :func:`bench_train_common.run_toolkit` launches them). ``tf.data``'s
own threads and Horovod's background thread are outside that knob: each rank has its own.
Options: ``--cores``, ``--max-ranks``, ``--global-batch``, ``--steps``, ``--repeats`` and the
common ``--size``/``--depth``/``--filters``/``--epochs`` (``--batch``/``--threads`` are set
per split).

The splits run one after the other, ``--repeats`` times, every other repeat in reverse
order (so a drift in the machine's load hits both ends alike); a split's images/s is the
median over its runs of the steady-state epochs (the first epoch, graph tracing, is left
out). Prints a table (split, batch per rank, images/s, training seconds per epoch and the
toolkit's split of them into compute and allreduce (``history.csv``, mean over ranks), whole
epoch seconds with validation, whole-run wall seconds with start-up, speedup vs 1 rank x all
threads) and as the last line ``local_parallelism: <best split's images/s / 1 rank x all
threads' images/s>`` (>= 1 by construction, the reference being one of the splits, so no
goal; above 1: more ranks with fewer threads each are faster here).

Horovod runs with ``HOROVOD_CYCLE_TIME`` 1 ms (as ``bench_train_scaling.py``), and multi-rank
runs with ``OMPI_MCA_mpi_yield_when_idle=1`` (for MPI builds: a waiting rank yields its core,
since the ranks fill every core). On a machine shared with other work this measures
contention as much as the split: run it on an idle node.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench_train_common import hparams, parser, record, run_toolkit, steady, stores, workdir

from segscale.report import parallelism


def splits(cores: int, max_ranks: int | None) -> list[tuple[int, int]]:
    """(ranks, threads) with ranks x threads = cores, fewest ranks first: the parallelism
    target's splits (segscale.report.parallelism), ranks capped at ``max_ranks``."""
    return parallelism.splits(cores, list(range(1, max_ranks + 1)) if max_ranks else None)


def one_run(st, out: Path, args, ranks: int, threads: int) -> dict:
    args.batch, args.threads = args.global_batch // ranks, threads
    env_before = os.environ.get("OMPI_MCA_mpi_yield_when_idle")
    if ranks > 1:  # the ranks fill every core: a waiting MPI rank must yield
        os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    t0 = time.perf_counter()
    try:
        hist = run_toolkit(st, out, hparams(args), ranks=ranks)
    finally:
        if env_before is None:
            os.environ.pop("OMPI_MCA_mpi_yield_when_idle", None)
    wall = time.perf_counter() - t0
    run = json.loads((out / "run.json").read_text())
    got = (run["n_ranks"], run["hparams"]["threads_per_rank"])
    if got != (ranks, threads):
        raise RuntimeError(f"asked for {ranks} ranks x {threads} threads, the run recorded "
                           f"{got[0]} x {got[1]}")
    return {"images_per_s": steady(hist, "images_per_s"),
            "epoch_time_s": steady(hist, "epoch_time_s"), "wall_s": wall,
            "compute_s": steady(hist, "compute_s"), "allreduce_s": steady(hist, "allreduce_s"),
            "images_per_epoch": run["images_per_epoch"], "global_batch": run["global_batch"],
            "images_seen": run["images_seen"], "device": run.get("device")}


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)),
                   help="cores to split (default: this process's CPU affinity)")
    p.add_argument("--max-ranks", type=int, default=None, help="leave out splits with more")
    p.add_argument("--global-batch", type=int, default=None,
                   help="images per global step (default: smallest multiple of every rank "
                        "count >= 8)")
    p.add_argument("--steps", type=int, default=4, help="global steps per epoch")
    p.add_argument("--repeats", type=int, default=2, help="runs of each split")
    p.set_defaults(depth=4, filters=64, size=32, epochs=4)
    args = p.parse_args()
    todo = splits(args.cores, args.max_ranks)
    if args.global_batch is None:
        args.global_batch = parallelism.global_batch([r for r, _ in todo], 8)
    bad = [r for r, _ in todo if args.global_batch % r]
    if bad:
        p.error(f"--global-batch {args.global_batch} is not divisible by {bad} ranks")
    args.slices = args.global_batch * args.steps  # one epoch = the whole store, every split
    os.environ.setdefault("HOROVOD_CYCLE_TIME", "1")
    print(f"{args.cores} cores, splits {', '.join(f'{r}x{t}' for r, t in todo)}; U-Net depth "
          f"{args.depth} x {args.filters} filters, {args.size}x{args.size}, global batch "
          f"{args.global_batch}, {args.steps} steps x {args.epochs} epochs, {args.repeats} "
          "repeats", flush=True)
    runs: dict[tuple[int, int], list[dict]] = {s: [] for s in todo}
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        for rep in range(args.repeats):
            for ranks, threads in (todo if rep % 2 == 0 else todo[::-1]):
                res = one_run(st, Path(tmp) / f"r{rep}_{ranks}x{threads}", args, ranks, threads)
                runs[(ranks, threads)].append(res)
                print(f"  repeat {rep} {ranks} rank(s) x {threads} thread(s): "
                      f"{res['images_per_s']:7.1f} img/s, {res['images_per_epoch']} images/"
                      f"epoch, run {res['wall_s']:.1f} s", flush=True)
    work = {(r["images_per_epoch"], r["global_batch"], r["images_seen"])
            for rs in runs.values() for r in rs}
    if len(work) != 1:
        raise RuntimeError(f"splits did unequal work (images/epoch, global batch, images "
                           f"seen): {sorted(work)}")
    images_per_epoch = work.pop()[0]
    ref = todo[0]
    rows = []
    for ranks, threads in todo:
        rs = runs[(ranks, threads)]
        ips = statistics.median(r["images_per_s"] for r in rs)
        rows.append({"ranks": ranks, "threads": threads, "images_per_s": ips,
                     "train_s_per_epoch": images_per_epoch / ips,
                     "epoch_time_s": statistics.median(r["epoch_time_s"] for r in rs),
                     "compute_s": statistics.median(r["compute_s"] for r in rs),
                     "allreduce_s": statistics.median(r["allreduce_s"] for r in rs),
                     "wall_s": statistics.median(r["wall_s"] for r in rs),
                     "runs_images_per_s": [r["images_per_s"] for r in rs]})
    ref_ips = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / ref_ips
    best = max(rows, key=lambda row: row["images_per_s"])
    print()
    print("| split (ranks x threads) | batch/rank | images/s | train s/epoch | compute s | "
          f"allreduce s | epoch s | run wall s | speedup vs {ref[0]}x{ref[1]} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['ranks']} x {row['threads']} | {args.global_batch // row['ranks']} | "
              f"{row['images_per_s']:.1f} | "
              f"{row['train_s_per_epoch']:.2f} | {row['compute_s']:.2f} | "
              f"{row['allreduce_s']:.2f} | {row['epoch_time_s']:.2f} | "
              f"{row['wall_s']:.1f} | {row['speedup']:.2f} |")
    print()
    record("local_parallelism", {"cores": args.cores, "images_per_epoch": images_per_epoch,
                                 "splits": rows, "config": vars(args)})
    print(f"(e) local parallelism on {args.cores} cores, {images_per_epoch} images/epoch in "
          f"every split: best {best['ranks']} rank(s) x {best['threads']} thread(s), "
          f"{best['speedup']:.2f}x the {ref[0]} x {ref[1]} split")
    print(f"local_parallelism: {best['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
