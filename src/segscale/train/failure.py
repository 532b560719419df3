"""Settle a training job whose launch failed: fail it for a retry, or record it as a row.

The train rule runs ``<launch> python -m segscale.train ... || python -m
segscale.train.failure ... --exit-code $?``. What a retry can fix fails the job with the
launch's exit code, so Snakemake's ``retries`` (or the scheduler's requeue) bring it back and
it resumes from its last verified checkpoint: a preemption or time-limit signal (exit 75), a
rank killed by a signal (exit > 128: a node lost, the out-of-memory killer), a broken
collective (Horovod's error on the surviving ranks). Anything else is the run's own failure
(an exception in training): a retry would fail the same way, so the job writes ``run.json``
with ``status: failed`` and the cause (rank 0's recorded error when it got that far) and a
``history.csv`` of the finished epochs, and exits 0. The run is then a ``failed`` row of the
tables and figures instead of a missing input that stops aggregation for the whole sweep.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from segscale import cli
from segscale.fileio import read_json
from segscale.logs import configure
from segscale.study import DEFAULT_STRATEGY, FAILED, HISTORY_FILE, RUN_RECORD, STRATEGIES
from segscale.train.config import RunSpec, parse_hparams

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75


def failure_reason(exit_code: int, recorded: dict | None) -> str:
    """Why the run failed: rank 0's recorded error when there is one, else the exit code."""
    if recorded and recorded.get("status") == FAILED and recorded.get("error"):
        return str(recorded["error"])
    return f"the training launch exited with code {exit_code}; see the job's train.log"


#: Words of an error that a lost peer, not the run itself, caused.
COLLECTIVE_ERRORS = ("HorovodInternalError", "Horovod has been shut down", "Gloo", "MPI_ERR")


def retryable(exit_code: int, recorded: dict | None) -> bool:
    """Whether a retry can succeed where this launch failed (see the module docstring)."""
    if exit_code == EXIT_PREEMPTED or exit_code > 128:
        return True
    error = str((recorded or {}).get("error") or "")
    return any(word in error for word in COLLECTIVE_ERRORS)


def read_record(path: Path) -> dict | None:
    """What rank 0 recorded before failing, if anything readable."""
    try:
        found = read_json(path) if path.is_file() else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def settle(spec: RunSpec, hparams: str, ranks: int, exit_code: int) -> int:
    """The job's exit code: the launch's when a retry can help, else 0 after recording."""
    if exit_code == 0:
        return 0
    record_path = spec.out / RUN_RECORD
    recorded = read_record(record_path)
    if retryable(exit_code, recorded):
        log.warning("training exited with code %d: failing the job so that it is retried "
                    "(it resumes from its last checkpoint)", exit_code)
        return exit_code
    from segscale.provenance import describe_environment
    from segscale.train.record import base_record, write_history, write_record

    record = base_record(spec, parse_hparams(hparams), FAILED, ranks, describe_environment())
    record.error = failure_reason(exit_code, recorded)
    history = spec.out / HISTORY_FILE
    if not history.is_file():
        write_history(history, [])
    write_record(record_path, record)
    log.error("run recorded as failed: %s", record.error)
    return 0


def build_parser():
    p = cli.parser("segscale.train.failure", __doc__)
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--dataset", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--strategy", default=DEFAULT_STRATEGY, help=" | ".join(STRATEGIES))
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--hparams", default="{}", help="the run's hyper-parameters (JSON)")
    p.add_argument("--ranks", required=True, type=int, help="ranks the run was launched with")
    p.add_argument("--exit-code", required=True, type=int, help="the launch's exit status")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()
    try:
        spec = RunSpec(args.out, args.out, args.out, args.dataset, args.arch, args.policy,
                       args.seed, strategy=args.strategy)
        return settle(spec, args.hparams, args.ranks, args.exit_code)
    except (ValueError, OSError) as err:
        log.error("cannot record the failure: %s", err)
        return args.exit_code or 1


if __name__ == "__main__":
    sys.exit(main())
