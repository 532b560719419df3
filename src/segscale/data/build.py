"""Build one split's slice store from raw volumes: channels, normalisation, slice choice,
resize, label mapping; volumes processed in parallel, rows written in patient order.
The test store holds every plane of every volume; ``slices.count``/``select``/``margin``
choose the planes of train and val only (``manifest.json`` ``selection`` says which).

CLI: ``python -m segscale.data.build --name NAME --params JSON --inspect inspect.json
--split-file split.json --split train --out DIR [--threads N]``.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from segscale import cli
from segscale.data import slicing
from segscale.data.msd import DatasetError, load_volume
from segscale.data.params import DatasetParams
from segscale.data.split import SPLITS
from segscale.data.store import SliceStoreWriter
from segscale.fileio import read_json, sha256
from segscale.logs import configure
from segscale.provenance import describe_environment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumeJob:
    """One volume to slice (picklable for worker processes)."""

    patient: str
    image: Path
    label: Path
    sha256: tuple[str, str]  # (image, label) as inspect recorded them


def verified_sha256(path: Path, expected: str) -> str:
    """The file's checksum, which must be the one inspect recorded.

    Raises:
        DatasetError: the file changed since inspection, naming it.
    """
    actual = sha256(path)
    if actual != expected:
        raise DatasetError(f"{path}: changed since inspection (sha256 {actual[:16]}..., "
                           f"inspect.json recorded {expected[:16]}...); re-run inspect")
    return actual


def slice_indices(job: VolumeJob, params: DatasetParams, split: str) -> np.ndarray:
    """The slices this volume contributes to ``split`` (reads only the label); every plane
    for the test split (:func:`segscale.data.slicing.choose_planes`)."""
    label = slicing.map_labels(load_volume(job.label).data, params.label_map)
    return slicing.choose_planes(label, params.slices, split)


def process_volume(job: VolumeJob, params: DatasetParams, split: str) -> dict:
    """Everything one volume contributes to the ``split`` store, plus its provenance."""
    image, label = load_volume(job.image), load_volume(job.label)
    classes = slicing.map_labels(label.data, params.label_map)
    indices = slicing.choose_planes(classes, params.slices, split)
    images, labels = slicing.normalise_and_slice(image.data, classes, indices,
                                                 params.channels, params.normalise,
                                                 params.slices.axis, params.size)
    return {"patient": job.patient, "indices": indices, "images": images, "labels": labels,
            "shape": list(label.data.shape), "affine": image.affine.tolist(),
            "spacing": list(image.spacing),
            "sha256": {"image": verified_sha256(job.image, job.sha256[0]),
                       "label": verified_sha256(job.label, job.sha256[1])}}


def build_store(params: DatasetParams, report: dict, split_file: dict, split: str,
                out: str | Path, threads: int = 1) -> dict:
    """Slice every volume of ``split`` into a store at ``out``; returns its manifest.

    Raises:
        ValueError: unknown split or a split with no patients.
        DatasetError: a volume became unreadable or changed (checksum) since inspection, or
            ``report`` records no checksum for it.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    patients = split_file["patients"][split]
    if not patients:
        raise ValueError(f"split '{split}' has no patients (ratios {split_file['params']})")
    root = Path(report["root"])
    cases = {c["patient"]: c for c in report["cases"]}
    missing = [p for p in patients if p not in cases]
    if missing:
        raise DatasetError(f"split patients {missing[:5]} are not in the inspect report")
    unrecorded = [p for p in patients if not isinstance(cases[p].get("sha256"), dict)]
    if unrecorded:
        raise DatasetError(f"{root / cases[unrecorded[0]]['image']}: inspect.json records no "
                           "checksum for it (written by an older segscale); re-run inspect")
    jobs = [VolumeJob(p, root / cases[p]["image"], root / cases[p]["label"],
                      (cases[p]["sha256"]["image"], cases[p]["sha256"]["label"]))
            for p in patients]
    with ProcessPoolExecutor(max(1, threads)) as pool:
        counts = [len(ix) for ix in pool.map(slice_indices, jobs, [params] * len(jobs),
                                             [split] * len(jobs))]
        writer = SliceStoreWriter(out, sum(counts), params.size, len(params.channels),
                                  params.image_dtype)
        rows, volumes, sources = [], {}, []
        pixel_counts = np.zeros(params.n_classes, dtype=np.int64)
        try:
            start = 0
            results = pool.map(process_volume, jobs, [params] * len(jobs),
                               [split] * len(jobs))
            for job, res in tqdm(zip(jobs, results), total=len(jobs), desc=f"slice {split}",
                                 unit="vol"):
                writer.write(start, res["images"], res["labels"])
                start += len(res["indices"])
                pixel_counts += np.bincount(res["labels"].ravel(), minlength=params.n_classes)
                rows += [{"patient": job.patient, "slice": int(z),
                          "image": cases[job.patient]["image"],
                          "label": cases[job.patient]["label"]} for z in res["indices"]]
                volumes[job.patient] = {"shape": res["shape"], "affine": res["affine"],
                                        "spacing": res["spacing"],
                                        "slices": [int(z) for z in res["indices"]],
                                        "image": cases[job.patient]["image"],
                                        "label": cases[job.patient]["label"]}
                sources += [{"file": cases[job.patient][k], "sha256": res["sha256"][k]}
                            for k in ("image", "label")]
            manifest = {
                "kind": "slice-store", "dataset": params.name, "split": split,
                "count": len(rows), "n_classes": params.n_classes,
                "class_names": params.names_of_classes,
                "image_shape": [*params.size, len(params.channels)],
                "image_dtype": params.image_dtype, "patients": patients,
                "volumes": volumes, "params": {**params.to_dict(), "axis": params.slices.axis},
                "selection": slicing.describe_selection(params.slices, split),
                "sources": sources, "class_pixel_counts": pixel_counts.tolist(),
                "environment": describe_environment(),
            }
            writer.commit(pd.DataFrame(rows, columns=["patient", "slice", "image", "label"]),
                          manifest)
        except BaseException:
            writer.abort()
            raise
    return manifest


def build_parser():
    parser = cli.parser("segscale.data.build", __doc__)
    parser.add_argument("--name", required=True, help="dataset name in the config")
    parser.add_argument("--params", required=True, help="the dataset's config section as JSON")
    parser.add_argument("--inspect", required=True, help="inspect.json of the dataset")
    parser.add_argument("--split-file", required=True, help="split.json of the dataset")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--out", required=True, help="store directory to write")
    parser.add_argument("--threads", type=int, default=1, help="volumes processed at once")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()
    try:
        params = DatasetParams.from_mapping(args.name, json.loads(args.params))
        manifest = build_store(params, read_json(args.inspect), read_json(args.split_file),
                               args.split, args.out, args.threads)
    except (DatasetError, ValueError, OSError, KeyError) as err:
        log.error("cannot build the %s store: %s", args.split, err)
        return 1
    except Exception as err:  # e.g. a worker process that died: a message, not a traceback
        log.error("cannot build the %s store: %s: %s", args.split, type(err).__name__, err)
        return 1
    log.info("%s: %d slices from %d volumes; class pixels %s", args.out, manifest["count"],
             len(manifest["patients"]), manifest["class_pixel_counts"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
