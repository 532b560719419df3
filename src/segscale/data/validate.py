"""Inspect and validate a raw MSD task before anything is derived from it.

Every listed image/label pair is read in full and checked: readable (not truncated or
corrupt), finite intensities, expected dimensionality and channel count, image and label on
the same grid (shape and affine), label values within the declared set, and the configured
channels and label map fit the data. All problems are gathered and reported together, each
naming its file; on any problem no report is written and the exit status is 1.

CLI: ``python -m segscale.data.validate --root TASK --report inspect.json [--params JSON]``.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from segscale import cli
from segscale.data.msd import (
    Case,
    DatasetError,
    declared_labels,
    load_volume,
    read_dataset_json,
    resolve,
    training_cases,
)
from segscale.data.params import DatasetParams
from segscale.fileio import write_json
from segscale.logs import configure
from segscale.provenance import describe_environment

log = logging.getLogger(__name__)

AFFINE_TOLERANCE_MM = 1e-3


def check_case(root: Path, case: Case, n_modalities: int,
               allowed: set[int]) -> tuple[dict, list[str]]:
    """Validate one image/label pair.

    Returns:
        (summary of the case, list of problems; each problem names the file).
    """
    problems: list[str] = []
    img_path, lab_path = resolve(root, case.image), resolve(root, case.label)
    try:
        image = load_volume(img_path)
    except DatasetError as err:
        return {}, [str(err)]
    try:
        label = load_volume(lab_path)
    except DatasetError as err:
        return {}, [str(err)]
    expected_ndim = 3 if n_modalities == 1 else 4
    if image.data.ndim != expected_ndim:
        problems.append(f"{img_path}: image is {image.data.ndim}D, expected {expected_ndim}D "
                        f"for {n_modalities} modalit{'y' if n_modalities == 1 else 'ies'}")
    elif expected_ndim == 4 and image.data.shape[3] != n_modalities:
        problems.append(f"{img_path}: {image.data.shape[3]} channels, dataset.json declares "
                        f"{n_modalities} modalities")
    if label.data.ndim != 3:
        problems.append(f"{lab_path}: label is {label.data.ndim}D, expected 3D")
    if image.data.shape[:3] != label.data.shape[:3]:
        problems.append(f"{lab_path}: label shape {label.data.shape[:3]} differs from image "
                        f"shape {image.data.shape[:3]} ({img_path})")
    elif not np.allclose(image.affine, label.affine, atol=AFFINE_TOLERANCE_MM):
        problems.append(f"{lab_path}: label affine differs from the image's ({img_path}); "
                        "they are not on the same grid")
    if not np.issubdtype(image.data.dtype, np.integer):
        bad = int(np.count_nonzero(~np.isfinite(image.data)))
        if bad:
            problems.append(f"{img_path}: {bad} NaN/inf intensities")
    values, counts = np.unique(np.asarray(label.data), return_counts=True)
    if not np.all(np.mod(values, 1) == 0):
        problems.append(f"{lab_path}: non-integer label values")
    unexpected = sorted(int(v) for v in values if int(v) not in allowed)
    if unexpected:
        problems.append(f"{lab_path}: label values {unexpected} not declared in dataset.json "
                        f"(declared: {sorted(allowed)})")
    summary = {
        "patient": case.patient, "image": case.image, "label": case.label,
        "shape": list(image.data.shape), "spacing": [round(s, 6) for s in image.spacing],
        "affine": image.affine.round(6).tolist(), "dtype": str(image.data.dtype),
        "label_counts": {str(int(v)): int(c) for v, c in zip(values, counts)},
    }
    return summary, problems


def inspect_dataset(root: str | Path, params: DatasetParams | None = None,
                    threads: int = 1) -> dict:
    """Validate a whole task and return its report.

    Raises:
        DatasetError: listing every problem found, one per line.
    """
    root = Path(root)
    meta = read_dataset_json(root)
    modalities = meta.get("modality", {"0": "unknown"})
    allowed = set(declared_labels(meta))
    cases = training_cases(meta)
    problems: list[str] = []
    if not cases:
        problems.append(f"{root / 'dataset.json'}: no training cases listed")
    patients = [c.patient for c in cases]
    if len(set(patients)) != len(patients):
        problems.append(f"{root / 'dataset.json'}: duplicate patient ids in 'training'")
    if params is not None:
        if max(params.channels) >= len(modalities):
            problems.append(f"datasets.{params.name}.channels: {list(params.channels)} but "
                            f"dataset.json declares {len(modalities)} modalit(y/ies)")
        if max(allowed, default=0) >= len(params.label_map):
            problems.append(f"datasets.{params.name}.label_map: has {len(params.label_map)} "
                            f"entries, dataset.json declares labels up to {max(allowed)}")
    summaries = []
    with ThreadPoolExecutor(max(1, threads)) as pool:
        jobs = pool.map(lambda c: check_case(root, c, len(modalities), allowed), cases)
        for summary, found in tqdm(jobs, total=len(cases), desc="inspect", unit="vol"):
            problems.extend(found)
            if summary:
                summaries.append(summary)
    if problems:
        raise DatasetError("\n".join(problems))
    totals: dict[str, int] = {}
    for s in summaries:
        for value, count in s["label_counts"].items():
            totals[value] = totals.get(value, 0) + count
    return {
        "root": str(root), "name": meta.get("name"), "modalities": modalities,
        "labels": meta["labels"], "n_training": len(summaries),
        "n_test_unlabelled": len(meta.get("test", [])),
        "label_voxel_totals": totals, "cases": summaries,
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
    except (DatasetError, ValueError) as err:
        log.error("dataset %s is not usable:\n%s", args.root, err)
        return 1
    write_json(args.report, report)
    log.info("%d volumes valid; label voxels %s; report %s", report["n_training"],
             report["label_voxel_totals"], args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
