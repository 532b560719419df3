"""Where the training environment (TensorFlow + Horovod) lives, for the workflow's jobs.

The workflow runs in one environment and trains in another (snakemake wants numpy 2,
TensorFlow 2.15 numpy < 2). The train and predict rules run their command through::

    python -m segscale.train.env [LAUNCHER ...] python -m segscale.train ...

which puts the training environment's ``bin/`` first on ``PATH`` and executes the command
there (so ``horovodrun``, ``python`` resolve to it): ``$SEGSCALE_TRAIN_ENV/bin`` when that is
set, else the ``.venv-train/bin`` that ``scripts/setup.sh`` made beside this source checkout,
else the ``PATH`` as it is (with ``--use-conda`` the job's own environment is the training
one). Deciding in the job, not in a rule param, keeps the checkout's path out of Snakemake's
rerun triggers. Without a command it prints that ``bin/`` (for humans).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from segscale import cli

CHECKOUT = Path(__file__).resolve().parents[3]  # src/segscale/train/ -> the repository


def train_bin(environ: dict | None = None, checkout: Path = CHECKOUT) -> Path | None:
    """The training environment's ``bin/``, or None when there is none to switch to.

    ``$SEGSCALE_TRAIN_ENV`` wins; a named environment without ``bin/python`` is an error
    rather than a silent fallback to the wrong interpreter.

    Raises:
        FileNotFoundError: ``SEGSCALE_TRAIN_ENV`` names a folder without ``bin/python``.
    """
    environ = os.environ if environ is None else environ
    named = environ.get("SEGSCALE_TRAIN_ENV")
    if named:
        bin_dir = Path(named) / "bin"
        if not (bin_dir / "python").exists():
            raise FileNotFoundError(f"SEGSCALE_TRAIN_ENV={named}: no bin/python there")
        return bin_dir
    local = checkout / ".venv-train" / "bin"
    return local if (local / "python").exists() else None


def environment_with(bin_dir: Path | None, environ: dict | None = None) -> dict[str, str]:
    """A copy of the environment with ``bin_dir`` first on ``PATH``."""
    env = dict(os.environ if environ is None else environ)
    if bin_dir is not None:
        env["PATH"] = os.pathsep.join(filter(None, (str(bin_dir), env.get("PATH", ""))))
    return env


def build_parser():
    p = cli.parser("segscale.train.env", __doc__)
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="command to execute in the training environment")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        found = train_bin()
    except FileNotFoundError as err:
        sys.stderr.write(f"segscale.train.env: {err}\n")
        return 1
    if not args.command:
        sys.stdout.write(f"{found or ''}\n")
        return 0
    try:
        os.execvpe(args.command[0], args.command, environment_with(found))
    except OSError as err:
        sys.stderr.write(f"segscale.train.env: cannot run {args.command[0]!r}: {err}\n")
        return 127
    return 1  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
