"""Evaluate one run's test prediction: ``python -m segscale.evaluate``.

Reads the test store, ``pred.npy``, ``inference.json`` and ``run.json`` (docs/formats.md);
writes ``metrics.json`` and one ``{patient}.nii.gz`` per test patient, all atomically. The
test store holds every plane of every test volume, so the NIfTI predictions are complete
volumes and the volume level scores them whole; a store lacking planes (built before
whole-volume test stores) is refused. A ``diverged`` run is still evaluated (its prediction
exists) and keeps its status.

CLI::

    python -m segscale.evaluate --store STORE --pred pred.npy --inference inference.json \\
        --run run.json --metrics metrics.json --predictions-dir predictions/
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segscale import cli
from segscale.data.msd import DatasetError, load_volume
from segscale.data.slicing import map_labels
from segscale.data.store import SliceStore
from segscale.evaluate.scoring import class_names_of, evaluate_store
from segscale.fileio import atomic_path, read_json, write_json
from segscale.logs import configure
from segscale.provenance import describe_environment
from segscale.study import FAILED, OK, STATUSES

log = logging.getLogger(__name__)

INFERENCE_KEYS = ("batch1_ms_per_image", "batched_ms_per_image", "batch_size")


class InputError(ValueError):
    """A bad input file, named in the message."""


@dataclass(frozen=True)
class EvaluateConfig:
    """The inputs and outputs of one evaluation."""

    store: Path
    pred: Path
    inference: Path
    run: Path
    metrics: Path
    predictions_dir: Path
    progress: bool = True


def load_prediction(path: Path, store: SliceStore) -> np.ndarray:
    """``pred.npy`` memory-mapped, checked against the store.

    Raises:
        InputError: missing/unreadable file, wrong shape, or a non-integer dtype.
    """
    try:
        pred = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable .npy array ({err})") from None
    if pred.shape != store.labels.shape:
        raise InputError(f"{path}: prediction shape {pred.shape} does not match the store "
                         f"{store.directory} labels {store.labels.shape}")
    if not np.issubdtype(pred.dtype, np.integer):
        raise InputError(f"{path}: expected integer class indices, got dtype {pred.dtype}")
    return pred


def read_run_status(path: Path) -> str:
    """``status`` of ``run.json``.

    Raises:
        InputError: unreadable JSON or a status not in :data:`STATUSES`.
    """
    try:
        run = read_json(path)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    status = run.get("status") if isinstance(run, dict) else None
    if status not in STATUSES:
        raise InputError(f"{path}: key 'status' is {status!r}, expected one of {STATUSES}")
    return status


def read_inference(path: Path) -> dict:
    """The timing keys of ``inference.json`` (missing ones are an error).

    Raises:
        InputError: unreadable JSON or a missing key.
    """
    try:
        info = read_json(path)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    missing = [k for k in INFERENCE_KEYS if not isinstance(info, dict) or k not in info]
    if missing:
        raise InputError(f"{path}: key(s) {missing} missing")
    return {k: info[k] for k in INFERENCE_KEYS}


def write_nifti(path: Path, volume: np.ndarray, affine: np.ndarray) -> None:
    """A uint8 label volume as NIfTI-1 with ``affine``, atomically."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, dtype=np.uint8), affine)
    img.header.set_data_dtype(np.uint8)
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(img, tmp)


def source_truth(store: SliceStore):
    """A loader of each patient's source label volume (label map applied), or None when
    the source task is not readable here (then the store's labels are reassembled)."""
    params = store.manifest.get("params", {})
    root, label_map = params.get("root"), params.get("label_map")
    volumes = store.manifest.get("volumes", {})
    if not root or label_map is None or not all(
            (Path(root) / v["label"]).is_file() for v in volumes.values()):
        log.warning("source labels under %r not readable: volume metrics use the store's "
                    "labels (exact unless slices were downsampled)", root)
        return None

    def load(patient: str) -> np.ndarray:
        try:
            raw = load_volume(Path(root) / volumes[patient]["label"]).data
        except DatasetError as err:
            raise InputError(str(err)) from None
        return map_labels(raw, tuple(label_map))

    return load


