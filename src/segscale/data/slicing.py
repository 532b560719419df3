"""Pure transforms from one 3D volume to normalised, resized 2D slices.

Conventions (shared with evaluation's reassembly, see docs/formats.md): slice ``z`` is
``np.take(volume, z, axis=axis)`` with the two remaining axes in their original order;
resizing samples pixel centres (``(i + 0.5) * in / out - 0.5``), linear for images and
nearest neighbour for labels, so an image and its label stay aligned at any size.
"""

from __future__ import annotations

import numpy as np

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
    if raw.dtype.kind not in "iub" or not (raw.flags.c_contiguous or raw.flags.f_contiguous):
        return lut[raw.astype(np.intp)]
    return _lookup(lut, raw)


_LUT_CHUNK = 1 << 16  # indices per take/bincount: the intp copy numpy makes stays in cache


def _lookup(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]`` for a C- or Fortran-contiguous integer ``index``, chunk by chunk."""
    out = np.empty_like(index, dtype=table.dtype)  # same memory order: flat views line up
    flat, flat_out = index.ravel(order="K"), out.ravel(order="K")
    for start in range(0, flat.size, _LUT_CHUNK):
        np.take(table, flat[start:start + _LUT_CHUNK], out=flat_out[start:start + _LUT_CHUNK])
    return out


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
        chan = volume[..., c]
        out[..., c] = normalise_planes(chan, chan, params)
    return out


def normalise_planes(channel: np.ndarray, planes: np.ndarray,
                     params: NormaliseParams) -> np.ndarray:
    """``planes`` (any part of ``channel``) normalised with the statistics of all of
    ``channel``, as float32: what :func:`normalise` gives for those voxels.

    Integer channels of at most 16 bits (MSD volumes) take a fast path: the statistics come
    from one histogram and the transform is a lookup table over every possible value, the
    same elementwise arithmetic applied once per value instead of once per voxel; means and
    standard deviations are then exact sums rather than pairwise float sums, which can move
    a result by one float32 unit in the last place. Other dtypes run the direct formulas.
    """
    if _small_int(channel.dtype):
        return _normalise_by_table(channel, planes, params)
    stats = _channel_stats(channel.astype(np.float32), params)
    chan = planes.astype(np.float32)
    mask = chan != 0 if params.mask == "nonzero" else np.ones(chan.shape, bool)
    return _apply_stats(chan, mask, stats, params).astype(np.float32, copy=False)


def _small_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu" and dtype.itemsize <= 2


def _channel_stats(chan: np.ndarray, params: NormaliseParams) -> tuple | None:
    """``(clip, shift, scale)`` of a float32 channel; None when its mask is empty."""
    mask = chan != 0 if params.mask == "nonzero" else np.ones(chan.shape, bool)
    values = chan[mask]
    if values.size == 0:
        return None
    clip = None
    if params.clip_percentiles is not None:
        clip = tuple(np.percentile(values, params.clip_percentiles))
        values = np.clip(values, *clip)
    shift = scale = None
    if params.method == "zscore":
        shift, scale = values.mean(), values.std()
    elif params.method == "minmax":
        shift, scale = values.min(), values.max() - values.min()
    return clip, shift, scale


def _apply_stats(chan: np.ndarray, mask: np.ndarray, stats: tuple | None,
                 params: NormaliseParams) -> np.ndarray:
    """The elementwise part of :func:`normalise` (float32 ``chan``; float64 once clipped)."""
    if stats is None:
        return np.zeros(chan.shape, np.float32)
    clip, shift, scale = stats
    if clip is not None:
        chan = np.clip(chan, *clip)
    if params.method in ("zscore", "minmax"):
        chan = (chan - shift) / scale if scale > 0 else np.zeros_like(chan)
    return np.where(mask, chan, 0.0)


def _normalise_by_table(channel: np.ndarray, planes: np.ndarray,
                        params: NormaliseParams) -> np.ndarray:
    size = channel.dtype.itemsize
    unsigned = np.dtype(f"u{size}")
    n_codes = 1 << (8 * size)
    # codes: the bits read as unsigned; ``order[k]`` is the code of the k-th smallest value
    offset = 0 if channel.dtype.kind == "u" else -(n_codes >> 1)
    order = np.arange(n_codes) ^ (0 if offset == 0 else n_codes >> 1)
    flat = channel.ravel(order="K").view(unsigned)
    counts = np.zeros(n_codes, np.int64)
    for start in range(0, flat.size, _LUT_CHUNK):
        counts += np.bincount(flat[start:start + _LUT_CHUNK], minlength=n_codes)
    counts = counts[order]
    values = (np.arange(n_codes) + offset).astype(np.float32)  # ascending, exact
    in_mask = values != 0 if params.mask == "nonzero" else np.ones(n_codes, bool)
    counts[~in_mask] = 0
    by_value = _apply_stats(values, in_mask, _stats_from_counts(values, counts, params),
                            params).astype(np.float32)
    table = np.empty_like(by_value)
    table[order] = by_value
    return _lookup(table, np.ascontiguousarray(planes).view(unsigned))


def _stats_from_counts(values: np.ndarray, counts: np.ndarray,
                       params: NormaliseParams) -> tuple | None:
    """:func:`_channel_stats` of the voxels whose (float32, ascending) ``values`` occur
    ``counts`` times: percentiles exactly as ``np.percentile`` (linear), moments as sums."""
    n = int(counts.sum())
    if n == 0:
        return None
    present = counts > 0
    vals, cnt = values[present], counts[present]
    clip = None
    if params.clip_percentiles is not None:
        clip = _percentiles(vals, np.cumsum(cnt), n, params.clip_percentiles)
        vals = np.clip(vals, *clip)
    shift = scale = None
    if params.method == "zscore":
        wide = vals.astype(np.float64)
        mean = float(np.dot(cnt, wide)) / n
        dev = wide - mean
        std = np.sqrt(float(np.dot(cnt, dev * dev)) / n)
        shift, scale = vals.dtype.type(mean), vals.dtype.type(std)
    elif params.method == "minmax":
        shift, scale = vals.min(), vals.max() - vals.min()
    return clip, shift, scale


def _percentiles(vals: np.ndarray, cum: np.ndarray, n: int, q) -> tuple:
    """``np.percentile`` (method ``linear``) of the sorted values ``vals`` repeated to
    cumulative counts ``cum``, reproducing its index and interpolation arithmetic."""
    virtual = (n - 1) * np.true_divide(np.asarray(q, dtype=np.float64), 100)
    prev = np.floor(virtual)
    gamma = virtual - prev
    below = np.clip(prev, 0, n - 1).astype(np.intp)
    above = np.clip(prev + 1, 0, n - 1).astype(np.intp)
    a = vals[np.searchsorted(cum, below, side="right")]
    b = vals[np.searchsorted(cum, above, side="right")]
    diff = b - a
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return tuple(np.float64(v) for v in out)


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources and weight of linear resampling of one axis at pixel centres, the edges
    replicated: output ``i`` is ``(1 - w) * x[lo] + w * x[hi]``."""
    coord = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(coord).astype(np.intp)
    return lo, np.minimum(lo + 1, n_in - 1), coord - lo


