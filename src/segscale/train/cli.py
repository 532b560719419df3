"""Train one run: ``python -m segscale.train`` (one process per rank).

Exit codes: 0 when training finished (``ok``) or was stopped as ``diverged`` (the sweep
goes on; ``run.json`` says which); 75 (EX_TEMPFAIL) when a SIGTERM/SIGUSR1 stopped it after
writing a checkpoint (rerun to resume); 2 on bad arguments; 1 on any other failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from segscale import cli
from segscale.study import DEFAULT_STRATEGY, POLICIES, PS_STRATEGY, STRATEGIES, TUNED_POLICY
from segscale.train.config import RunSpec, parse_hparams
from segscale.train.launch import SignalFlag, is_rank_zero, launcher_size, setup_logging
from segscale.train.run import EXIT_FAILED, EXIT_USAGE, record_failure, run

log = logging.getLogger("segscale.train")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.train", __doc__)
    p.add_argument("--train-store", required=True, type=Path, help="training slice store")
    p.add_argument("--val-store", required=True, type=Path, help="validation slice store")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--dataset", required=True, help="dataset name (recorded)")
    p.add_argument("--arch", required=True,
                   help="unet | fcn | a label for hparams.builder | module:function")
    p.add_argument("--policy", required=True, help=" | ".join(POLICIES))
    p.add_argument("--seed", required=True, type=int, help="seed (weights, shuffling)")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY,
                   help=f"how the ranks train together: {' | '.join(STRATEGIES)} "
                        f"(default {DEFAULT_STRATEGY})")
    p.add_argument("--repeat", type=int, default=None, help="repeat index (default: seed)")
    p.add_argument("--hparams", default="{}",
                   help="JSON object of hyper-parameters (docs/training.md), or @file.json")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(logging, str(args.log_level).upper(), logging.INFO))
    try:
        cfg = parse_hparams(args.hparams)
        spec = RunSpec(args.train_store, args.val_store, args.out, args.dataset, args.arch,
                       args.policy, args.seed, args.repeat, args.strategy)
        if spec.policy == TUNED_POLICY:
            cfg.grescale_stages()  # refused before TensorFlow starts, naming the keys
        cfg.check_strategy(spec.strategy)
        if spec.strategy == PS_STRATEGY:  # refused before TensorFlow starts, on every process
            from segscale.train.strategies.ps import check_processes

            check_processes(launcher_size(), cfg.ps_tasks)
    except (ValueError, OSError) as err:
        log.error("%s", err)
        return EXIT_USAGE
    signals = SignalFlag().install()  # before TensorFlow: a preemption during start-up is seen
    if cfg.threads_per_rank:
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(var, str(cfg.threads_per_rank))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    try:
        code = run(spec, cfg, signals)
    except Exception as err:
        log.exception("training failed")
        if is_rank_zero():
            record_failure(spec, cfg, launcher_size(), err)
        return EXIT_FAILED
    log.info("done in %.1f s (exit %d)", time.perf_counter() - t0, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
