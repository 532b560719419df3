"""(b) Weak scaling on CPU: 2 ranks x 1 thread vs 1 rank x 1 thread, same batch per rank.

Prints the steady-state global images/s of each and the weak-scaling efficiency
``E = ips(2) / (2 x ips(1))`` (1.0 = perfect). On a machine with fewer free cores than
ranks this measures contention, not Horovod; run it on an idle node.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench_train_common import hparams, parser, record, run_toolkit, steady, stores, workdir


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--ranks", type=int, default=2)
    args = p.parse_args()
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        one = steady(run_toolkit(st, Path(tmp) / "r1", hparams(args), ranks=1), "images_per_s")
        many = steady(run_toolkit(st, Path(tmp) / "rn", hparams(args), ranks=args.ranks),
                      "images_per_s")
    eff = many / (args.ranks * one)
    record("train_scaling", {"ranks": args.ranks, "images_per_s_1": one,
                             f"images_per_s_{args.ranks}": many, "speedup": many / one,
                             "weak_scaling_efficiency": eff, "config": vars(args)})
    print(f"(b) images/s: 1 rank {one:.1f}, {args.ranks} ranks {many:.1f}; speedup "
          f"{many / one:.2f}, weak-scaling efficiency {eff:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
