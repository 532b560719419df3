"""Overlap metrics against hand-computed confusion matrices, edge cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segscale.evaluate import metrics as M

nan = math.nan

# Binary: conf[true, pred] = [[TN, FP], [FN, TP]] for the foreground.
BINARY = np.array([[50, 5],
                   [3, 12]])
# 4-class; class 2 absent from truth and prediction.
FOUR = np.array([[40, 2, 0, 1],
                 [3, 10, 0, 0],
                 [0, 0, 0, 0],
                 [1, 0, 0, 6]])

PER_CLASS_CASES = {
    "binary": (BINARY, {
        "dice": [100 / 108, 24 / 32],
        "iou": [50 / 58, 12 / 20],
        "sensitivity": [50 / 55, 12 / 15],
        "specificity": [12 / 15, 50 / 55],
    }),
    "four_class_empty_class": (FOUR, {
        "dice": [80 / 87, 20 / 25, nan, 12 / 14],
        "iou": [40 / 47, 10 / 15, nan, 6 / 8],
        "sensitivity": [40 / 43, 10 / 13, nan, 6 / 7],
        "specificity": [16 / 20, 48 / 50, 1.0, 55 / 56],
    }),
    # background only, predicted perfectly: foreground undefined, background has no negatives
    "all_background_perfect": (np.array([[100, 0], [0, 0]]), {
        "dice": [1.0, nan], "iou": [1.0, nan],
        "sensitivity": [1.0, nan], "specificity": [nan, 1.0],
    }),
    # background-only truth with false positives: predicted-only class scores 0, TPR undefined
    "all_background_false_positives": (np.array([[90, 10], [0, 0]]), {
        "dice": [180 / 190, 0.0], "iou": [0.9, 0.0],
        "sensitivity": [0.9, nan], "specificity": [nan, 0.9],
    }),
    # foreground missed entirely: class in truth only
    "foreground_missed": (np.array([[90, 0], [10, 0]]), {
        "dice": [180 / 190, 0.0], "iou": [0.9, 0.0],
        "sensitivity": [1.0, 0.0], "specificity": [0.0, 1.0],
    }),
    "empty_matrix": (np.zeros((3, 3), dtype=int), {
        "dice": [nan] * 3, "iou": [nan] * 3,
        "sensitivity": [nan] * 3, "specificity": [nan] * 3,
    }),
    "single_class": (np.array([[7]]), {
        "dice": [1.0], "iou": [1.0], "sensitivity": [1.0], "specificity": [nan],
    }),
    "float_counts": (BINARY.astype(np.float32), {
        "dice": [100 / 108, 24 / 32], "iou": [50 / 58, 12 / 20],
        "sensitivity": [50 / 55, 12 / 15], "specificity": [12 / 15, 50 / 55],
    }),
}

# name -> (pixel_accuracy, {mean: (value, n_valid)})
SCALAR_CASES = {
    "binary": (62 / 70, {
        "mean_dice": ((100 / 108 + 0.75) / 2, 2),
        "dice_fg": (0.75, 1),
        "mean_iou": ((50 / 58 + 0.6) / 2, 2),
        "mean_accuracy": ((50 / 55 + 0.8) / 2, 2),
        "fw_iou": ((55 * 50 / 58 + 15 * 0.6) / 70, 2),
    }),
    "four_class_empty_class": (56 / 63, {
        "mean_dice": ((80 / 87 + 0.8 + 12 / 14) / 3, 3),
        "dice_fg": ((0.8 + 12 / 14) / 2, 2),
        "mean_iou": ((40 / 47 + 2 / 3 + 0.75) / 3, 3),
        "mean_accuracy": ((40 / 43 + 10 / 13 + 6 / 7) / 3, 3),
        "fw_iou": ((43 * 40 / 47 + 13 * 2 / 3 + 7 * 0.75) / 63, 3),
    }),
    "all_background_perfect": (1.0, {
        "mean_dice": (1.0, 1), "dice_fg": (nan, 0), "mean_iou": (1.0, 1),
        "mean_accuracy": (1.0, 1), "fw_iou": (1.0, 1),
    }),
    "all_background_false_positives": (0.9, {
        "mean_dice": ((180 / 190) / 2, 2), "dice_fg": (0.0, 1), "mean_iou": (0.45, 2),
        # the predicted-only class has no truth pixels: no weight, not counted
        "mean_accuracy": (0.9, 1), "fw_iou": (0.9, 1),
    }),
    "foreground_missed": (0.9, {
        "mean_dice": ((180 / 190) / 2, 2), "dice_fg": (0.0, 1), "mean_iou": (0.45, 2),
        "mean_accuracy": (0.5, 2), "fw_iou": (0.81, 2),
    }),
    "empty_matrix": (nan, {
        "mean_dice": (nan, 0), "dice_fg": (nan, 0), "mean_iou": (nan, 0),
        "mean_accuracy": (nan, 0), "fw_iou": (nan, 0),
    }),
    "single_class": (1.0, {
        "mean_dice": (1.0, 1), "dice_fg": (nan, 0), "mean_iou": (1.0, 1),
        "mean_accuracy": (1.0, 1), "fw_iou": (1.0, 1),
    }),
}


def approx(values):
    return pytest.approx(values, nan_ok=True, rel=1e-12)


@pytest.mark.parametrize("case", sorted(PER_CLASS_CASES))
@pytest.mark.parametrize("metric", ["dice", "iou", "sensitivity", "specificity"])
def test_per_class_hand_computed(case, metric):
    conf, expected = PER_CLASS_CASES[case]
    assert list(getattr(M, metric)(conf)) == approx(expected[metric])


@pytest.mark.parametrize("case", sorted(SCALAR_CASES))
def test_scalars_hand_computed(case):
    conf = PER_CLASS_CASES[case][0]
    pa, means = SCALAR_CASES[case]
    assert M.pixel_accuracy(conf) == approx(pa)
    for name, (value, n_valid) in means.items():
        got = getattr(M, name)(conf)
        assert isinstance(got, M.Mean)
        assert got.value == approx(value), name
        assert got.n_valid == n_valid, name


def test_stack_of_matrices_matches_one_by_one():
    stack = np.stack([FOUR, np.zeros_like(FOUR), np.diag([5, 0, 1, 2])])
    for fn in (M.dice, M.iou, M.sensitivity, M.specificity):
        assert fn(stack) == approx(np.stack([fn(c) for c in stack]))
    for fn in (M.mean_dice, M.dice_fg, M.mean_iou, M.mean_accuracy, M.fw_iou):
        batch = fn(stack)
        assert list(batch.value) == approx([fn(c).value for c in stack])
        assert list(batch.n_valid) == [fn(c).n_valid for c in stack]
    assert list(M.pixel_accuracy(stack)) == approx([M.pixel_accuracy(c) for c in stack])


def test_mean_as_dict_is_json_ready():
    assert M.mean_dice(BINARY).as_dict() == {"value": pytest.approx((100 / 108 + 0.75) / 2),
                                             "n_valid": 2}


BAD_MATRICES = {
    "non_square": np.zeros((2, 3)),
    "one_dimensional": np.zeros(4),
    "zero_classes": np.zeros((0, 0)),
    "negative_count": np.array([[1, -1], [0, 2]]),
    "nan_count": np.array([[1.0, nan], [0.0, 2.0]]),
    "inf_count": np.array([[1.0, math.inf], [0.0, 2.0]]),
    "strings": np.array([["a", "b"], ["c", "d"]]),
}


@pytest.mark.parametrize("name", sorted(BAD_MATRICES))
@pytest.mark.parametrize("fn", [M.dice, M.iou, M.sensitivity, M.specificity, M.pixel_accuracy,
                                M.mean_dice, M.dice_fg, M.mean_iou, M.mean_accuracy, M.fw_iou])
def test_bad_matrix_raises(name, fn):
    with pytest.raises(ValueError):
        fn(BAD_MATRICES[name])


# ---------------------------------------------------------------- confusion_matrix


def test_confusion_matrix_hand_computed():
    truth = np.array([[0, 0, 1], [2, 2, 1]])
    pred = np.array([[0, 1, 1], [2, 0, 0]])
    expected = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1]])
    conf = M.confusion_matrix(truth, pred, 3)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, expected)
    np.testing.assert_array_equal(M.confusion_matrix(truth.astype(np.uint8),
                                                     pred.astype(np.uint8), 3), expected)


def test_confusion_matrix_bool_and_empty():
    np.testing.assert_array_equal(M.confusion_matrix(np.array([True, False]),
                                                     np.array([True, True]), 2),
                                  [[0, 1], [0, 1]])
    np.testing.assert_array_equal(M.confusion_matrix(np.zeros((0, 4), int),
                                                     np.zeros((0, 4), int), 2), np.zeros((2, 2)))


def test_confusion_matrices_per_item():
    rng = np.random.default_rng(1)
    truth, pred = rng.integers(0, 4, (5, 6, 7)), rng.integers(0, 4, (5, 6, 7))
    stack = M.confusion_matrices(truth, pred, 4)
    assert stack.shape == (5, 4, 4)
    for i in range(5):
        np.testing.assert_array_equal(stack[i], M.confusion_matrix(truth[i], pred[i], 4))
    assert M.confusion_matrices(truth[:0], pred[:0], 4).shape == (0, 4, 4)


BAD_LABELS = {
    "shape_mismatch": (np.zeros((2, 2), int), np.zeros((2, 3), int), 2),
    "label_too_large": (np.array([0, 2]), np.array([0, 1]), 2),
    "negative_label": (np.array([0, 1]), np.array([-1, 1]), 2),
    "float_labels": (np.array([0.0, 1.0]), np.array([0, 1]), 2),
    "zero_classes": (np.array([0]), np.array([0]), 0),
}


@pytest.mark.parametrize("name", sorted(BAD_LABELS))
def test_confusion_matrix_bad_input(name):
    truth, pred, k = BAD_LABELS[name]
    with pytest.raises(ValueError):
        M.confusion_matrix(truth, pred, k)
    if np.ndim(truth) > 0:
        with pytest.raises(ValueError):
            M.confusion_matrices(truth, pred, k)


# ---------------------------------------------------------------- properties

label_maps = st.integers(2, 5).flatmap(lambda k: st.tuples(
    st.just(k),
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 8), st.integers(1, 8)),
               elements=st.integers(0, k - 1)),
    st.randoms(use_true_random=False)))


def _pair(data):
    k, truth, rnd = data
    pred = np.array([[rnd.randrange(k) if rnd.random() < 0.5 else v for v in row]
                     for row in truth], dtype=np.uint8)
    return k, truth, pred, rnd


ALL_MEANS = (M.mean_dice, M.dice_fg, M.mean_iou, M.mean_accuracy, M.fw_iou)


@settings(max_examples=60, deadline=None)
@given(label_maps)
def test_values_in_unit_interval(data):
    k, truth, pred, _ = _pair(data)
    conf = M.confusion_matrix(truth, pred, k)
    values = np.concatenate([fn(conf) for fn in (M.dice, M.iou, M.sensitivity, M.specificity)]
                            + [[M.pixel_accuracy(conf)], [fn(conf).value for fn in ALL_MEANS]])
    finite = values[~np.isnan(values)]
    assert np.all((finite >= 0) & (finite <= 1))
    assert not np.isnan(M.pixel_accuracy(conf))  # never NaN for a non-empty image
    assert not np.isnan(M.mean_dice(conf).value)


@settings(max_examples=40, deadline=None)
@given(label_maps)
def test_perfect_prediction_scores_one(data):
    k, truth, _, _ = _pair(data)
    conf = M.confusion_matrix(truth, truth, k)
    present = np.isin(np.arange(k), truth)
    for fn in (M.dice, M.iou, M.sensitivity):
        vals = fn(conf)
        assert np.all(vals[present] == 1.0) and np.all(np.isnan(vals[~present]))
    spec = M.specificity(conf)
    assert np.all((spec == 1.0) | np.isnan(spec))
    assert M.pixel_accuracy(conf) == 1.0
    for fn in ALL_MEANS:
        mean = fn(conf)
        assert mean.value == 1.0 or (mean.n_valid == 0 and fn is M.dice_fg)


@settings(max_examples=40, deadline=None)
@given(label_maps)
def test_dice_and_iou_symmetric(data):
    k, truth, pred, _ = _pair(data)
    a, b = M.confusion_matrix(truth, pred, k), M.confusion_matrix(pred, truth, k)
    np.testing.assert_allclose(M.dice(a), M.dice(b), rtol=1e-12)
    np.testing.assert_allclose(M.iou(a), M.iou(b), rtol=1e-12)
    assert M.mean_dice(a).value == pytest.approx(M.mean_dice(b).value)


@settings(max_examples=40, deadline=None)
@given(label_maps)
def test_label_permutation_invariance(data):
    k, truth, pred, rnd = _pair(data)
    perm = np.array(rnd.sample(range(k), k), dtype=np.uint8)
    a = M.confusion_matrix(truth, pred, k)
    b = M.confusion_matrix(perm[truth], perm[pred], k)
    assert M.pixel_accuracy(a) == pytest.approx(M.pixel_accuracy(b))
    for fn in (M.mean_dice, M.mean_iou, M.mean_accuracy, M.fw_iou):
        ma, mb = fn(a), fn(b)
        assert ma.value == pytest.approx(mb.value, nan_ok=True), fn.__name__
        assert ma.n_valid == mb.n_valid
    # per-class values move with their class
    np.testing.assert_allclose(M.dice(b)[perm], M.dice(a), rtol=1e-12)


# ---------------------------------------------------------------- medpy cross-check


@pytest.mark.parametrize("seed", range(4))
def test_binary_dice_iou_match_medpy(seed):
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(seed)
    truth = rng.random((32, 24, 5)) < 0.3
    pred = truth ^ (rng.random(truth.shape) < 0.2)
    conf = M.confusion_matrix(truth, pred, 2)
    assert M.dice(conf)[1] == pytest.approx(medpy.dc(pred, truth), rel=1e-12)
    assert M.iou(conf)[1] == pytest.approx(medpy.jc(pred, truth), rel=1e-12)
    assert M.sensitivity(conf)[1] == pytest.approx(medpy.sensitivity(pred, truth), rel=1e-12)
    assert M.specificity(conf)[1] == pytest.approx(medpy.specificity(pred, truth), rel=1e-12)


@pytest.mark.parametrize("k,dtype", [
    (k, dtype) for k in (1, 2, 3, 17, 300) for dtype in (np.uint8, np.int64, np.uint16, bool)
    if not (dtype is bool and k > 2 or dtype is np.uint8 and k > 256)])
def test_confusion_matrix_paths_match_reference(k, dtype):
    rng = np.random.default_rng(k)
    truth = rng.integers(0, k, (3, 70_000)).astype(dtype)  # > one bincount chunk
    pred = rng.integers(0, k, (3, 70_000)).astype(dtype)
    ref = np.zeros((k, k), np.int64)
    np.add.at(ref, (truth.astype(int).ravel(), pred.astype(int).ravel()), 1)
    np.testing.assert_array_equal(M.confusion_matrix(truth, pred, k), ref)
    np.testing.assert_array_equal(M.confusion_matrices(truth, pred, k).sum(axis=0), ref)


def test_bool_labels_need_two_classes():
    with pytest.raises(ValueError, match="outside"):
        M.confusion_matrix(np.array([True]), np.array([False]), 1)
