"""Helpers for tests that train for real in the training environment (.venv-train).

pytest itself runs in the workflow environment (no TensorFlow); training and prediction run
in subprocesses of ``SEGSCALE_TRAIN_PYTHON`` (default ``<repo>/.venv-train/bin/python``),
multi-rank runs through the ``horovodrun`` beside it (Gloo, local processes). Data: small
demo-like stores (32x32 slices, a disk with a core: 3 classes) written with the store writer.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
TRAIN_PYTHON = Path(os.environ.get("SEGSCALE_TRAIN_PYTHON",
                                   REPO / ".venv-train" / "bin" / "python"))
TINY = {"epochs": 2, "batch_size": 4, "lr": 0.01, "loss": "dice_ce",
        "model": {"depth": 2, "base_filters": 4}, "threads_per_rank": 1,
        "sample_interval_s": 0.5, "sync_every_steps": 2}


def make_store(directory: Path, n: int, seed: int, size: int = 32) -> Path:
    """A store of ``n`` noisy slices, each with a disk (class 1) around a core (class 2)."""
    from segscale.data.demo import disk_store

    return disk_store(directory, n, size, seed)


@dataclass
class Run:
    out: Path
    proc: subprocess.CompletedProcess

    @property
    def manifest(self) -> dict:
        return json.loads((self.out / "run.json").read_text())

    @property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "history.csv")


def launcher(python: Path, ranks: int, strategy: str = "horovod") -> list[str]:
    """The local launcher of ``ranks`` ranks: ``horovodrun --gloo`` for Horovod, segscale's
    spawn for TensorFlow's strategies; none for one rank."""
    if ranks == 1:
        return []
    if strategy == "horovod":
        return [str(python.parent / "horovodrun"), "-np", str(ranks), "-H",
                f"localhost:{ranks}", "--gloo"]
    return [str(python), "-m", "segscale.train.spawn", "-n", str(ranks)]


def run_train(python: Path, stores: dict[str, Path], out: Path, hparams: dict, ranks: int = 1,
              policy: str = "gradual", env: dict[str, str] | None = None,
              timeout: int = 240, strategy: str = "horovod") -> Run:
    """Train with ``ranks`` local ranks (horovodrun --gloo or spawn when > 1)."""
    args = [*launcher(python, ranks, strategy), str(python), "-m", "segscale.train",
            "--train-store", str(stores["train"]), "--val-store", str(stores["val"]),
            "--out", str(out), "--dataset", "demo", "--arch", "unet", "--policy", policy,
            "--seed", "0", "--strategy", strategy, "--hparams", json.dumps(hparams)]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMPI_MCA_mpi_yield_when_idle": "1",
                "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                **(env or {})}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=REPO)
    return Run(out, proc)


def run_python(python: Path, code: str, timeout: int = 120) -> str:
    """Run ``code`` in the training environment; returns stdout (asserts success)."""
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
