"""Surface distances: hand-computed cases, empty-mask conventions, medpy cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segscale.evaluate.surface import (
    SurfaceDistances,
    bounding_box,
    directed_surface_distances,
    surface_distances,
    surface_metrics,
)


def square(shape, lo, hi):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def test_identical_masks_are_zero():
    mask = square((10, 10), (2, 3), (7, 8))
    sd = surface_metrics(mask, mask, (0.5, 2.0))
    assert sd == SurfaceDistances.filled(0.0)


def test_shifted_square_hand_computed():
    # 3x3 squares, pred one column to the right, spacing 2 along that axis.
    truth = square((8, 8), (2, 2), (5, 5))
    pred = square((8, 8), (2, 3), (5, 6))
    p2t, t2p = surface_distances(truth, pred, (1.0, 2.0))
    # 8 surface pixels each (ring of a 3x3 square). Pred ring: 4 on the truth ring (0), its
    # right column 1 column (2 mm) off, its hollow centre (3, 3) 1 row (1 mm) from (2, 3).
    assert sorted(p2t) == [0.0] * 4 + [1.0] + [2.0] * 3
    assert sorted(t2p) == [0.0] * 4 + [1.0] + [2.0] * 3
    sd = surface_metrics(truth, pred, (1.0, 2.0))
    assert sd.hd == 2.0
    assert sd.asd_pred_to_truth == sd.asd_truth_to_pred == pytest.approx(7 / 8)
    assert sd.masd == sd.assd == pytest.approx(7 / 8)
    # Over all voxels: 6 of each 9 overlap (0), the other column is 2 mm off: 3 x 2 / 9.
    assert sd.avg_hausdorff == pytest.approx(2 / 3)
    assert sd.hd95 == pytest.approx(np.percentile([0.0] * 8 + [1.0] * 2 + [2.0] * 6, 95))


def test_asymmetric_average_distances():
    # pred = truth plus a far single pixel: only pred->truth grows.
    truth = square((1, 20), (0, 0), (1, 3))
    pred = truth.copy()
    pred[0, 13] = True
    sd = surface_metrics(truth, pred)
    p2t = directed_surface_distances(pred, truth)
    assert sorted(p2t) == [0.0, 0.0, 0.0, 11.0]  # 1-row image: every pixel is surface
    assert sd.asd_pred_to_truth == pytest.approx(11 / 4)
    assert sd.asd_truth_to_pred == 0.0
    assert sd.avg_hausdorff == pytest.approx(11 / 4)  # thesis: max of the two directed
    assert sd.masd == pytest.approx(11 / 8)  # mean of the two directed
    assert sd.assd == pytest.approx(11 / 7)  # pooled over 4 + 3 surface pixels
    assert sd.hd == 11.0


def test_mask_touching_the_edge_has_surface_there():
    truth = np.ones((3, 3), bool)
    pred = np.ones((3, 3), bool)
    p2t, t2p = surface_distances(truth, pred)
    assert len(p2t) == 8 and len(t2p) == 8  # ring; the centre has all 4 neighbours inside


EMPTY_CASES = {
    "both_empty_2d": (np.zeros((4, 4)), np.zeros((4, 4)), math.nan),
    "both_empty_3d": (np.zeros((3, 4, 5)), np.zeros((3, 4, 5)), math.nan),
    "truth_empty": (np.zeros((4, 4)), np.eye(4), math.inf),
    "pred_empty": (np.eye(4), np.zeros((4, 4)), math.inf),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CASES))
def test_empty_mask_conventions(name):
    truth, pred, expected = EMPTY_CASES[name]
    sd = surface_metrics(truth, pred, [1.0] * truth.ndim)
    for value in sd.as_dict().values():
        assert (math.isnan(value) if math.isnan(expected) else value == expected)
    p2t, t2p = surface_distances(truth, pred)
    assert p2t.size == 0 and t2p.size == 0


BAD = {
    "shape_mismatch": (np.ones((3, 3)), np.ones((3, 4)), None, {}),
    "spacing_length": (np.ones((3, 3)), np.ones((3, 3)), (1.0,), {}),
    "spacing_zero": (np.ones((3, 3)), np.ones((3, 3)), (1.0, 0.0), {}),
    "spacing_negative": (np.ones((3, 3)), np.ones((3, 3)), (1.0, -1.0), {}),
    "spacing_nan": (np.ones((3, 3)), np.ones((3, 3)), (1.0, math.nan), {}),
    "spacing_with_empty_masks": (np.zeros((3, 3)), np.zeros((3, 3)), (1.0,), {}),
    "percentile": (np.ones((3, 3)), np.ones((3, 3)), None, {"percentile": 101}),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_raises(name):
    truth, pred, spacing, kw = BAD[name]
    with pytest.raises(ValueError):
        surface_metrics(truth, pred, spacing, **kw)


def _random_blob(rng, shape):
    mask = np.zeros(shape, bool)
    for _ in range(3):
        lo = [int(rng.integers(0, s - 2)) for s in shape]
        hi = [int(rng.integers(a + 1, s + 1)) for a, s in zip(lo, shape)]
        mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


MEDPY_CASES = [((48, 40), (0.8, 1.7)), ((48, 40), (1.0, 1.0)),
               ((16, 20, 12), (0.5, 1.25, 3.0)), ((16, 20, 12), (1.0, 1.0, 1.0))]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape,spacing", MEDPY_CASES)
def test_matches_medpy(seed, shape, spacing):
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(seed)
    truth = _random_blob(rng, shape)
    pred = _random_blob(rng, shape) if seed % 2 else truth ^ (rng.random(shape) < 0.05)
    if not pred.any():
        pred[(0,) * len(shape)] = True
    sd = surface_metrics(truth, pred, spacing)
    assert sd.hd95 == pytest.approx(medpy.hd95(pred, truth, spacing), rel=1e-12)
    assert sd.hd == pytest.approx(medpy.hd(pred, truth, spacing), rel=1e-12)
    assert sd.assd == pytest.approx(medpy.assd(pred, truth, spacing), rel=1e-12)
    a = medpy.asd(pred, truth, spacing)
    b = medpy.asd(truth, pred, spacing)
    assert sd.asd_pred_to_truth == pytest.approx(a, rel=1e-12)
    assert sd.asd_truth_to_pred == pytest.approx(b, rel=1e-12)
    assert sd.masd == pytest.approx((a + b) / 2, rel=1e-12)
    assert sd.avg_hausdorff == pytest.approx(_brute_force_avd(truth, pred, spacing), rel=1e-9)


def _brute_force_avd(truth, pred, spacing):
    """Table 5.1's max of directed averages over all voxels, by explicit pairwise distances."""
    from scipy.spatial.distance import cdist

    t = np.argwhere(truth) * np.asarray(spacing)
    p = np.argwhere(pred) * np.asarray(spacing)
    d = cdist(p, t)
    return max(d.min(axis=1).mean(), d.min(axis=0).mean())


BOXES = {
    "2d": (np.pad(np.ones((2, 3), bool), ((1, 4), (2, 0))), (slice(1, 3), slice(2, 5))),
    "3d_single_voxel": (np.pad(np.ones((1, 1, 1), bool), ((2, 0), (0, 3), (1, 1))),
                        (slice(2, 3), slice(0, 1), slice(1, 2))),
    "empty": (np.zeros((3, 4), bool), (slice(0, 0), slice(0, 0))),
}


@pytest.mark.parametrize("name", sorted(BOXES))
def test_bounding_box(name):
    mask, expected = BOXES[name]
    assert bounding_box(mask) == expected


def test_padding_does_not_change_distances():
    rng = np.random.default_rng(7)
    truth, pred = _random_blob(rng, (12, 10, 9)), _random_blob(rng, (12, 10, 9))
    pad = ((3, 5), (0, 7), (2, 2))
    a = surface_metrics(truth, pred, (0.5, 1.0, 2.0))
    b = surface_metrics(np.pad(truth, pad), np.pad(pred, pad), (0.5, 1.0, 2.0))
    assert a.as_dict() == pytest.approx(b.as_dict())
