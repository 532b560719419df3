"""(b) Weak scaling on CPU: 2 ranks x 1 thread vs 1 rank x 1 thread, same batch per rank.

For each model width (U-Net depth 4; ``--widths``, the thesis's 64 base filters last) prints
the steady-state global images/s of 1 and of N ranks and the weak-scaling efficiency
``E = ips(N) / (N x ips(1))`` (1.0 = perfect): the curve against model size shows the fixed
per-step cost (allreduce latency, Horovod's cycle) that small models cannot hide. The last
line is ``weak_scaling_2x1: <E at the largest width>`` (goal >= 0.9).

Horovod runs with a short cycle time (``HOROVOD_CYCLE_TIME``, ms, default here 1) and tensor
fusion on (the default 64 MiB threshold); ``OMPI_MCA_mpi_yield_when_idle=1`` is set for MPI
builds so a waiting rank yields its core. On a machine with fewer free cores than ranks this
measures contention, not Horovod: run it on an idle node.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench_train_common import (
    breakdown_text,
    hparams,
    parser,
    record,
    run_toolkit,
    steady,
    stores,
    workdir,
)


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64],
                   help="base filters, one point of the curve each (last = headline)")
    p.add_argument("--cycle-time-ms", type=float, default=1.0)
    p.set_defaults(depth=4, size=32, slices=32, batch=4, epochs=3)
    args = p.parse_args()
    os.environ.setdefault("HOROVOD_CYCLE_TIME", str(args.cycle_time_ms))
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    curve = []
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        for width in args.widths:
            args.filters = width
            hist_one = run_toolkit(st, Path(tmp) / f"r1w{width}", hparams(args), ranks=1)
            hist_many = run_toolkit(st, Path(tmp) / f"rnw{width}", hparams(args),
                                    ranks=args.ranks)
            one, many = steady(hist_one, "images_per_s"), steady(hist_many, "images_per_s")
            eff = many / (args.ranks * one)
            curve.append({"base_filters": width, "images_per_s_1": one,
                          f"images_per_s_{args.ranks}": many, "efficiency": eff,
                          "breakdown_1": breakdown_text(hist_one),
                          f"breakdown_{args.ranks}": breakdown_text(hist_many)})
            print(f"  width {width:3d} base filters: 1 rank {one:7.1f} img/s, {args.ranks} ranks "
                  f"{many:7.1f} img/s, efficiency {eff:.2f}\n"
                  f"    where a step's time goes (history.csv), 1 rank: {breakdown_text(hist_one)}"
                  f"\n    {args.ranks} ranks: {breakdown_text(hist_many)}", flush=True)
    record("train_scaling", {"ranks": args.ranks, "curve": curve, "config": vars(args)})
    print(f"(b) weak scaling {args.ranks}x1 vs 1x1, U-Net depth {args.depth}, "
          f"{args.size}x{args.size}, batch {args.batch}/rank; efficiency vs width: "
          + ", ".join(f"{c['base_filters']}: {c['efficiency']:.2f}" for c in curve))
    print(f"weak_scaling_{args.ranks}x1: {curve[-1]['efficiency']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
