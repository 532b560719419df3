"""Run a Snakemake jobscript as an OAR job's command:
``python -m segscale.oar.job [--idempotent] -- COMMAND...`` (segscale.oar.submit adds it).

Why a wrapper: OAR's walltime warning (``oarsub --checkpoint S --signal SIG``) is one signal
sent to one process, the job's command (oarexec's ``user_cmd_pid``). That process is the
jobscript's shell, which SIGUSR2 would kill while its Snakemake and the ranks run on. This
wrapper is that process instead:

- on the warning (``--warning-signal``, SIGUSR2 by default, as submit asks OAR for) it sends
  SIGURG to every process it started, as Slurm's ``--signal=URG@margin`` does: SIGURG is
  ignored by default, so the shells, Snakemake and mpirun live on; the ranks catch it
  (segscale.train.launch), checkpoint and exit 75. mpirun passes it on to the ranks on the
  other hosts (segscale.oar.launch adds ``-mca ess_base_forward_signals SIGURG``);
- SIGTERM and SIGINT (``oardel``, the end of the walltime) are passed to the jobscript;
- it exits with the jobscript's status, except that with ``--idempotent`` (the job was
  submitted with ``-t idempotent``) a job that failed after the warning exits 99: OAR
  resubmits such a job when it ran for more than 60 s, and segscale.oar.status follows the
  new id, so the run comes back from its checkpoint without a Snakemake retry.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from segscale import cli

WARNING_SIGNAL = signal.SIGUSR2  # OAR's default checkpoint signal
RANK_SIGNAL = signal.SIGURG      # what the ranks catch (segscale.train.launch.SignalFlag)
PASSED_ON = (signal.SIGTERM, signal.SIGINT)
RESUBMIT_EXIT = 99  # OAR resubmits an idempotent job that exits 99 after > 60 s


def exit_code(returncode: int) -> int:
    """The wrapper's exit status for a child's ``returncode`` (negative: killed by a signal,
    reported as the shell does, 128 + signal)."""
    return 128 - returncode if returncode < 0 else returncode


def final_status(returncode: int, warned: bool, idempotent: bool) -> int:
    """The job's exit status: the jobscript's, or 99 for an idempotent job that failed
    after the walltime warning (OAR then resubmits it)."""
    code = exit_code(returncode)
    if idempotent and warned and code != 0:
        return RESUBMIT_EXIT
    return code


def parent_pids(proc: Path = Path("/proc")) -> dict[int, int]:
    """pid -> parent pid of every process, from ``/proc/<pid>/stat`` (field 4, after the
    parenthesised command name, which may itself hold spaces and parentheses)."""
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int, parents: dict[int, int]) -> list[int]:
    """Every process below ``pid`` in the ``parents`` map, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = sorted(children.get(pid, []))
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo += sorted(children.get(current, []))
    return found


class Wrapper:
    """The jobscript as a child process and the signal handlers that look after it."""

    def __init__(self, command: list[str], warning: signal.Signals, idempotent: bool) -> None:
        self.command = command
        self.warning = warning
        self.idempotent = idempotent
        self.warned = False
        self.child: subprocess.Popen | None = None

    def _warn(self, signum, _frame) -> None:
        self.warned = True
        if self.child is None:
            return
        targets = [self.child.pid, *descendants(self.child.pid, parent_pids())]
        for pid in targets:
            try:
                os.kill(pid, RANK_SIGNAL)
            except (ProcessLookupError, PermissionError):  # exited meanwhile
                pass
        sys.stderr.write(f"segscale.oar.job: walltime warning (signal {signum}): SIGURG sent "
                         f"to {len(targets)} process(es)\n")
        sys.stderr.flush()

    def _pass_on(self, signum, _frame) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        signal.signal(self.warning, self._warn)
        for sig in PASSED_ON:
            signal.signal(sig, self._pass_on)
        self.child = subprocess.Popen(self.command)
        return final_status(self.child.wait(), self.warned, self.idempotent)


def signal_number(text: str) -> signal.Signals:
    """A signal from its name (``USR2``, ``SIGUSR2``) or number (``12``)."""
    name = text.strip().upper()
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"not a signal: {text!r}") from None


def build_parser():
    p = cli.parser("segscale.oar.job", __doc__)
    p.add_argument("--warning-signal", type=signal_number, default=WARNING_SIGNAL,
                   help="the signal OAR sends before the walltime (oarsub --signal; default "
                        "SIGUSR2)")
    p.add_argument("--idempotent", action="store_true",
                   help="the job is of type idempotent: exit 99 when it fails after the warning")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the jobscript and its arguments")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_command(
        "segscale.oar.job", args.command,
        lambda command: Wrapper(command, args.warning_signal, args.idempotent).run())


if __name__ == "__main__":
    sys.exit(main())
