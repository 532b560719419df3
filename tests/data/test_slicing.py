"""Slicing transforms: hand-computed cases, properties, and image/label alignment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segscale.data import slicing
from segscale.data.params import NormaliseParams, SliceParams


def test_select_channels_3d_counts_as_one_channel():
    vol = np.arange(24).reshape(2, 3, 4)
    out = slicing.select_channels(vol, (0,))
    assert out.shape == (2, 3, 4, 1)
    np.testing.assert_array_equal(out[..., 0], vol)


def test_select_channels_picks_and_orders():
    vol = np.stack([np.full((2, 2, 2), c) for c in range(4)], axis=-1)
    out = slicing.select_channels(vol, (3, 1))
    assert out[0, 0, 0].tolist() == [3, 1]


def test_select_channels_missing_channel_is_named():
    with pytest.raises(ValueError, match=r"channel\(s\) \[4\].*has 4"):
        slicing.select_channels(np.zeros((2, 2, 2, 4)), (4,))


def test_map_labels_whole_tumour():
    raw = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(slicing.map_labels(raw, (0, 1, 1, 1)), [[0, 1], [1, 1]])


def test_map_labels_rejects_unmapped_value():
    with pytest.raises(ValueError, match="label_map covers 0..1"):
        slicing.map_labels(np.array([0, 2]), (0, 1))


@pytest.mark.parametrize(("length", "count", "expected"), [
    (10, 3, [0, 4, 9]),          # linspace(0, 9, 3) = 0, 4.5, 9; 4.5 rounds to even
    (5, 8, [0, 1, 2, 3, 4]),     # more asked than exist: every slice once
    (7, 1, [0]),
])
def test_choose_slices_even(length, count, expected):
    label = np.zeros((2, 2, length), np.uint8)
    got = slicing.choose_slices(label, SliceParams(axis=2, count=count, select="even"))
    assert got.tolist() == expected


@pytest.mark.parametrize(("count", "margin", "expected"), [
    (5, 2, [6, 8, 9, 10, 12]),      # extent 8..10 + margin 2 = 6..12; linspace, half to even
    (7, 0, list(range(6, 13))),     # extent of 3 widened evenly to 7 planes: 6..12
    (50, 0, list(range(20))),       # more asked than the axis has: every plane once
])
def test_choose_slices_labelled_extent(count, margin, expected):
    label = np.zeros((3, 3, 20), np.uint8)
    label[1, 1, 8:11] = 1  # foreground on slices 8, 9, 10
    got = slicing.choose_slices(label, SliceParams(axis=2, count=count, select="labelled",
                                                   margin=margin))
    assert got.tolist() == expected


def test_choose_slices_labelled_widening_shifts_inwards_at_the_edge():
    label = np.zeros((3, 3, 30), np.uint8)
    label[0, 0, 1] = 1
    got = slicing.choose_slices(label, SliceParams(axis=2, count=6, select="labelled", margin=1))
    assert got.tolist() == [0, 1, 2, 3, 4, 5]


def test_choose_slices_empty_label_falls_back_to_even():
    label = np.zeros((3, 3, 9), np.uint8)
    got = slicing.choose_slices(label, SliceParams(axis=2, count=3, select="labelled"))
    assert got.tolist() == [0, 4, 8]


def test_choose_slices_other_axis():
    label = np.zeros((6, 3, 3), np.uint8)
    label[2:4] = 1
    got = slicing.choose_slices(label, SliceParams(axis=0, count=2, select="labelled"))
    assert got.tolist() == [2, 3]


@settings(max_examples=50, deadline=None)
@given(length=st.integers(1, 60), count=st.integers(1, 80), start=st.integers(0, 59),
       size=st.integers(0, 20), margin=st.integers(0, 5))
def test_choose_slices_always_gives_min_count_length(length, count, start, size, margin):
    label = np.zeros((2, 2, length), np.uint8)
    label[0, 0, min(start, length - 1):min(start + size, length)] = 1
    got = slicing.choose_slices(label, SliceParams(axis=2, count=count, select="labelled",
                                                   margin=margin))
    assert len(got) == min(count, length)
    assert got.min() >= 0 and got.max() < length and np.all(np.diff(got) > 0)


@settings(max_examples=50, deadline=None)
@given(shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 40)),
       axis=st.integers(0, 2), count=st.integers(1, 50), select=st.sampled_from(
           ["even", "labelled"]), margin=st.integers(0, 5), seed=st.integers(0, 1000))
def test_choose_planes_test_split_takes_every_plane(shape, axis, count, select, margin, seed):
    """Test volumes give every plane in order whatever count/select/margin and the label
    say; train and val follow :func:`choose_slices`."""
    label = (np.random.default_rng(seed).random(shape) < 0.05).astype(np.uint8)
    params = SliceParams(axis=axis, count=count, select=select, margin=margin)
    got = slicing.choose_planes(label, params, "test")
    assert got.tolist() == list(range(shape[axis]))
    np.testing.assert_array_equal(slicing.choose_planes(np.zeros_like(label), params, "test"),
                                  got)  # the label plays no part
    for split in ("train", "val"):
        np.testing.assert_array_equal(slicing.choose_planes(label, params, split),
                                      slicing.choose_slices(label, params))


def test_describe_selection_names_the_rule_of_each_split():
    params = SliceParams(axis=1, count=7, select="labelled", margin=2)
    assert slicing.describe_selection(params, "test") == "all planes along axis 1 (test split)"
    assert slicing.describe_selection(params, "train") == (
        "min(7, depth) planes along axis 1, spread evenly over the labelled extent plus a "
        "margin of 2 on each side")
    assert slicing.describe_selection(SliceParams(count=3, select="even"), "val") == (
        "min(3, depth) planes along axis 2, spread evenly over the whole volume")


def test_normalise_zscore_over_nonzero_mask():
    vol = np.zeros((4, 4, 4, 1), np.float32)
    vol[1:3, 1:3, 1:3, 0] = np.arange(8).reshape(2, 2, 2) + 10
    out = slicing.normalise(vol, NormaliseParams(method="zscore", mask="nonzero",
                                                 clip_percentiles=None))
    body = out[1:3, 1:3, 1:3, 0]
    assert body.mean() == pytest.approx(0, abs=1e-6)
    assert body.std() == pytest.approx(1, abs=1e-6)
    assert np.count_nonzero(out) == np.count_nonzero(body)  # outside the body stays 0


def test_normalise_constant_channel_gives_zeros_not_nan():
    vol = np.full((3, 3, 3, 2), 5.0)
    out = slicing.normalise(vol, NormaliseParams(method="zscore"))
    assert np.all(out == 0)


def test_normalise_minmax_with_clipping():
    vol = np.arange(1, 101, dtype=np.float32).reshape(1, 1, 100, 1)
    out = slicing.normalise(vol, NormaliseParams(method="minmax", mask="all",
                                                 clip_percentiles=(10, 90)))
    assert out.min() == 0 and out.max() == 1
    assert np.count_nonzero(out == 1) == 10  # 91..100 clipped to the 90th percentile (90.1)


def test_resize_identity_is_exact():
    img = np.random.default_rng(0).random((7, 5, 2))
    np.testing.assert_allclose(slicing.resize_image(img, (7, 5)), img, rtol=1e-6)


def test_resize_label_hand_computed_downsample():
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]], np.uint8)
    np.testing.assert_array_equal(slicing.resize_label(label, (2, 2)), [[0, 1], [2, 3]])


@settings(max_examples=40, deadline=None)
@given(h=st.integers(3, 40), w=st.integers(3, 40), oh=st.integers(8, 48), ow=st.integers(8, 48),
       seed=st.integers(0, 1000))
def test_resize_label_never_invents_values(h, w, oh, ow, seed):
    label = np.random.default_rng(seed).integers(0, 4, (h, w)).astype(np.uint8)
    out = slicing.resize_label(label, (oh, ow))
    assert out.shape == (oh, ow)
    assert set(np.unique(out)) <= set(np.unique(label))


@settings(max_examples=25, deadline=None)
@given(value=st.floats(-100, 100), oh=st.integers(8, 40), ow=st.integers(8, 40))
def test_resize_image_of_constant_is_constant(value, oh, ow):
    out = slicing.resize_image(np.full((11, 6, 1), value, np.float32), (oh, ow))
    np.testing.assert_allclose(out, value, rtol=1e-5, atol=1e-5)


def _computable_volume(shape=(41, 29, 9)):
    """An image whose label is computable from it: label = (image > 0.5) with the image a
    smooth off-centre, anisotropic blob. Non-square in-plane catches transposed axes."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    image = np.exp(-(((x - 0.2) / 0.5) ** 2 + ((y + 0.1) / 0.3) ** 2 + (z / 0.8) ** 2))
    return image[..., None].astype(np.float32), (image > 0.5).astype(np.uint8)


