"""Finding the training environment for jobs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segscale.train.env import environment_with, train_bin


def _venv(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").touch()
    return root


def test_named_environment_wins(tmp_path):
    named = _venv(tmp_path / "named")
    _venv(tmp_path / "repo" / ".venv-train")
    found = train_bin({"SEGSCALE_TRAIN_ENV": str(named)}, checkout=tmp_path / "repo")
    assert found == named / "bin"


def test_project_venv_beside_the_checkout(tmp_path):
    _venv(tmp_path / ".venv-train")
    assert train_bin({}, checkout=tmp_path) == tmp_path / ".venv-train" / "bin"


def test_nothing_to_switch_to(tmp_path):
    assert train_bin({}, checkout=tmp_path) is None


def test_named_environment_without_python_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bin/python"):
        train_bin({"SEGSCALE_TRAIN_ENV": str(tmp_path)}, checkout=tmp_path)


def test_environment_puts_the_training_bin_first(tmp_path):
    env = environment_with(tmp_path / "bin", {"PATH": "/usr/bin", "HOME": "/root"})
    assert env == {"PATH": f"{tmp_path / 'bin'}:/usr/bin", "HOME": "/root"}
    assert environment_with(None, {"PATH": "/usr/bin"}) == {"PATH": "/usr/bin"}


def test_command_runs_with_the_named_environment_first_on_path(tmp_path):
    named = _venv(tmp_path / "named")
    tool = named / "bin" / "segscale-probe"
    tool.write_text("#!/bin/sh\necho \"probe $1\"\n")
    tool.chmod(0o755)
    out = subprocess.run(
        [sys.executable, "-m", "segscale.train.env", "segscale-probe", "--flag"],
        env={"SEGSCALE_TRAIN_ENV": str(named), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True)
    assert out.stdout == "probe --flag\n"


def test_missing_command_is_a_clear_error(tmp_path):
    named = _venv(tmp_path / "named")
    out = subprocess.run(
        [sys.executable, "-m", "segscale.train.env", "no-such-tool-anywhere"],
        env={"SEGSCALE_TRAIN_ENV": str(named), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True)
    assert out.returncode == 127
    assert "cannot run 'no-such-tool-anywhere'" in out.stderr
