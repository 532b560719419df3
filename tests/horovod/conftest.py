"""Session fixtures for the training tests (see train_helpers.py for how runs are launched)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import TINY, TRAIN_PYTHON, Run, make_store, run_train


@pytest.fixture(scope="session")
def train_python() -> Path:
    if not TRAIN_PYTHON.is_file():
        pytest.skip(f"training environment absent: {TRAIN_PYTHON} (set SEGSCALE_TRAIN_PYTHON "
                    "or run scripts/install-train-env.sh)")
    return TRAIN_PYTHON


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {"train": make_store(root / "train", 48, 0), "val": make_store(root / "val", 16, 1),
            "test": make_store(root / "test", 12, 2)}


@pytest.fixture(scope="session")
def two_rank_run(train_python, stores, tmp_path_factory) -> Run:
    """2 ranks x 2 epochs, shared by the tests that only read its outputs."""
    run = run_train(train_python, stores, tmp_path_factory.mktemp("runs") / "two", TINY,
                    ranks=2)
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    return run