def test_alignment_exact_without_resizing():
    image, label = _computable_volume()
    imgs, labs = slicing.slice_volume(image, label, np.array([2, 4, 6]), axis=2, size=(41, 29))
    np.testing.assert_array_equal(labs, (imgs[..., 0] > 0.5).astype(np.uint8))


@pytest.mark.parametrize("size", [(64, 64), (20, 50), (128, 96)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_alignment_survives_resizing(size, axis):
    image, label = _computable_volume()
    n = image.shape[axis]
    imgs, labs = slicing.slice_volume(image, label, np.arange(n // 3, 2 * n // 3), axis, size)
    predicted = imgs[..., 0] > 0.5
    assert labs.shape == predicted.shape == (len(labs), *size)
    assert labs.sum() > 0
    # Only pixels on the blob's boundary may disagree between linear and nearest sampling.
    disagreement = np.mean(predicted != labs.astype(bool))
    assert disagreement < 0.03, disagreement


# ---------------------------------------------------------------- fast paths vs the formulas
# The data stage normalises integer volumes through a histogram and a lookup table, resizes
# separably and slices only the kept planes; these check it against the direct formulas
# (the implementation before those fast paths), written out here as the reference.


def _reference_normalise(volume, params):
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


def _reference_resize(image, size):
    from scipy import ndimage

    axes = [(np.arange(o) + 0.5) * (i / o) - 0.5 for i, o in zip(image.shape[:2], size)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"))
    return ndimage.map_coordinates(image.astype(np.float32), grid, order=1, mode="nearest")


_DTYPES = st.sampled_from(["int16", "uint16", "int8", "uint8", "int32", "float32"])
_NORMALISE = st.builds(
    NormaliseParams, method=st.sampled_from(["zscore", "minmax", "none"]),
    mask=st.sampled_from(["nonzero", "all"]),
    clip_percentiles=st.sampled_from([None, (0.5, 99.5), (0.0, 100.0), (10.0, 60.0)]))


def _random_volume(seed, dtype, shape, zeros=0.3):
    rng = np.random.default_rng(seed)
    lo = 0 if np.dtype(dtype).kind == "u" else -60
    hi = 120 if np.dtype(dtype).itemsize == 1 else 3000
    vol = rng.integers(lo, hi, shape).astype(dtype)
    vol[rng.random(shape) < zeros] = 0
    return np.asfortranarray(vol) if seed % 2 else vol


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=_DTYPES, params=_NORMALISE,
       shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 7),
                       st.integers(1, 3)),
       zeros=st.sampled_from([0.0, 0.3, 1.0]))
def test_normalise_matches_the_direct_formulas(seed, dtype, params, shape, zeros):
    vol = _random_volume(seed, dtype, shape, zeros)
    got, want = slicing.normalise(vol, params), _reference_normalise(vol, params)
    assert got.dtype == want.dtype == np.float32
    # exact but for the last float32 bit (exact sums vs numpy's pairwise ones)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 500), dtype=_DTYPES,
       q=st.tuples(st.floats(0, 100), st.floats(0, 100)))
def test_percentiles_from_counts_equal_numpy(seed, n, dtype, q):
    values = _random_volume(seed, dtype, (n,), 0.2).astype(np.float32)
    uniq, counts = np.unique(values, return_counts=True)
    got = slicing._percentiles(uniq, np.cumsum(counts), n, q)
    np.testing.assert_array_equal(got, np.percentile(values, q))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(1, 30), w=st.integers(1, 30),
       oh=st.integers(1, 40), ow=st.integers(1, 40))
