"""Where the training environment (TensorFlow + Horovod) lives, for the workflow's jobs.

The workflow runs in one environment and trains in another (snakemake wants numpy 2,
TensorFlow 2.15 numpy < 2). The train and predict rules ask, at run time::

    export PATH="$(python -m segscale.train.env)$PATH"

and get ``$SEGSCALE_TRAIN_ENV/bin:`` when that is set, else the ``.venv-train/bin:`` that
``scripts/setup.sh`` made beside this source checkout, else nothing (with ``--use-conda``
the job's own environment is the training one). Deciding in the job, not in a rule
param, keeps the checkout's path out of Snakemake's rerun triggers.
"""

from __future__ import annotations

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


def build_parser():
    return cli.parser("segscale.train.env", "Print the training environment's bin/ and a path "
                      "separator, to prepend to PATH (nothing when there is none).")


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    try:
        found = train_bin()
    except FileNotFoundError as err:
        sys.stderr.write(f"segscale.train.env: {err}\n")
        return 1
    sys.stdout.write(f"{found}{os.pathsep}" if found else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
