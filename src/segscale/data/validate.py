"""Inspect and validate a raw MSD task before anything is derived from it.

Every claim of ``dataset.json`` is checked against the files: its structure (valid JSON, one
object, required keys and their types, integer label keys, modality keys 0..n-1),
``numTraining``/``numTest`` against the entries listed and the volume files present in
``imagesTr``/``labelsTr``/``imagesTs``, every listed path (relative, no ``..`` leaving the
task folder, no symbolic link leading out of it, none listed twice). Every listed volume,
training and test, is read in full: readable (the cause named: missing, empty, not gzip,
truncated, bad NIfTI header, ...), finite intensities, a usable geometry (finite, non-singular
affine, positive spacing), dimensionality and channel count matching ``modality``; each label
on its image's grid (shape and affine), integer-valued within the declared ``labels``. A task
whose training labels hold no foreground voxel at all is refused: nothing can be learnt from
it. The configured channels and label map must fit the data. All problems are gathered and
reported together, each naming its file; on any problem no report is written and the exit
status is 1. The report records the sha256 of every source file, which the slice-store build
checks before it uses a volume.

CLI: ``python -m segscale.data.validate --root TASK --report inspect.json [--params JSON]``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segscale import cli
from segscale.data.msd import (
    Case,
    DatasetError,
    Volume,
    declared_labels,
    load_volume,
    read_dataset_json,
    resolve,
    training_cases,
    unlabelled_images,
)
from segscale.data.params import DatasetParams
from segscale.fileio import sha256, write_json
from segscale.logs import configure
from segscale.provenance import describe_environment

log = logging.getLogger(__name__)

AFFINE_TOLERANCE_MM = 1e-3


VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".nii.bz2")


def _check_geometry(path: Path, volume: Volume) -> list[str]:
    problems = []
    if not np.all(np.isfinite(volume.affine)):
        problems.append(f"{path}: affine has NaN/inf entries")
    elif abs(np.linalg.det(volume.affine[:3, :3])) < 1e-9:
        problems.append(f"{path}: singular affine (voxel axes collapse): no usable geometry")
    spacing = np.asarray(volume.spacing, dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        problems.append(f"{path}: voxel spacing {list(volume.spacing)} is not positive")
    return problems


def _check_image(path: Path, image: Volume, n_modalities: int) -> list[str]:
    """Dimensionality, channels, voxel type, finite intensities and geometry of one image."""
    problems = []
    expected_ndim = 3 if n_modalities == 1 else 4
    if image.data.ndim != expected_ndim:
        problems.append(f"{path}: image is {image.data.ndim}D, expected {expected_ndim}D "
                        f"for {n_modalities} modalit{'y' if n_modalities == 1 else 'ies'}")
    elif expected_ndim == 4 and image.data.shape[3] != n_modalities:
        problems.append(f"{path}: {image.data.shape[3]} channels, dataset.json declares "
                        f"{n_modalities} modalities")
    if image.data.size == 0:
        problems.append(f"{path}: image holds no voxels (shape {image.data.shape})")
    if image.data.dtype.kind not in "biuf":
        problems.append(f"{path}: unsupported voxel type {image.data.dtype}")
    elif image.data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(image.data)))
        if bad:
            problems.append(f"{path}: {bad} NaN/inf intensities")
    return problems + _check_geometry(path, image)


def _load(root: Path, relative: str) -> tuple[Path, Volume | None, str | None]:
    path = resolve(root, relative)
    try:
        return path, load_volume(path), None
    except DatasetError as err:
        return path, None, str(err)


def check_case(root: Path, case: Case, n_modalities: int,
               allowed: set[int]) -> tuple[dict, list[str]]:
    """Validate one image/label pair.

    Returns:
        (summary of the case, list of problems; each problem names the file).
    """
    img_path, image, img_err = _load(root, case.image)
    lab_path, label, lab_err = _load(root, case.label)
    problems = [e for e in (img_err, lab_err) if e]
    if image is None or label is None:
        return {}, problems
    problems += _check_image(img_path, image, n_modalities)
    if label.data.ndim != 3:
        problems.append(f"{lab_path}: label is {label.data.ndim}D, expected 3D")
    if image.data.shape[:3] != label.data.shape[:3]:
        problems.append(f"{lab_path}: label shape {label.data.shape[:3]} differs from image "
                        f"shape {image.data.shape[:3]} ({img_path})")
    elif not np.all(np.isfinite(label.affine)) or not np.allclose(
            image.affine, label.affine, atol=AFFINE_TOLERANCE_MM):
        problems.append(f"{lab_path}: label affine differs from the image's ({img_path}); "
                        "they are not on the same grid")
    if label.data.dtype.kind not in "biuf":
        return {}, problems + [f"{lab_path}: unsupported label voxel type {label.data.dtype}"]
    values, counts = np.unique(np.asarray(label.data), return_counts=True)
    finite = np.isfinite(values)
    if not np.all(finite):
        problems.append(f"{lab_path}: {int(counts[~finite].sum())} NaN/inf label values")
        values, counts = values[finite], counts[finite]
    if not np.all(np.mod(values, 1) == 0):
        fractional = [float(v) for v in values if v % 1][:5]
        problems.append(f"{lab_path}: non-integer label values (e.g. {fractional})")
    unexpected = sorted({int(v) for v in values if v % 1 == 0 and int(v) not in allowed})
    if unexpected:
        problems.append(f"{lab_path}: label values {unexpected} not declared in dataset.json "
                        f"(declared: {sorted(allowed)})")
    if problems:
        return {}, problems
    summary = {
        "patient": case.patient, "image": case.image, "label": case.label,
        "shape": list(image.data.shape), "spacing": [round(s, 6) for s in image.spacing],
        "affine": image.affine.round(6).tolist(), "dtype": str(image.data.dtype),
        "label_counts": {str(int(v)): int(c) for v, c in zip(values, counts)},
        "sha256": {"image": sha256(img_path), "label": sha256(lab_path)},
    }
    return summary, problems


def check_test_image(root: Path, relative: str, n_modalities: int) -> tuple[dict, list[str]]:
    """Validate one unlabelled test image (``imagesTs``)."""
    path, image, err = _load(root, relative)
    if image is None:
        return {}, [err]
    problems = _check_image(path, image, n_modalities)
    if problems:
        return {}, problems
    return {"image": relative, "shape": list(image.data.shape), "sha256": sha256(path)}, []


def _suffix(name: str) -> str:
    return next((s for s in VOLUME_SUFFIXES[::-1] if name.endswith(s)), "")


def _volume_files(folder: Path, listed: list[str]) -> list[str]:
    """Volume files in ``folder`` in the formats listed there (all formats if none is),
    leaving out hidden ones (macOS ``._x.nii.gz`` and such)."""
    suffixes = {_suffix(p) for p in listed
                if Path(os.path.normpath(p)).parent == Path(folder.name)} - {""}
    suffixes = tuple(suffixes) or VOLUME_SUFFIXES
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith(".") and _suffix(p.name) in suffixes)


def check_listing(root: Path, meta: dict) -> tuple[list[str], set[str]]:
    """Counts against entries and files present, paths, duplicates.

    Returns:
        (problems, the listed paths that are unsafe and must not be read).
    """
    where = root / "dataset.json"
    problems = []
    cases, tests = training_cases(meta), unlabelled_images(meta)
    if not cases:
        problems.append(f"{where}: no training cases listed")
    for key, listed in (("numTraining", len(cases)), ("numTest", len(tests))):
        if meta[key] != listed:
            problems.append(f"{where}: {key} is {meta[key]} but {listed} "
                            f"{'training entries' if key == 'numTraining' else 'test images'}"
                            " are listed")
    for folder, key in (("imagesTr", "numTraining"), ("labelsTr", "numTraining"),
                        ("imagesTs", "numTest")):
        path = root / folder
        if path.is_dir():
            names = [c.image for c in cases] + [c.label for c in cases] + tests
            present = _volume_files(path, names)
            if len(present) != meta[key]:
                listed_here = {Path(os.path.normpath(n)).name for n in names}
                extra = [n for n in present if n not in listed_here][:3]
                problems.append(f"{path}: holds {len(present)} volume files, dataset.json "
                                f"{key} is {meta[key]}"
                                + (f" (not listed: {', '.join(extra)})" if extra else ""))
        elif meta[key] > 0 and folder != "imagesTs" or folder == "imagesTs" and tests:
            problems.append(f"{path}: folder missing, dataset.json {key} is {meta[key]}")
    unsafe: set[str] = set()
    seen: dict[str, str] = {}
    listed = [(f"training[{i}].{k}", getattr(c, k)) for i, c in enumerate(cases)
              for k in ("image", "label")] + [(f"test[{i}]", t) for i, t in enumerate(tests)]
    for what, relative in listed:
        try:
            resolve(root, relative)
        except DatasetError as err:
            problems.append(f"{err} ({what})")
            unsafe.add(relative)
            continue
        key = os.path.normpath(relative)
        if key in seen:
            problems.append(f"{root / relative}: listed more than once in dataset.json "
                            f"({seen[key]} and {what})")
        else:
            seen[key] = what
    patients = [c.patient for c in cases]
    duplicates = sorted({p for p in patients if patients.count(p) > 1})
    if duplicates:
        problems.append(f"{where}: duplicate patient ids in 'training': {duplicates}")
    return problems, unsafe


def inspect_dataset(root: str | Path, params: DatasetParams | None = None,
                    threads: int = 1) -> dict:
    """Validate a whole task and return its report.

    Raises:
        DatasetError: listing every problem found, one per line.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: task folder not found")
    meta = read_dataset_json(root)
    modalities = meta.get("modality", {"0": "unknown"})
    allowed = set(declared_labels(meta))
    problems, unsafe = check_listing(root, meta)
    cases = [c for c in training_cases(meta) if not {c.image, c.label} & unsafe]
    tests = [t for t in unlabelled_images(meta) if t not in unsafe]
    if params is not None:
        if max(params.channels) >= len(modalities):
            problems.append(f"datasets.{params.name}.channels: {list(params.channels)} but "
                            f"dataset.json declares {len(modalities)} modalit(y/ies)")
        if max(allowed, default=0) >= len(params.label_map):
            problems.append(f"datasets.{params.name}.label_map: has {len(params.label_map)} "
                            f"entries, dataset.json declares labels up to {max(allowed)}")
    summaries, test_summaries = [], []

    def guarded(check, what, *args):
        try:
            return check(*args)
        except Exception as err:  # a reader's surprise must still name the file
            return {}, [f"{root / what}: cannot check ({type(err).__name__}: {err})"]

    with ThreadPoolExecutor(max(1, threads)) as pool:
        jobs = pool.map(lambda c: guarded(check_case, c.image, root, c, len(modalities),
                                          allowed), cases)
        for summary, found in tqdm(jobs, total=len(cases), desc="inspect", unit="vol"):
            problems.extend(found)
            if summary:
                summaries.append(summary)
        jobs = pool.map(lambda t: guarded(check_test_image, t, root, t, len(modalities)),
                        tests)
        for summary, found in jobs:
            problems.extend(found)
            if summary:
                test_summaries.append(summary)
    totals: dict[str, int] = {}
    for s in summaries:
        for value, count in s["label_counts"].items():
            totals[value] = totals.get(value, 0) + count
    if summaries and not any(count for value, count in totals.items() if value != "0"):
        problems.append(f"{root / 'dataset.json'}: no foreground class in any training label "
                        f"({len(summaries)} read): nothing to learn")
    if problems:
        raise DatasetError("\n".join(problems))
    absent = sorted(v for v in allowed if v != 0 and str(v) not in totals)
    warnings = [f"label {v} ({meta['labels'][str(v)]!r}) is declared but occurs in no "
                "training label" for v in absent if str(v) in meta["labels"]]
    for warning in warnings:
        log.warning("%s: %s", root / "dataset.json", warning)
    return {
        "root": str(root), "name": meta.get("name"), "modalities": modalities,
        "labels": meta["labels"], "n_training": len(summaries),
        "n_test_unlabelled": len(test_summaries),
        "label_voxel_totals": totals, "cases": summaries, "test": test_summaries,
        "warnings": warnings,
        "params": params.to_dict() if params else None,
        "environment": describe_environment(),
    }


def build_parser():
    parser = cli.parser("segscale.data.validate", __doc__)
    parser.add_argument("--root", required=True, help="MSD task folder (holds dataset.json)")
    parser.add_argument("--report", required=True, help="inspect.json to write")
    parser.add_argument("--params", help="the dataset's config section as JSON")
    parser.add_argument("--name", default="dataset", help="dataset name in the config")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()
    try:
        params = (DatasetParams.from_mapping(args.name, json.loads(args.params))
                  if args.params else None)
        report = inspect_dataset(args.root, params, args.threads)
    except (DatasetError, ValueError, OSError) as err:
        log.error("dataset %s is not usable:\n%s", args.root, err)
        return 1
    except Exception as err:  # a bug must not pass for a verdict on the data, nor crash
        log.error("dataset %s: inspection failed unexpectedly (%s: %s)", args.root,
                  type(err).__name__, err)
        return 1
    write_json(args.report, report)
    log.info("%d volumes valid; label voxels %s; report %s", report["n_training"],
             report["label_voxel_totals"], args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
