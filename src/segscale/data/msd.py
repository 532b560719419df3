"""Reading Medical Segmentation Decathlon tasks: ``dataset.json`` and its volumes.

NIfTI goes through nibabel; anything else SimpleITK reads (NRRD, MHA, ...), e.g. the LASC
challenge originals, goes through SimpleITK and is brought to nibabel's conventions (array
axes x, y, z[, channel]; RAS affine), so later stages never care where a volume came from.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NIFTI_SUFFIXES = (".nii", ".nii.gz")


class DatasetError(ValueError):
    """A dataset problem, with the offending file or key named in the message."""


@dataclass(frozen=True)
class Case:
    """One labelled training volume as listed in ``dataset.json``."""

    patient: str
    image: str  # path relative to the task root, as in dataset.json
    label: str


@dataclass(frozen=True)
class Volume:
    """A loaded volume: voxel array (x, y, z[, c]), 4x4 RAS affine and voxel spacing in mm."""

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]


def patient_id(path: str) -> str:
    """``./imagesTr/BRATS_001.nii.gz`` -> ``BRATS_001`` (any reader suffix stripped)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".nii.bz2"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def read_dataset_json(root: str | os.PathLike) -> dict:
    """Load and check ``<root>/dataset.json``.

    Raises:
        DatasetError: missing file, invalid JSON, or missing/ill-typed required keys.
    """
    import json

    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DatasetError(f"{path}: dataset.json not found (is {root} an MSD task folder?)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from None
    for key, kind in (("labels", dict), ("training", list)):
        if not isinstance(meta.get(key), kind):
            raise DatasetError(f"{path}: key '{key}' missing or not a {kind.__name__}")
    for i, entry in enumerate(meta["training"]):
        if not isinstance(entry, dict) or not {"image", "label"} <= set(entry):
            raise DatasetError(f"{path}: training[{i}] must have 'image' and 'label'")
    return meta


def declared_labels(meta: dict) -> list[int]:
    """The label values ``dataset.json`` declares, sorted."""
    return sorted(int(k) for k in meta["labels"])


def training_cases(meta: dict) -> list[Case]:
    """Labelled cases in ``dataset.json`` order."""
    return [Case(patient_id(e["image"]), e["image"], e["label"]) for e in meta["training"]]


def resolve(root: str | os.PathLike, relative: str) -> Path:
    """A dataset.json path (``./imagesTr/x.nii.gz``) under the task root."""
    return Path(root) / relative


def load_volume(path: str | os.PathLike) -> Volume:
    """Read one volume fully into memory.

    Raises:
        DatasetError: missing, unreadable, truncated or corrupt file, naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        if path.name.endswith(NIFTI_SUFFIXES):
            return _load_nibabel(path)
        return _load_simpleitk(path)
    except DatasetError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: truncated or corrupt gzip data ({err})") from None
    except Exception as err:  # readers raise many types for a bad file; name the file
        raise DatasetError(f"{path}: cannot read volume ({type(err).__name__}: {err})") from None


def _load_nibabel(path: Path) -> Volume:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return Volume(data, np.asarray(img.affine, dtype=float), zooms)


def _load_simpleitk(path: Path) -> Volume:
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)  # (z, y, x) or (t, z, y, x), components last if vector
    dim = img.GetDimension()
    data = np.transpose(arr, tuple(reversed(range(dim))) + tuple(range(dim, arr.ndim)))
    # A 4D image (channels as the 4th axis, as MSD stores BRATS) has a 4x4 direction; the
    # affine only takes its spatial 3x3 part.
    spatial = min(dim, 3)
    spacing = np.array(img.GetSpacing(), dtype=float)[:spatial]
    direction = np.array(img.GetDirection(), dtype=float).reshape(dim, dim)[:spatial, :spatial]
    affine = np.eye(4)
    affine[:spatial, :spatial] = direction * spacing
    affine[:spatial, 3] = img.GetOrigin()[:spatial]
    affine[:2] *= -1  # ITK is LPS, NIfTI/nibabel RAS
    return Volume(data, affine, tuple(float(s) for s in spacing))
