"""Deterministic demo datasets in the exact MSD layout, for tests and the laptop demo.

``brats``: 4D (x, y, z, 4) volumes, channels FLAIR/T1w/T1gd/T2w, nested tumour labels
(1 edema ⊃ 2 non-enhancing core ⊃ 3 enhancing rim, as in Task01_BrainTumour);
``heart``: 3D mono-modal volumes with one label (left atrium, as in Task02_Heart).
Headers are realistic: oblique, flipped affines with an origin, anisotropic voxels and a
non-square in-plane grid, so any axis or orientation mix-up downstream shows up.

CLI: ``python -m segscale.data.demo --kind brats --out results/demo/demo-brats``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segscale import cli
from segscale.fileio import atomic_path, write_text
from segscale.logs import configure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSpec:
    """Shape and header of one demo kind."""

    prefix: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    modalities: tuple[str, ...]
    labels: tuple[str, ...]
    task: str


SPECS = {
    "brats": DemoSpec("BRATS", (56, 48, 32), (1.0, 1.0, 1.5), ("FLAIR", "T1w", "T1gd", "T2w"),
                      ("background", "edema", "non-enhancing tumor", "enhancing tumour"),
                      "BrainTumour (segscale demo)"),
    "heart": DemoSpec("la", (64, 52, 20), (1.25, 1.25, 2.7), ("MRI",),
                      ("background", "left atrium"), "Heart (segscale demo)"),
}

# Mean intensity of brain / edema / non-enhancing core / enhancing rim, per BRATS channel.
_BRATS_CONTRAST = np.array([
    [0.50, 1.00, 0.80, 0.85],  # FLAIR: edema bright
    [0.60, 0.50, 0.40, 0.45],  # T1w
    [0.60, 0.50, 0.40, 1.25],  # T1gd: enhancing rim bright
    [0.50, 0.90, 1.00, 0.80],  # T2w
])


def demo_affine(spacing: tuple[float, float, float], seed: int) -> np.ndarray:
    """An oblique RAS affine: x and y flipped (as many scanners store), ~5° tilt, offset."""
    angle = np.deg2rad(4.0 + seed % 3)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)],
                     [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = tilt @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(spacing)
    affine[:3, 3] = [90.0 + seed, 120.0 - seed, -60.0]
    return affine


def _grid(shape: tuple[int, int, int], spacing) -> tuple[np.ndarray, ...]:
    """Voxel-centre coordinates in mm, centred on the volume."""
    return tuple((np.arange(n) - (n - 1) / 2) * s
                 for n, s in zip(shape, spacing))


def _ellipsoid(coords, centre, radii) -> np.ndarray:
    x, y, z = coords
    return (((x[:, None, None] - centre[0]) / radii[0]) ** 2
            + ((y[None, :, None] - centre[1]) / radii[1]) ** 2
            + ((z[None, None, :] - centre[2]) / radii[2]) ** 2)


def brats_case(spec: DemoSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic brain: (x, y, z, 4) int16 intensities and nested uint8 labels."""
    coords = _grid(spec.shape, spec.spacing)
    half = np.array([n * s / 2 for n, s in zip(spec.shape, spec.spacing)])
    brain = _ellipsoid(coords, (0, 0, 0), half * rng.uniform(0.78, 0.9, 3)) <= 1
    centre = rng.uniform(-0.3, 0.3, 3) * half
    r_edema = half.min() * rng.uniform(0.35, 0.5) * rng.uniform(0.85, 1.15, 3)
    d = _ellipsoid(coords, centre, r_edema)
    label = np.zeros(spec.shape, np.uint8)
    label[(d <= 1) & brain] = 1
    label[(d <= 0.55 ** 2) & brain] = 3  # enhancing rim around ...
    label[(d <= 0.35 ** 2) & brain] = 2  # ... a non-enhancing core
    tissue = np.where(brain, 0, -1) + np.where(label > 0, label, 0)  # -1 outside, 0 brain
    x, y, _ = coords
    bias = 1 + 0.15 * np.sin(x[:, None, None] / 25 + rng.uniform(0, 6)) * np.cos(
        y[None, :, None] / 30)
    channels = []
    for contrast in _BRATS_CONTRAST:
        mean = np.where(tissue >= 0, contrast[np.clip(tissue, 0, 3)], 0.0)
        img = (mean * bias + rng.normal(0, 0.04, spec.shape)) * brain
        channels.append(np.clip(img * 800, 0, None))
    return np.stack(channels, axis=-1).astype(np.int16), label


