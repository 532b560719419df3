"""Shared set-up of the training benchmarks: a generated store and toolkit runs.

Run the benchmarks with the training environment's python, e.g.
``.venv-train/bin/python benchmarks/bench_train_overhead.py``; results go to stdout and
``benchmarks/out/`` (ignored by git). Sizes are small enough for a laptop CPU; raise
``--size``/``--slices`` on a GPU node.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
OUT = REPO / "benchmarks" / "out"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", type=int, default=64, help="slice height = width")
    p.add_argument("--slices", type=int, default=128, help="training slices")
    p.add_argument("--batch", type=int, default=8, help="batch per rank")
    p.add_argument("--epochs", type=int, default=4, help="epochs (the first is warm-up)")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    return p


def make_store(directory: Path, n: int, size: int, seed: int = 0) -> Path:
    """``n`` noisy slices with a disk (class 1) around a core (class 2)."""
    from segscale.data.demo import disk_store

    return disk_store(directory, n, size, seed)


def stores(args, root: Path) -> dict[str, Path]:
    return {"train": make_store(root / "train", args.slices, args.size, 0),
            "val": make_store(root / "val", max(8, args.slices // 8), args.size, 1)}


def hparams(args, **extra) -> dict:
    return {"epochs": args.epochs, "batch_size": args.batch, "lr": 0.01, "loss": "dice_ce",
            "model": {"depth": args.depth, "base_filters": args.filters},
            "threads_per_rank": args.threads, "tensorboard": False, "validation_steps": 1,
            "sample_interval_s": 5.0, "sync_every_steps": 10, **extra}


def run_toolkit(st: dict[str, Path], out: Path, hp: dict, ranks: int = 1) -> pd.DataFrame:
    """Train through ``python -m segscale.train``; returns its history."""
    cmd = [str(PYTHON), "-m", "segscale.train", "--train-store", str(st["train"]),
           "--val-store", str(st["val"]), "--out", str(out), "--dataset", "bench",
           "--arch", "unet", "--policy", "none", "--seed", "0", "--hparams", json.dumps(hp)]
    if ranks > 1:
        cmd = [str(PYTHON.parent / "horovodrun"), "-np", str(ranks), "-H",
               f"localhost:{ranks}", "--gloo", *cmd]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": f"{PYTHON.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"toolkit run failed:\n{proc.stderr[-3000:]}")
    hist = pd.read_csv(out / "history.csv")
    hist.attrs["steps_per_epoch"] = json.loads((out / "run.json").read_text())["steps_per_epoch"]
    return hist


def steady(hist: pd.DataFrame, column: str) -> float:
    """Median of ``column`` over the epochs after the first (graph tracing, warm-up)."""
    values = hist[column].iloc[1:] if len(hist) > 1 else hist[column]
    return float(values.median())


BREAKDOWN = ("compute_s", "allreduce_s", "input_wait_s", "validation_s")


def breakdown_text(hist: pd.DataFrame) -> str:
    """Where a training step's time goes in steady state, from history.csv's breakdown (mean
    over ranks): ``compute a ms, allreduce b ms, input wait c ms, other d ms per step``;
    ``other`` is the rest of the epoch's training time (callbacks, Keras, tracing)."""
    steps = hist.attrs["steps_per_epoch"]
    per_epoch = {c: steady(hist, c) for c in (*BREAKDOWN, "epoch_time_s")}
    parts = {"compute": per_epoch["compute_s"], "allreduce": per_epoch["allreduce_s"],
             "input wait": per_epoch["input_wait_s"]}
    train = per_epoch["epoch_time_s"] - per_epoch["validation_s"]
    parts["other"] = max(0.0, train - sum(parts.values()))
    return ", ".join(f"{name} {1000 * v / steps:.1f} ms" for name, v in parts.items()) \
        + " per step"


def workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="segscale-bench-")


def record(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
