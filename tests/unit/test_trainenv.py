"""Finding the training environment for jobs."""

from __future__ import annotations

import pytest

from segscale.train.env import train_bin


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