def resize_stack(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Linear resize of every (h, w) plane of an (n, h, w) stack to ``size``, as float32.

    The same sampling as :func:`resize_image`, done separably on the whole stack (rows, then
    columns, in float64): two gathers and two weighted sums instead of a 2D spline per
    plane; equal to ``scipy.ndimage.map_coordinates(order=1, mode="nearest")`` up to the
    rounding of the last float32 bit.
    """
    size = tuple(int(s) for s in size)
    if stack.shape[1:3] == size:
        return stack.astype(np.float32, copy=True)
    ylo, yhi, wy = _linear_taps(stack.shape[1], size[0])
    xlo, xhi, wx = _linear_taps(stack.shape[2], size[1])
    wy = wy[:, None]
    rows = stack[:, ylo] * (1 - wy) + stack[:, yhi] * wy
    out = rows[:, :, xlo] * (1 - wx) + rows[:, :, xhi] * wx
    return out.astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Linear resize of a 2D (h, w) or (h, w, c) image to ``size``, edges replicated."""
    size = tuple(int(s) for s in size)
    if image.shape[:2] == size:
        return image.astype(np.float32, copy=True)
    if image.ndim == 2:
        return resize_stack(image[np.newaxis], size)[0]
    return np.moveaxis(resize_stack(np.moveaxis(image, -1, 0), size), 0, -1)


def _nearest_taps(n_in: int, n_out: int) -> np.ndarray:
    return np.clip(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(int), 0,
                   n_in - 1)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2D label map: no new label values ever appear."""
    size = tuple(int(s) for s in size)
    if label.shape == size:
        return label.copy()
    idx = [_nearest_taps(i, o) for i, o in zip(label.shape, size)]
    return label[np.ix_(*idx)]


def resize_label_stack(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`resize_label` of every plane of an (n, h, w) stack."""
    size = tuple(int(s) for s in size)
    if stack.shape[1:3] == size:
        return stack.copy()
    ys, xs = (_nearest_taps(i, o) for i, o in zip(stack.shape[1:3], size))
    return stack[:, ys[:, None], xs[None, :]]


def slice_volume(image: np.ndarray, label: np.ndarray, indices: np.ndarray, axis: int,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cut (x, y, z, c) ``image`` and (x, y, z) ``label`` at ``indices`` and resize.

    Plane ``z`` equals ``np.take(volume, z, axis=axis)``; indexing a moved-axis view instead
    is ~30x faster on the Fortran-ordered arrays nibabel returns.

    Returns:
        images (n, H, W, c) float32 and labels (n, H, W) uint8.
    """
    indices = np.asarray(indices, dtype=np.intp)
    planes = np.moveaxis(image, axis, 0)[indices]
    images = np.empty((len(indices), *(int(s) for s in size), image.shape[-1]), np.float32)
    for c in range(image.shape[-1]):
        images[..., c] = resize_stack(planes[..., c], size)
    return images, _label_planes(label, indices, axis, size)


def _label_planes(label: np.ndarray, indices: np.ndarray, axis: int,
                  size: tuple[int, int]) -> np.ndarray:
    planes = np.moveaxis(label, axis, 0)[indices]
    return resize_label_stack(planes, size).astype(np.uint8, copy=False)


def normalise_and_slice(data: np.ndarray, label: np.ndarray, indices: np.ndarray,
                        channels: tuple[int, ...], params: NormaliseParams, axis: int,
                        size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``slice_volume(normalise(select_channels(data, channels), params), label, ...)``,
    without normalising (or copying) the planes that are not kept: statistics come from each
    whole channel, the transform is applied to the kept planes only.

    Raises:
        ValueError: as :func:`select_channels`.
    """
    select_channels(data[(slice(0, 1),) * min(3, data.ndim)], channels)  # checks only
    vol = data[..., np.newaxis] if data.ndim == 3 else data
    indices = np.asarray(indices, dtype=np.intp)
    images = np.empty((len(indices), *(int(s) for s in size), len(channels)), np.float32)
    for j, c in enumerate(channels):
        chan = vol[..., c]
        planes = np.moveaxis(chan, axis, 0)[indices]
        images[..., j] = resize_stack(normalise_planes(chan, planes, params), size)
    return images, _label_planes(label, indices, axis, size)
