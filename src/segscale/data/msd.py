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


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise DatasetError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer_keys(mapping: dict) -> bool:
    return all(isinstance(k, str) and k.strip().isdigit() for k in mapping)


def read_dataset_json(root: str | os.PathLike) -> dict:
    """Load ``<root>/dataset.json`` and check its structure (types, required keys).

    Checks that need the files (counts against the folders, paths, labels in the volumes)
    are :mod:`segscale.data.validate`'s.

    Raises:
        DatasetError: missing or unreadable file, invalid JSON (with its line and column),
            duplicate keys, missing or ill-typed keys; every structural problem, one a line.
    """
    import json

    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DatasetError(f"{path}: dataset.json not found (is {root} an MSD task folder?)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err})") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        meta = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} "
                           f"column {err.colno})") from None
    except DatasetError as err:
        raise DatasetError(f"{path}: not valid dataset JSON ({err})") from None
    except RecursionError:
        raise DatasetError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: must hold a JSON object, not {type(meta).__name__}")
    problems = []
    for key, kind in (("labels", dict), ("training", list)):
        if not isinstance(meta.get(key), kind):
            problems.append(f"{path}: key '{key}' missing or not a {kind.__name__}")
    labels = meta.get("labels")
    if isinstance(labels, dict):
        if not labels:
            problems.append(f"{path}: 'labels' is empty")
        elif not _integer_keys(labels):
            bad = [k for k in labels if not (isinstance(k, str) and k.strip().isdigit())]
            problems.append(f"{path}: 'labels' keys must be non-negative integers, got {bad}")
        elif len({int(k) for k in labels}) != len(labels):
            problems.append(f"{path}: 'labels' declares the same value twice")
    if "modality" in meta:
        modality = meta["modality"]
        if not isinstance(modality, dict) or not modality:
            problems.append(f"{path}: 'modality' must be a non-empty object")
        elif sorted(modality) != [str(i) for i in range(len(modality))]:
            problems.append(f"{path}: 'modality' keys must be 0..{len(modality) - 1}, "
                            f"got {sorted(modality)}")
    for key in ("numTraining", "numTest"):
        if key not in meta:
            problems.append(f"{path}: key '{key}' missing")
        elif not _is_int(meta[key]) or meta[key] < 0:
            problems.append(f"{path}: '{key}' must be a non-negative integer, "
                            f"got {meta[key]!r}")
    for i, entry in enumerate(meta.get("training") if isinstance(meta.get("training"), list)
                              else []):
        if not isinstance(entry, dict) or not {"image", "label"} <= set(entry):
            problems.append(f"{path}: training[{i}] must have 'image' and 'label'")
        elif not all(isinstance(entry[k], str) and entry[k] for k in ("image", "label")):
            problems.append(f"{path}: training[{i}] 'image' and 'label' must be non-empty "
                            "strings")
    test = meta.get("test", [])
    if not isinstance(test, list):
        problems.append(f"{path}: 'test' must be a list")
    else:
        for i, entry in enumerate(test):
            if not (isinstance(entry, str) and entry):
                problems.append(f"{path}: test[{i}] must be a non-empty path string")
    if problems:
        raise DatasetError("\n".join(problems))
    return meta


def declared_labels(meta: dict) -> list[int]:
    """The label values ``dataset.json`` declares, sorted."""
    return sorted(int(k) for k in meta["labels"])


def training_cases(meta: dict) -> list[Case]:
    """Labelled cases in ``dataset.json`` order."""
    return [Case(patient_id(e["image"]), e["image"], e["label"]) for e in meta["training"]]


def unlabelled_images(meta: dict) -> list[str]:
    """Unlabelled test images (``imagesTs``) in ``dataset.json`` order."""
    return list(meta.get("test", []))


