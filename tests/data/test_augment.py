"""Augmentation: identity, hand-computed rotation, label preservation and alignment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segscale.data import augment
from segscale.data.params import AugmentParams


def _pair(size=33):
    """Image/label pair with label = image > 0.5, asymmetric so rotations are visible."""
    y, x = np.mgrid[:size, :size]
    image = ((np.abs(y - 10) < 6) & (np.abs(x - 20) < 9)).astype(np.float32)
    return image[..., None], image.astype(np.uint8)


def test_identity_transform_changes_nothing():
    image, label = _pair()
    out_img, out_lab = augment.apply(image, label, augment.Affine2D())
    np.testing.assert_allclose(out_img, image, atol=1e-6)
    np.testing.assert_array_equal(out_lab, label)


def test_rotation_by_90_degrees_is_rot90():
    label = np.zeros((5, 5), np.uint8)
    label[0, 1] = 1
    label[3, 4] = 2
    _, out = augment.apply(label[..., None].astype(np.float32), label,
                           augment.Affine2D(rotation=90))
    np.testing.assert_array_equal(out, np.rot90(label, k=-1))


def test_shift_moves_label_by_whole_pixels():
    label = np.zeros((8, 8), np.uint8)
    label[2, 3] = 1
    _, out = augment.apply(label[..., None].astype(np.float32), label,
                           augment.Affine2D(shift_rows=2, shift_cols=-1))
    assert np.argwhere(out).tolist() == [[4, 2]]


@settings(max_examples=30, deadline=None)
@given(rotation=st.floats(-45, 45), zoom=st.floats(0.8, 1.2), sr=st.floats(-3, 3),
       sc=st.floats(-3, 3))
def test_labels_preserved_and_aligned(rotation, zoom, sr, sc):
    image, label = _pair()
    t = augment.Affine2D(rotation, zoom, sr, sc)
    out_img, out_lab = augment.apply(image, label, t)
    assert out_lab.dtype == np.uint8 and out_img.shape == image.shape
    assert set(np.unique(out_lab)) <= {0, 1}
    # The label still equals the thresholded image except along the rectangle's edge.
    assert np.mean((out_img[..., 0] > 0.5) != out_lab.astype(bool)) < 0.05


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_draws_stay_within_configured_ranges(seed):
    params = AugmentParams(rotation=45, zoom=(0.8, 1.2), shift=0.05)
    t = augment.draw(np.random.default_rng(seed), params, (512, 512))
    assert -45 <= t.rotation <= 45 and 0.8 <= t.zoom <= 1.2
    assert abs(t.shift_rows) <= 25.6 and abs(t.shift_cols) <= 25.6


@pytest.mark.parametrize(("n", "target", "expected"), [
    (3, 7, [0, 1, 2, 0]), (3, 3, []), (5, 2, []), (2, 0, []),
])
def test_augmented_rows_cycle_through_originals(n, target, expected):
    assert augment.augmented_rows(n, target).tolist() == expected
