"""Every command of the package has the one shape (segscale.cli): ``build_parser()``,
``main(argv) -> int``, and a bad argument is one line naming the program and the problem,
exit 2. Commands are found by walking the package, so a new one is checked without being
listed here."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import segscale
from segscale import cli

PACKAGE = Path(segscale.__file__).parent


def _commands() -> list[str]:
    """Modules run as ``python -m``: those with a ``__main__`` guard, and the ones a
    package's ``__main__.py`` hands over to."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("segscale", *path.relative_to(PACKAGE).with_suffix("").parts))
        text = path.read_text()
        if path.name == "__main__.py":
            target = next(line.split()[1] for line in text.splitlines()
                          if line.startswith("from ") and " import main" in line)
            found.add(target)
        elif '__name__ == "__main__"' in text:
            found.add(module)
    return sorted(found)


COMMANDS = _commands()


def test_the_walk_finds_the_commands():
    assert len(COMMANDS) >= 24
    for known in ("segscale.train.cli", "segscale.evaluate.cli", "segscale.scaling.cli",
                  "segscale.data.validate", "segscale.oar.submit", "segscale.tune.step"):
        assert known in COMMANDS


@pytest.mark.parametrize("module", COMMANDS)
def test_command_shape_and_one_line_error(module, capsys):
    mod = importlib.import_module(module)
    assert callable(getattr(mod, "build_parser", None)), f"{module}: no build_parser()"
    parser = mod.build_parser()
    assert isinstance(parser, cli.OneLineErrorParser), f"{module}: not segscale.cli.parser"
    params = list(inspect.signature(mod.main).parameters)
    assert params == ["argv"], f"{module}: main{params}, expected main(argv)"
    with pytest.raises(SystemExit) as stop:
        mod.main(["--no-such-option-anywhere"])
    assert stop.value.code == cli.EXIT_USAGE
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m segscale.") and "error:" in lines[0]
    assert "--no-such-option-anywhere" in lines[0] or "are required" in lines[0]