def test_resize_image_matches_map_coordinates(seed, h, w, oh, ow):
    image = np.random.default_rng(seed).normal(0, 50, (h, w)).astype(np.float32)
    got = slicing.resize_image(image, (oh, ow))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference_resize(image, (oh, ow)), rtol=1e-6, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=_DTYPES, params=_NORMALISE,
       axis=st.integers(0, 2), size=st.tuples(st.integers(2, 12), st.integers(2, 12)))
def test_normalise_and_slice_equals_the_three_steps(seed, dtype, params, axis, size):
    rng = np.random.default_rng(seed)
    data = _random_volume(seed, dtype, (7, 9, 8, 3))
    label = rng.integers(0, 3, data.shape[:3]).astype(np.uint8)
    indices = np.unique(rng.integers(0, data.shape[axis], 4))
    channels = (2, 0)
    images, labels = slicing.normalise_and_slice(data, label, indices, channels, params, axis,
                                                 size)
    volume = _reference_normalise(data[..., list(channels)], params)
    planes = np.moveaxis(volume, axis, 0)[indices]
    want = np.stack([np.stack([_reference_resize(p[..., c], size) for c in range(2)], -1)
                     for p in planes])
    np.testing.assert_allclose(images, want, rtol=1e-5, atol=1e-5)
    want_labels = np.stack([slicing.resize_label(np.take(label, z, axis=axis), size)
                            for z in indices])
    np.testing.assert_array_equal(labels, want_labels)
    assert images.dtype == np.float32 and labels.dtype == np.uint8


def test_map_labels_fast_path_keeps_values_and_layout():
    rng = np.random.default_rng(0)
    for raw in (rng.integers(0, 4, (70, 50, 30)).astype(np.uint8),
                np.asfortranarray(rng.integers(0, 4, (70, 50, 30)).astype(np.int16))):
        got = slicing.map_labels(raw, (0, 2, 1, 1))
        np.testing.assert_array_equal(got, np.array([0, 2, 1, 1], np.uint8)[raw])
        assert got.dtype == np.uint8