def record_failed_run(cfg: EvaluateConfig) -> dict:
    """A failed run has nothing to score: ``metrics.json`` says so, with the run's error, and
    the predictions folder stays empty, so the run is a ``failed`` row of the tables."""
    run = read_json(cfg.run)
    cfg.predictions_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"status": FAILED, "error": run.get("error") or "no error recorded",
               "inputs": {"store": str(cfg.store), "run": str(cfg.run)},
               "predictions_dir": str(cfg.predictions_dir),
               "environment": describe_environment()}
    write_json(cfg.metrics, metrics)
    log.warning("%s: the run failed (%s); recorded without scores", cfg.run, metrics["error"])
    return metrics


def evaluate(cfg: EvaluateConfig) -> dict:
    """Evaluate and write ``metrics.json`` and the NIfTI predictions; returns the metrics.

    ``metrics.json`` is written last, so its presence means every prediction volume was
    written too.

    Raises:
        InputError, ValueError, FileNotFoundError: bad inputs (messages name the file).
    """
    cfg.metrics.unlink(missing_ok=True)  # a stale file must not pass for this evaluation
    status = read_run_status(cfg.run)
    if status == FAILED:
        return record_failed_run(cfg)
    inference = read_inference(cfg.inference)
    store = SliceStore.open(cfg.store)
    pred = load_prediction(cfg.pred, store)
    if status != OK:
        log.warning("%s: run status is %r; evaluating the prediction anyway", cfg.run, status)
    affines = {p: np.asarray(v["affine"], dtype=np.float64)
               for p, v in store.manifest.get("volumes", {}).items()}

    def sink(patient: str, volume: np.ndarray) -> None:
        write_nifti(cfg.predictions_dir / f"{patient}.nii.gz", volume, affines[patient])

    try:
        result = evaluate_store(store, pred, volume_sink=sink, progress=cfg.progress,
                                volume_truth=source_truth(store))
    except ValueError as err:
        raise InputError(f"{cfg.pred} against {cfg.store}: {err}") from None
    metrics = {
        "status": status,
        "n_classes": store.n_classes,
        "class_names": class_names_of(store.manifest, store.n_classes),
        **result,
        "inference": inference,
        "inputs": {"store": str(cfg.store), "pred": str(cfg.pred),
                   "inference": str(cfg.inference), "run": str(cfg.run),
                   "dataset": store.manifest.get("dataset"),
                   "split": store.manifest.get("split")},
        "predictions_dir": str(cfg.predictions_dir),
        "environment": describe_environment(),
    }
    write_json(cfg.metrics, metrics)
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = cli.parser("segscale.evaluate", __doc__)
    parser.add_argument("--store", required=True, type=Path, help="test slice store directory")
    parser.add_argument("--pred", required=True, type=Path, help="pred.npy (N, H, W) uint8")
    parser.add_argument("--inference", required=True, type=Path, help="inference.json")
    parser.add_argument("--run", required=True, type=Path, help="run.json of the run")
    parser.add_argument("--metrics", required=True, type=Path, help="metrics.json to write")
    parser.add_argument("--predictions-dir", required=True, type=Path,
                        help="directory for {patient}.nii.gz predicted volumes")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()
    cfg = EvaluateConfig(args.store, args.pred, args.inference, args.run, args.metrics,
                         args.predictions_dir, progress=not args.no_progress)
    try:
        metrics = evaluate(cfg)
    except (ValueError, FileNotFoundError, KeyError) as err:
        log.error("cannot evaluate: %s", err)
        return 1
    if metrics["status"] == FAILED:
        return 0
    s = metrics["summary"]
    log.info("%s (%s): dice %.4f (fg %.4f), MA %.4f, mIoU %.4f, hd95 %.3f, avg HD %.3f",
             cfg.metrics, metrics["status"], s["dice"], s["dice_fg"], s["mean_accuracy"],
             s["mean_iou"], s["hd95"], s["avg_hausdorff"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
