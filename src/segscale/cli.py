"""The one shape of every segscale command: ``build_parser()`` and ``main(argv) -> int``.

:func:`parser` gives an ``argparse`` parser whose errors are one line naming the program and
the problem (exit 2), instead of a usage block that hides the message in a job log.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_USAGE = 2


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser for ``python -m {module}`` described by the module's docstring."""
    return OneLineErrorParser(prog=f"python -m {module}", description=doc,
                              formatter_class=argparse.RawDescriptionHelpFormatter)


EXIT_INPUT = 1
#: What a command's own work raises on bad input (the message names the file or key).
INPUT_ERRORS = (ValueError, FileNotFoundError, KeyError)


def run_command(module: str, remainder: list[str], start) -> int:
    """``start(command)`` for the command given after the options (``--`` before it is
    optional): a launcher's exit status, 2 without a command, 127 when it cannot be started."""
    command = remainder[1:] if remainder[:1] == ["--"] else remainder
    if not command:
        sys.stderr.write(f"{module}: no command to run\n")
        return 2
    try:
        return start(command)
    except OSError as err:
        sys.stderr.write(f"{module}: cannot run {command[0]!r}: {err}\n")
        return 127


def run_logged(work, log, errors: tuple[type[BaseException], ...] = INPUT_ERRORS) -> int:
    """Exit code of ``work()``: 0, or 1 after one error line naming the problem (no traceback)
    when it raises one of ``errors``."""
    try:
        work()
    except errors as err:
        log.error("%s", err)
        return EXIT_INPUT
    return 0