def resolve(root: str | os.PathLike, relative: str) -> Path:
    """A dataset.json path (``./imagesTr/x.nii.gz``) under the task root.

    Raises:
        DatasetError: an absolute path, a path whose ``..`` components leave the task folder,
            or one that symbolic links lead out of it; naming the path.
    """
    root = Path(root)
    where = f"{root / 'dataset.json'}: path {relative!r}"
    if Path(relative).is_absolute() or relative.startswith(("/", "\\")) or (
            len(relative) > 1 and relative[1] == ":"):
        raise DatasetError(f"{where} is absolute; paths must be relative to the task folder")
    path = root / relative
    if os.path.normpath(relative).split(os.sep)[0] == os.pardir:
        raise DatasetError(f"{where} leaves the task folder ('..' component)")
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise DatasetError(f"{where} leads out of the task folder through a symbolic link "
                           f"(to {real})")
    return path


def load_volume(path: str | os.PathLike) -> Volume:
    """Read one volume fully into memory.

    Raises:
        DatasetError: missing, unreadable, empty, truncated or corrupt file, naming ``path``
            and the cause.
    """
    path = Path(path)
    if not path.exists():
        cause = "broken symbolic link" if path.is_symlink() else "file not found"
        raise DatasetError(f"{path}: {cause}")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a volume file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise DatasetError(f"{path}: empty file (0 bytes)")
        if path.name.endswith(".gz"):
            with open(path, "rb") as fh:
                if fh.read(2) != b"\x1f\x8b":
                    raise DatasetError(f"{path}: not gzip-compressed although named .gz")
        if path.name.endswith(NIFTI_SUFFIXES):
            _check_nifti_header(path)
            return _load_nibabel(path)
        return _load_simpleitk(path)
    except DatasetError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: truncated or corrupt gzip data ({err})") from None
    except PermissionError as err:
        raise DatasetError(f"{path}: permission denied ({err.strerror})") from None
    except Exception as err:  # readers raise many types for a bad file; name the file
        text = " ".join(str(err).split())
        if "could the file be damaged" in text or ("Expected" in text and "bytes" in text):
            raise DatasetError(f"{path}: truncated voxel data ({text})") from None
        if type(err).__name__ == "HeaderDataError":
            raise DatasetError(f"{path}: invalid NIfTI header ({text})") from None
        raise DatasetError(f"{path}: cannot read volume ({type(err).__name__}: "
                           f"{text[:300]})") from None


def _check_nifti_header(path: Path) -> None:
    """Refuse what nibabel would silently "fix" or misread: size, magic, dims, datatype."""
    import struct

    from nibabel.nifti1 import data_type_codes

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        head = fh.read(540)
    if len(head) < 348:
        raise DatasetError(f"{path}: truncated NIfTI header ({len(head)} bytes, need 348)")
    for order in "<>":
        sizeof_hdr = struct.unpack(f"{order}i", head[:4])[0]
        if sizeof_hdr in (348, 540):
            break
    else:
        raise DatasetError(f"{path}: invalid NIfTI header (sizeof_hdr "
                           f"{struct.unpack('<i', head[:4])[0]}, expected 348 or 540); "
                           "not a NIfTI file")
    if sizeof_hdr == 540:
        if len(head) < 540 or head[4:8] not in (b"n+2\0", b"ni2\0"):
            raise DatasetError(f"{path}: invalid NIfTI-2 header (magic {head[4:8]!r})")
        return
    magic = head[344:348]
    if magic != b"n+1\0":
        raise DatasetError(f"{path}: invalid NIfTI header (magic {magic!r}, expected "
                           "b'n+1\\x00' for a single-file .nii)")
    dim = struct.unpack(f"{order}8h", head[40:56])
    if not 1 <= dim[0] <= 7 or any(d < 1 for d in dim[1:dim[0] + 1]):
        raise DatasetError(f"{path}: invalid NIfTI header (dim {list(dim)})")
    datatype = struct.unpack(f"{order}h", head[70:72])[0]
    if datatype not in data_type_codes.code or datatype == 0:
        raise DatasetError(f"{path}: invalid NIfTI header (unknown datatype code {datatype})")


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
