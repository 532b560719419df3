"""Predict a test store with a run's final model, timing inference (``python -m
segscale.evaluate.predict``).

Writes ``pred.npy`` (uint8 argmax per pixel, one row per store row) and ``inference.json``
(docs/formats.md). Timings are of warm models (after ``warmup`` untimed calls): batch-1 is
the median over ``timing_images`` single-image calls, as a clinician's one-slice request
would see it (the thesis's per-image inference time); batched is the full pass over the store
at ``batch_size`` divided by the number of images.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segscale import cli
from segscale.fileio import atomic_path, read_json, sha256, write_json
from segscale.logs import configure
from segscale.study import FAILED, MODEL_FILE, RUN_RECORD

log = logging.getLogger("segscale.evaluate.predict")


@dataclass(frozen=True)
class PredictConfig:
    """Arguments of one prediction."""

    run: Path
    store: Path
    pred: Path
    inference: Path
    batch_size: int = 16
    timing_images: int = 50
    warmup: int = 3

    def __post_init__(self) -> None:
        for name in ("batch_size", "timing_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1, "
                                 f"got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"--warmup: must be >= 0, got {self.warmup}")


def describe_device(tf) -> str:
    """What ran the model: the GPU's name, else the CPU model."""
    from segscale.provenance import cpu_model

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
        except Exception:  # details are best-effort
            name = None
        return f"GPU: {name or gpus[0].name}"
    return f"CPU: {cpu_model()}"


def read_record(run: Path) -> dict:
    """The run's ``run.json`` (empty when absent: a run directory made by hand).

    Raises:
        ValueError: not a JSON object.
    """
    path = run / RUN_RECORD
    if not path.is_file():
        return {}
    record = read_json(path)
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return record


def check_model(run: Path, record: dict) -> None:
    """The model is the one the run recorded, not one left by an earlier attempt.

    Raises:
        ValueError: ``model.keras`` differs from ``run.json``'s ``model_sha256``.
    """
    expected = record.get("model_sha256")
    path = run / MODEL_FILE
    if expected and path.is_file() and sha256(path) != expected:
        raise ValueError(f"{path}: sha256 differs from {run / RUN_RECORD}'s model_sha256: not "
                         "the model this run wrote (left by an earlier attempt?); rerun train")


def skip_failed_run(cfg: PredictConfig, error: str | None) -> dict:
    """A failed run has no model to predict with: an empty ``pred.npy`` and an
    ``inference.json`` that says why, so evaluation records the run as a failed row."""
    with atomic_path(cfg.pred, suffix=".npy") as tmp:
        np.save(tmp, np.zeros((0, 0, 0), dtype=np.uint8))
    info = {"batch1_ms_per_image": None, "batched_ms_per_image": None,
            "batch_size": cfg.batch_size, "n_images": 0, "run_status": FAILED,
            "skipped": f"the run failed: {error or 'no error recorded'}"}
    write_json(cfg.inference, info)
    log.warning("%s: run failed, nothing to predict (%s)", cfg.run, error)
    return info


def predict(cfg: PredictConfig, run_status: str | None = None) -> dict:
    """Run the prediction and the timings; returns what ``inference.json`` holds.

    Raises:
        FileNotFoundError: no ``model.keras`` in the run directory, or an incomplete store.
        ValueError: the store's image shape does not fit the model's input.
    """
    import tensorflow as tf

    from segscale.data.store import SliceStore
    from segscale.provenance import describe_environment

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    model_path = cfg.run / "model.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no final model in the run directory")
    model = tf.keras.models.load_model(model_path, compile=False)
    store = SliceStore.open(cfg.store)
    shape = tuple(store.images.shape[1:])
    expected = tuple(model.input_shape[1:])
    if any(e is not None and e != s for e, s in zip(expected, shape, strict=True)):
        raise ValueError(f"{cfg.store}: images {shape} do not fit the model input {expected}")
    n = len(store)

    @tf.function(reduce_retracing=True)
    def infer(x):
        return tf.cast(tf.argmax(model(x, training=False), axis=-1), tf.uint8)

    # batch-1 timing on warm model
    one = np.asarray(store.images[:1], dtype=np.float32)
    for _ in range(cfg.warmup):
        infer(one).numpy()
    times = []
    for i in range(min(cfg.timing_images, n)):
        x = np.asarray(store.images[i:i + 1], dtype=np.float32)
        t0 = time.perf_counter()
        infer(x).numpy()
        times.append(time.perf_counter() - t0)
    batch1_ms = 1000 * float(np.median(times)) if times else float("nan")

    # batched full pass (also the prediction itself)
    pred = np.zeros((n, *shape[:2]), dtype=np.uint8)
    if n:
        warm = np.asarray(store.images[:min(cfg.batch_size, n)], dtype=np.float32)
        for _ in range(cfg.warmup):
            infer(warm).numpy()
    t0 = time.perf_counter()
    for start in range(0, n, cfg.batch_size):
        x = np.asarray(store.images[start:start + cfg.batch_size], dtype=np.float32)
        pred[start:start + len(x)] = infer(x).numpy()
    batched_ms = 1000 * (time.perf_counter() - t0) / n if n else float("nan")

    with atomic_path(cfg.pred, suffix=".npy") as tmp:
        np.save(tmp, pred)
    info = {
        "batch1_ms_per_image": batch1_ms,
        "batched_ms_per_image": batched_ms,
        "batch_size": cfg.batch_size,
        "device": describe_device(tf),
        "n_images": n,
        "timing_images": len(times),
        "model": str(model_path),
        "run_status": run_status,  # as main read it from run.json
        "environment": describe_environment(),
    }
    write_json(cfg.inference, info)
    log.info("%d images: %.2f ms/image at batch 1, %.2f ms/image at batch %d (%s)", n,
             batch1_ms, batched_ms, cfg.batch_size, info["device"])
    return info


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("segscale.evaluate.predict", __doc__)
    p.add_argument("--run", required=True, type=Path, help="run directory with model.keras")
    p.add_argument("--store", required=True, type=Path, help="test slice store")
    p.add_argument("--pred", required=True, type=Path, help="output pred.npy")
    p.add_argument("--inference", required=True, type=Path, help="output inference.json")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--timing-images", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure()
    try:
        cfg = PredictConfig(args.run, args.store, args.pred, args.inference, args.batch_size,
                            args.timing_images, args.warmup)
        record = read_record(cfg.run)
        if record.get("status") == FAILED:
            skip_failed_run(cfg, record.get("error"))
        else:
            check_model(cfg.run, record)
            predict(cfg, record.get("status"))
    except (ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
