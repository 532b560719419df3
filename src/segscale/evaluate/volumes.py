"""Test volumes from their 2D slices: where each patient's slices sit in the store and how
they go back into the source geometry (the inverse of the data stage's slicing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segscale.data.slicing import resize_label
from segscale.data.store import SliceStore


def reassemble(pred_slices: np.ndarray, slice_indices: Sequence[int], axis: int,
               volume_shape: Sequence[int]) -> np.ndarray:
    """Put 2D label slices back into a 3D volume (inverse of the data stage's slicing).

    Slice ``k`` is resized to the in-plane shape with
    :func:`segscale.data.slicing.resize_label` (nearest neighbour, pixel-centre sampling)
    and written at ``np.take(volume, slice_indices[k], axis)``; planes not listed stay 0
    (background).

    Args:
        pred_slices: (n, H, W) label maps.
        slice_indices: n distinct indices along ``axis``, any order.
        axis: the slicing axis, 0..2.
        volume_shape: the source volume's spatial shape (3 ints).

    Returns:
        Array of ``volume_shape`` with ``pred_slices``'s dtype.

    Raises:
        ValueError: not (n, H, W) slices, a count/index mismatch, repeated or out-of-range
            indices, a bad axis or a non-3D ``volume_shape``.
    """
    pred_slices = np.asarray(pred_slices)
    shape = tuple(int(s) for s in volume_shape)
    idx = np.asarray(slice_indices, dtype=np.int64).reshape(-1)
    if len(shape) != 3:
        raise ValueError(f"volume_shape must have 3 dimensions, got {list(shape)}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if pred_slices.ndim != 3:
        raise ValueError(f"expected (n, H, W) slices, got shape {pred_slices.shape}")
    if len(idx) != len(pred_slices):
        raise ValueError(f"{len(pred_slices)} slices but {len(idx)} slice indices")
    if idx.size and (idx.min() < 0 or idx.max() >= shape[axis]):
        raise ValueError(f"slice indices span [{idx.min()}, {idx.max()}], volume has "
                         f"{shape[axis]} planes along axis {axis}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError("slice indices repeat: two predictions for one plane")
    in_plane = tuple(s for a, s in enumerate(shape) if a != axis)
    out = np.zeros(shape, dtype=pred_slices.dtype)
    planes = np.moveaxis(out, axis, 0)  # a view: planes[z] is np.take(out, z, axis)
    for z, sl in zip(idx, pred_slices):
        planes[z] = resize_label(sl, in_plane)
    return out


@dataclass(frozen=True)
class PatientSlices:
    """Where one patient's slices are in the store and where they go back in its volume."""

    patient: str
    rows: np.ndarray  # store rows, ordered by slice index
    slices: np.ndarray  # plane indices along the slicing axis
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray


def patient_layout(store: SliceStore) -> list[PatientSlices]:
    """Each test patient's rows and source geometry, from ``index.csv`` and the manifest.

    Raises:
        ValueError: a key missing from the manifest, or a patient of ``index.csv`` without
            a ``volumes`` entry (messages name the store).
    """
    manifest = store.manifest
    where = store.directory / "manifest.json"
    for key in ("volumes", "params"):
        if key not in manifest:
            raise ValueError(f"{where}: key '{key}' missing")
    volumes = manifest["volumes"]
    patients = list(dict.fromkeys(store.index["patient"].astype(str)))
    out = []
    col_patient = store.index["patient"].astype(str).to_numpy()
    col_slice = store.index["slice"].to_numpy()
    for patient in patients:
        if patient not in volumes:
            raise ValueError(f"{where}: patient {patient} of index.csv has no 'volumes' entry")
        vol = volumes[patient]
        try:
            shape = tuple(int(s) for s in vol["shape"][:3])
            affine = np.asarray(vol["affine"], dtype=np.float64)
            spacing = tuple(float(s) for s in vol["spacing"][:3])
        except KeyError as err:
            raise ValueError(f"{where}: volumes.{patient} lacks {err}") from None
        if affine.shape != (4, 4) or len(shape) != 3:
            raise ValueError(f"{where}: volumes.{patient} needs a 3D shape and a 4x4 affine")
        rows = np.flatnonzero(col_patient == patient)
        order = np.argsort(col_slice[rows], kind="stable")
        out.append(PatientSlices(patient, rows[order], col_slice[rows][order].astype(np.int64),
                                 shape, spacing, affine))
    return out


def require_whole_volumes(store: SliceStore, layout: Sequence[PatientSlices],
                          axis: int) -> None:
    """Every patient of ``layout`` has each plane along ``axis`` exactly once in the store.

    The data stage stores every plane of every test volume; a store that lacks planes would
    score partial volumes (planes never predicted count as background), so it is refused.

    Raises:
        ValueError: a patient with missing or repeated planes (names the store).
    """
    for pat in layout:
        depth = pat.shape[axis]
        if len(pat.slices) != depth or not np.array_equal(pat.slices, np.arange(depth)):
            raise ValueError(
                f"{store.directory}: patient {pat.patient} has {len(pat.slices)} stored planes "
                f"for the {depth} planes along axis {axis} of its volume; test stores hold "
                "every plane, this one was built before whole-volume test stores (or is not "
                "a test store): rebuild it")


def store_axis(store: SliceStore) -> int:
    params = store.manifest.get("params", {})
    axis = params.get("axis", params.get("slices", {}).get("axis"))
    if axis is None:
        raise ValueError(f"{store.directory / 'manifest.json'}: params.axis missing")
    return int(axis)
