"""Pure transforms from one 3D volume to normalised, resized 2D slices.

Conventions (shared with evaluation's reassembly, see docs/formats.md): slice ``z`` is
``np.take(volume, z, axis=axis)`` with the two remaining axes in their original order;
resizing samples pixel centres (``(i + 0.5) * in / out - 0.5``), linear for images and
nearest neighbour for labels, so an image and its label stay aligned at any size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from segscale.data.params import NormaliseParams, SliceParams


def select_channels(data: np.ndarray, channels: tuple[int, ...]) -> np.ndarray:
    """A (x, y, z, c) volume with only ``channels``; a 3D volume counts as one channel.

    Raises:
        ValueError: a channel index the volume does not have.
    """
    vol = data[..., np.newaxis] if data.ndim == 3 else data
    if vol.ndim != 4:
        raise ValueError(f"expected a 3D or 4D volume, got {data.ndim}D")
    missing = [c for c in channels if c >= vol.shape[3]]
    if missing:
        raise ValueError(f"channel(s) {missing} requested, volume has {vol.shape[3]}")
    return vol[..., list(channels)]


def map_labels(label: np.ndarray, label_map: tuple[int, ...]) -> np.ndarray:
    """Raw label values to class indices through the lookup table ``label_map``.

    Raises:
        ValueError: a raw label value with no entry in ``label_map``.
    """
    lut = np.asarray(label_map, dtype=np.uint8)
    raw = np.asarray(label)
    if raw.size and (raw.min() < 0 or raw.max() >= len(lut)):
        raise ValueError(f"label values span [{raw.min()}, {raw.max()}], label_map covers "
                         f"0..{len(lut) - 1}")
    return lut[raw.astype(np.intp)]


def choose_slices(label: np.ndarray, params: SliceParams) -> np.ndarray:
    """Indices along ``params.axis`` to keep, ascending and distinct.

    Always ``min(count, axis length)`` slices (the thesis takes 70 per volume).
    ``even``: spread evenly over the whole axis. ``labelled``: spread over the extent holding
    any foreground, widened by ``margin`` and clipped to the volume; an extent with fewer
    planes than ``count`` is widened evenly on both sides (shifted inwards at the volume's
    ends) until it has enough. An all-background volume falls back to ``even``.
    """
    length = label.shape[params.axis]
    lo, hi = 0, length - 1
    if params.select == "labelled":
        other = tuple(a for a in range(label.ndim) if a != params.axis)
        present = np.flatnonzero(np.any(label > 0, axis=other))
        if present.size:
            lo = max(0, int(present[0]) - params.margin)
            hi = min(length - 1, int(present[-1]) + params.margin)
            span = hi - lo + 1
            width = max(span, min(params.count, length))
            lo = min(max(0, lo - (width - span) // 2), length - width)
            hi = lo + width - 1
    return np.unique(np.round(np.linspace(lo, hi, min(params.count, hi - lo + 1))).astype(int))


WHOLE_VOLUME_SPLITS = ("test",)
"""Splits whose stores hold every plane: ``slices.count``/``select``/``margin`` (and so the
labels) never decide which planes are scored."""


def choose_planes(label: np.ndarray, params: SliceParams, split: str) -> np.ndarray:
    """Indices along ``params.axis`` that one volume of ``split`` contributes to its store.

    Test volumes give every plane in order, whatever ``count``, ``select`` and ``margin``
    say: a test prediction is scored on whole volumes, and which planes are scored never
    depends on the test labels. Train and val follow :func:`choose_slices`.
    """
    if split in WHOLE_VOLUME_SPLITS:
        return np.arange(label.shape[params.axis])
    return choose_slices(label, params)


def describe_selection(params: SliceParams, split: str) -> str:
    """How :func:`choose_planes` picks the planes of ``split``, for the store's manifest."""
    if split in WHOLE_VOLUME_SPLITS:
        return f"all planes along axis {params.axis} ({split} split)"
    where = ("the whole volume" if params.select == "even" else
             f"the labelled extent plus a margin of {params.margin} on each side")
    return (f"min({params.count}, depth) planes along axis {params.axis}, spread evenly over "
            f"{where}")


def normalise(volume: np.ndarray, params: NormaliseParams) -> np.ndarray:
    """Per-channel intensity normalisation of a (x, y, z, c) volume, as float32.

    Statistics come from the whole volume (not slice by slice), restricted to non-zero voxels
    with ``mask="nonzero"``; voxels outside the mask stay 0 there. A channel whose mask is
    empty or constant becomes all zeros rather than NaN.
    """
    out = np.zeros(volume.shape, dtype=np.float32)
    for c in range(volume.shape[-1]):
        chan = volume[..., c].astype(np.float32)
        mask = chan != 0 if params.mask == "nonzero" else np.ones(chan.shape, bool)
        values = chan[mask]
        if values.size == 0:
            continue
        if params.clip_percentiles is not None:
            lo, hi = np.percentile(values, params.clip_percentiles)
            chan = np.clip(chan, lo, hi)
            values = chan[mask]
        if params.method == "zscore":
            std = values.std()
            chan = (chan - values.mean()) / std if std > 0 else np.zeros_like(chan)
        elif params.method == "minmax":
            span = values.max() - values.min()
            chan = (chan - values.min()) / span if span > 0 else np.zeros_like(chan)
        out[..., c] = np.where(mask, chan, 0.0)
    return out


def _sample_grid(in_shape: tuple[int, int], out_shape: tuple[int, int]) -> np.ndarray:
    axes = [(np.arange(o) + 0.5) * (i / o) - 0.5 for i, o in zip(in_shape, out_shape)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Linear resize of a 2D (h, w) or (h, w, c) image to ``size``, edges replicated."""
    size = tuple(int(s) for s in size)
    if image.shape[:2] == size:
        return image.astype(np.float32, copy=True)
    grid = _sample_grid(image.shape[:2], size)
    if image.ndim == 2:
        return ndimage.map_coordinates(image.astype(np.float32), grid, order=1, mode="nearest")
    return np.stack([ndimage.map_coordinates(image[..., c].astype(np.float32), grid, order=1,
                                             mode="nearest") for c in range(image.shape[2])],
                    axis=-1)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2D label map: no new label values ever appear."""
    size = tuple(int(s) for s in size)
    if label.shape == size:
        return label.copy()
    idx = [np.clip(np.floor((np.arange(o) + 0.5) * (i / o)).astype(int), 0, i - 1)
           for i, o in zip(label.shape, size)]
    return label[np.ix_(*idx)]


def slice_volume(image: np.ndarray, label: np.ndarray, indices: np.ndarray, axis: int,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cut (x, y, z, c) ``image`` and (x, y, z) ``label`` at ``indices`` and resize.

    Plane ``z`` equals ``np.take(volume, z, axis=axis)``; indexing a moved-axis view instead
    is ~30x faster on the Fortran-ordered arrays nibabel returns.

    Returns:
        images (n, H, W, c) float32 and labels (n, H, W) uint8.
    """
    image_planes, label_planes = np.moveaxis(image, axis, 0), np.moveaxis(label, axis, 0)
    images = np.stack([resize_image(image_planes[z], size) for z in indices])
    labels = np.stack([resize_label(label_planes[z], size) for z in indices])
    return images.astype(np.float32), labels.astype(np.uint8)
