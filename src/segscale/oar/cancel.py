"""Cancel OAR jobs: ``python -m segscale.oar.cancel JOB_ID...`` runs ``oardel`` on them.

The cluster-generic executor calls its cancel command without a shell, so the profile names
an executable file (profiles/oar/oar-cancel) that runs this module. oardel registers the
deletion of running, waiting and already finished jobs alike (exit 0); an id it does not
know ("Cannot frag N ; You are not the right user.") makes it exit 1, as this command does.
"""

from __future__ import annotations

import subprocess
import sys

from segscale import cli


def valid_ids(ids: list[str]) -> list[str]:
    """The ids as oardel takes them: positive integers only.

    Raises:
        ValueError: an id is not a positive integer.
    """
    out = []
    for raw in ids:
        text = raw.strip()
        if not text.isdigit() or int(text) <= 0:
            raise ValueError(f"not an OAR job id: {raw!r}")
        out.append(text)
    return out


def cancel(ids: list[str], oardel: str = "oardel") -> tuple[int, str]:
    """Run oardel on ``ids``; (exit code for the caller, oardel's output)."""
    proc = subprocess.run([oardel, *ids], capture_output=True, text=True, check=False,
                          timeout=60)
    return (0 if proc.returncode == 0 else 1), proc.stdout + proc.stderr


def build_parser():
    p = cli.parser("segscale.oar.cancel", __doc__)
    p.add_argument("job_ids", nargs="+", help="OAR job ids")
    p.add_argument("--oardel", default="oardel", help="the oardel command")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code, output = cancel(valid_ids(args.job_ids), args.oardel)
    except (OSError, ValueError, subprocess.TimeoutExpired) as err:
        sys.stderr.write(f"segscale.oar.cancel: {err}\n")
        return 1
    sys.stderr.write(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