def heart_case(spec: DemoSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic chest: (x, y, z) int16 MRI with a bright left-atrium blob labelled 1."""
    coords = _grid(spec.shape, spec.spacing)
    half = np.array([n * s / 2 for n, s in zip(spec.shape, spec.spacing)])
    body = _ellipsoid(coords, (0, 0, 0), half * np.array([0.95, 0.85, 1.3])) <= 1
    centre = rng.uniform(-0.25, 0.25, 3) * half * np.array([1, 1, 0.4])
    radii = np.array([14.0, 11.0, 12.0]) * rng.uniform(0.8, 1.25, 3)
    atrium = (_ellipsoid(coords, centre, radii) <= 1) & body
    img = np.where(body, 0.35, 0.0) + 0.45 * atrium
    img = (img + rng.normal(0, 0.05, spec.shape)) * body
    return np.clip(img * 1000, 0, None).astype(np.int16), atrium.astype(np.uint8)


def generate(kind: str, out: str | Path, n_train: int = 10, n_test: int = 2,
             seed: int = 0) -> Path:
    """Write a demo task folder; ``dataset.json`` is written last, atomically.

    Returns:
        The path of ``dataset.json``.

    Raises:
        ValueError: unknown ``kind`` or non-positive counts.
    """
    import nibabel as nib

    if kind not in SPECS:
        raise ValueError(f"unknown demo kind {kind!r}; expected one of {sorted(SPECS)}")
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    spec, out = SPECS[kind], Path(out)
    make = brats_case if kind == "brats" else heart_case
    training, test = [], []
    for i in range(n_train + n_test):
        rng = np.random.default_rng([seed, i])
        image, label = make(spec, rng)
        name = f"{spec.prefix}_{i + 1:03d}.nii.gz"
        affine = demo_affine(spec.spacing, i)
        folder = "imagesTr" if i < n_train else "imagesTs"
        for sub, data in ((folder, image), ("labelsTr", label)):
            if sub == "labelsTr" and i >= n_train:
                continue
            nii = nib.Nifti1Image(data, affine)
            nii.header.set_xyzt_units("mm", "sec")
            nii.set_qform(affine, code=1)
            nii.set_sform(affine, code=1)
            with atomic_path(out / sub / name, suffix=".nii.gz") as tmp:
                nib.save(nii, str(tmp))
        if i < n_train:
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            test.append(f"./imagesTs/{name}")
        log.info("wrote %s", name)
    meta = {
        "name": f"demo-{kind}", "description": f"segscale synthetic {spec.task}",
        "reference": "generated by segscale.data.demo", "licence": "CC-BY-SA 4.0",
        "release": "1.0", "tensorImageSize": "4D" if kind == "brats" else "3D",
        "modality": {str(i): m for i, m in enumerate(spec.modalities)},
        "labels": {str(i): name for i, name in enumerate(spec.labels)},
        "numTraining": len(training), "numTest": len(test),
        "training": training, "test": test,
    }
    write_text(out / "dataset.json", json.dumps(meta, indent=4) + "\n")
    return out / "dataset.json"


def build_parser():
    parser = cli.parser("segscale.data.demo", __doc__)
    parser.add_argument("--kind", required=True, choices=sorted(SPECS))
    parser.add_argument("--out", required=True, help="task folder to create")
    parser.add_argument("--train", type=int, default=10, help="labelled volumes")
    parser.add_argument("--test", type=int, default=2, help="unlabelled imagesTs volumes")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure()
    try:
        path = generate(args.kind, args.out, args.train, args.test, args.seed)
    except (ValueError, OSError) as err:
        log.error("%s", err)
        return 1
    log.info("demo dataset ready: %s", path)
    return 0



def disk_store(directory: str | Path, n: int, size: int = 32, seed: int = 0) -> Path:
    """A ready slice store of ``n`` noisy ``size`` x ``size`` slices, each with a disk
    (class 1) around a core (class 2): 3 classes, learnable in a few epochs. For training
    tests and benchmarks that need a store without running the data stage."""
    import pandas as pd

    from segscale.data.store import SliceStoreWriter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        r = int(rng.integers(max(2, size // 10), max(3, size // 5) + 1))
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        labels[i][d2 <= r * r] = 1
        labels[i][d2 <= (r / 2) ** 2] = 2
        images[i, ..., 0] += labels[i]
    directory = Path(directory)
    writer = SliceStoreWriter(directory, n, (size, size), 1, "float32")
    writer.write(0, images, labels)
    index = pd.DataFrame({"patient": [f"disk_{i // 8:03d}" for i in range(n)],
                          "slice": np.arange(n) % 8, "image": "none", "label": "none"})
    writer.commit(index, {"dataset": "disks", "split": directory.name, "count": n,
                          "n_classes": 3, "class_names": ["background", "disk", "core"],
                          "image_shape": [size, size, 1]})
    return directory


if __name__ == "__main__":
    sys.exit(main())
