"""Start the ranks of a run on this host without MPI: ``python -m segscale.train.spawn -n N
COMMAND...`` (the local launcher of the ``tf-collective`` and ``tf-ps`` strategies;
horovodrun is Horovod's).

Each rank is ``COMMAND`` with ``SEGSCALE_RANK``, ``SEGSCALE_SIZE`` and a ``SEGSCALE_LAUNCH_ID``
shared by the ranks of this launch (segscale.train.strategies.rendezvous reads them). The
preemption and walltime signals (TERM, INT, USR1, URG) are passed to every rank, which stop
together at their next synchronisation point. A rank that fails (any exit but 0 and 75, or a
signal) leaves the others waiting in a collective forever, so they are killed, as srun's
``--kill-on-bad-exit`` does. Exit status: 0 when every rank finished, 75 when they stopped
to be resumed, else the first failure's (128 + signal for a killed rank).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid

from segscale import cli

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGURG)
EXIT_PREEMPTED = 75


def status_of(returncode: int) -> int:
    """A child's exit status as a shell reports it (128 + signal when killed)."""
    return 128 - returncode if returncode < 0 else returncode


def launch_status(codes: list[int], first_failure: int | None) -> int:
    """The launch's exit status from every rank's (``first_failure``: the first rank that
    failed, by the time it did)."""
    if first_failure is not None:
        return first_failure
    if any(code == EXIT_PREEMPTED for code in codes):
        return EXIT_PREEMPTED
    return max(codes, default=0)


def rank_environment(environ: dict[str, str], rank: int, size: int,
                     launch: str) -> dict[str, str]:
    return {**environ, "SEGSCALE_RANK": str(rank), "SEGSCALE_SIZE": str(size),
            "SEGSCALE_LAUNCH_ID": launch}


def spawn(command: list[str], ranks: int, poll_s: float = 0.1) -> int:
    launch = f"spawn-{uuid.uuid4().hex[:12]}"
    children = [subprocess.Popen(command, env=rank_environment(dict(os.environ), k, ranks,
                                                               launch))
                for k in range(ranks)]

    def pass_on(signum, _frame) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in PASSED_ON:
        signal.signal(sig, pass_on)
    first_failure: int | None = None
    while any(child.poll() is None for child in children):
        for k, child in enumerate(children):
            code = child.poll()
            if code is None or first_failure is not None:
                continue
            if status_of(code) not in (0, EXIT_PREEMPTED):
                first_failure = status_of(code)
                sys.stderr.write(f"segscale.train.spawn: rank {k} failed (exit "
                                 f"{first_failure}): stopping the other ranks\n")
                for other in children:
                    if other.poll() is None:
                        other.kill()
        time.sleep(poll_s)
    return launch_status([status_of(child.returncode) for child in children], first_failure)


def build_parser():
    p = cli.parser("segscale.train.spawn", __doc__)
    p.add_argument("-n", "--ranks", type=int, required=True, help="number of ranks")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the rank's command")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ranks < 1:
        sys.stderr.write(f"segscale.train.spawn: -n must be at least 1, got {args.ranks}\n")
        return 2
    return cli.run_command("segscale.train.spawn", args.command,
                           lambda command: spawn(command, args.ranks))


if __name__ == "__main__":
    sys.exit(main())
