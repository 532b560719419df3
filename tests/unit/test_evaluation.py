"""Reassembly, region collapsing and the three evaluation levels on a tiny synthetic store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from segscale.data import slicing
from segscale.data.store import SliceStore, SliceStoreWriter
from segscale.evaluate import metrics as M
from segscale.evaluate.scoring import (
    BRATS_REGIONS,
    evaluate_store,
    region_confusion,
    regions_for,
)
from segscale.evaluate.surface import surface_metrics
from segscale.evaluate.volumes import reassemble

SPACING = (1.0, 1.5, 3.0)
AFFINE = np.diag([*SPACING, 1.0])


def blob_volume(rng, shape, n_classes):
    """Nested boxes: class c inside class c-1, so every class is a solid object."""
    vol = np.zeros(shape, np.uint8)
    for c in range(1, n_classes):
        lo = [int(rng.integers(c, max(c + 1, s // 3))) for s in shape]
        hi = [max(a + 2, s - c - int(rng.integers(0, 2))) for a, s in zip(lo, shape)]
        vol[tuple(slice(a, b) for a, b in zip(lo, hi))] = c
    return vol


def make_store(directory, volumes, n_classes, axis=2, size=None, planes=None):
    """A committed slice store of ``volumes`` {patient: label volume}, sliced along ``axis``."""
    first = next(iter(volumes.values()))
    in_plane = tuple(s for a, s in enumerate(first.shape) if a != axis)
    size = tuple(size or in_plane)
    chosen = {p: np.asarray(planes[p] if planes else range(v.shape[axis]))
              for p, v in volumes.items()}
    writer = SliceStoreWriter(directory, sum(len(c) for c in chosen.values()), size, 1,
                              "float32")
    rows, meta, start = [], {}, 0
    for p, vol in volumes.items():
        images, labels = slicing.slice_volume(vol[..., None].astype(np.float32), vol,
                                              chosen[p], axis, size)
        writer.write(start, images, labels)
        start += len(labels)
        rows += [{"patient": p, "slice": int(z), "image": f"{p}.nii.gz",
                  "label": f"{p}.nii.gz"} for z in chosen[p]]
        meta[p] = {"shape": list(vol.shape), "affine": AFFINE.tolist(), "spacing": list(SPACING),
                   "slices": chosen[p].tolist(), "image": f"{p}.nii.gz", "label": f"{p}.nii.gz"}
    manifest = {"kind": "slice-store", "dataset": "synthetic", "split": "test",
                "count": len(rows), "n_classes": n_classes,
                "class_names": [f"c{i}" for i in range(n_classes)],
                "image_shape": [*size, 1], "patients": list(volumes), "volumes": meta,
                "params": {"size": list(size), "slices": {"axis": axis}, "axis": axis}}
    writer.commit(pd.DataFrame(rows, columns=["patient", "slice", "image", "label"]), manifest)
    return SliceStore.open(directory)


# ---------------------------------------------------------------- reassemble


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reassemble_inverts_slicing_at_native_size(axis):
    rng = np.random.default_rng(axis)
    vol = rng.integers(0, 3, (6, 7, 8)).astype(np.uint8)
    planes = np.array([4, 0, 2])  # any order
    in_plane = tuple(s for a, s in enumerate(vol.shape) if a != axis)
    slices = np.stack([np.take(vol, z, axis=axis) for z in planes])
    assert slices.shape[1:] == in_plane
    out = reassemble(slices, planes, axis, vol.shape)
    assert out.shape == vol.shape and out.dtype == vol.dtype
    for z in range(vol.shape[axis]):
        expected = np.take(vol, z, axis=axis) if z in planes else 0
        np.testing.assert_array_equal(np.take(out, z, axis=axis), expected)


def test_reassemble_resizes_back_nearest_neighbour():
    vol = np.zeros((5, 6, 4), np.uint8)
    vol[1:4, 2:5, :] = 2
    vol[2, 3, 1] = 1
    _, labels = slicing.slice_volume(vol[..., None].astype(np.float32), vol, np.arange(4), 2,
                                     (10, 12))  # exact 2x upsampling
    np.testing.assert_array_equal(reassemble(labels, np.arange(4), 2, vol.shape), vol)


REASSEMBLE_ERRORS = {
    "count_mismatch": (np.zeros((2, 4, 4)), [0], 2, (4, 4, 3)),
    "repeated_index": (np.zeros((2, 4, 4)), [1, 1], 2, (4, 4, 3)),
    "index_out_of_range": (np.zeros((1, 4, 4)), [3], 2, (4, 4, 3)),
    "negative_index": (np.zeros((1, 4, 4)), [-1], 2, (4, 4, 3)),
    "bad_axis": (np.zeros((1, 4, 4)), [0], 3, (4, 4, 3)),
    "slices_not_3d": (np.zeros((4, 4)), [0], 2, (4, 4, 3)),
    "volume_not_3d": (np.zeros((1, 4, 4)), [0], 1, (4, 4)),
}


@pytest.mark.parametrize("name", sorted(REASSEMBLE_ERRORS))
def test_reassemble_bad_input(name):
    slices, idx, axis, shape = REASSEMBLE_ERRORS[name]
    with pytest.raises(ValueError):
        reassemble(slices, idx, axis, shape)


# ---------------------------------------------------------------- regions


def test_region_confusion_hand_computed():
    conf = np.array([[40, 2, 0, 1],
                     [3, 10, 1, 0],
                     [0, 2, 5, 0],
                     [1, 0, 1, 6]])
    # whole tumour {1,2,3} vs background {0}
    np.testing.assert_array_equal(region_confusion(conf, (1, 2, 3)), [[40, 3], [4, 25]])
    # enhancing {3}
    np.testing.assert_array_equal(region_confusion(conf, (3,)), [[63, 1], [2, 6]])
    stack = region_confusion(np.stack([conf, conf]), (2, 3))
    assert stack.shape == (2, 2, 2)
    np.testing.assert_array_equal(stack[0], [[55, 2], [3, 12]])
    with pytest.raises(ValueError):
        region_confusion(conf, (4,))


@pytest.mark.parametrize("n_classes,expected", [(2, {}), (3, {}), (4, BRATS_REGIONS), (5, {})])
def test_regions_only_for_four_classes(n_classes, expected):
    assert regions_for(n_classes) == expected


# ---------------------------------------------------------------- evaluate_store


@pytest.fixture
def four_class_store(tmp_path):
    rng = np.random.default_rng(0)
    vols = {"P1": blob_volume(rng, (12, 10, 6), 4), "P2": blob_volume(rng, (12, 10, 6), 4)}
    return make_store(tmp_path / "store", vols, 4), vols


def test_perfect_prediction_scores_one(four_class_store):
    store, vols = four_class_store
    sink = {}
    out = evaluate_store(store, np.array(store.labels), lambda p, v: sink.update({p: v}))
    for key in ("dice", "dice_fg", "pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou",
                "sensitivity", "specificity"):
        assert out["summary"][key] == 1.0, key
        for level in ("slice", "volume", "split"):
            assert out["levels"][level][key] == 1.0, (level, key)
    assert out["summary"]["hd95"] == 0.0 and out["summary"]["avg_hausdorff"] == 0.0
    assert out["levels"]["slice"]["n"] == 12 and out["levels"]["volume"]["n"] == 2
    assert out["levels"]["split"]["n"] == 12 and out["levels"]["split"]["n_volumes"] == 2
    whole = {"planes": 12, "voxels": 2 * 12 * 10 * 6, "volumes": 2}
    assert out["levels"]["volume"]["covers"] == {**whole, "grid": "source"}
    for level in ("slice", "split"):  # native size: the store grid is the source grid
        assert out["levels"][level]["covers"] == {**whole, "grid": "store [12, 10]"}
    for region in BRATS_REGIONS:
        for level in ("slice", "volume", "split"):
            assert out["regions"][region][level]["dice"] == 1.0
    for p, vol in vols.items():  # every plane stored at native size: exact reassembly
        np.testing.assert_array_equal(sink[p], vol)


def test_levels_match_direct_computation(four_class_store):
    store, vols = four_class_store
    rng = np.random.default_rng(3)
    truth = np.array(store.labels)
    pred = np.where(rng.random(truth.shape) < 0.15, rng.integers(0, 4, truth.shape),
                    truth).astype(np.uint8)
    out = evaluate_store(store, pred)
    pooled = M.confusion_matrix(truth, pred, 4)
    split = out["levels"]["split"]
    assert split["dice"] == pytest.approx(M.mean_dice(pooled).value)
    assert split["mean_iou"] == pytest.approx(M.mean_iou(pooled).value)
    assert split["per_class"]["dice"] == pytest.approx(list(M.dice(pooled)))
    assert split["valid_counts"]["dice"] == 4
    assert out["summary"]["dice"] == split["dice"]
    # slice level: mean over slices of each slice's class-mean
    per_slice = [M.mean_dice(M.confusion_matrix(t, p, 4)).value for t, p in zip(truth, pred)]
    assert out["levels"]["slice"]["dice"] == pytest.approx(np.nanmean(per_slice))
    # volume level: P1 is rows 0..5 at native size, so its volume is the stacked slices
    p1_truth, p1_pred = np.moveaxis(truth[:6], 0, 2), np.moveaxis(pred[:6], 0, 2)
    vol_dice = [M.mean_dice(M.confusion_matrix(p1_truth, p1_pred, 4)).value,
                M.mean_dice(M.confusion_matrix(truth[6:], pred[6:], 4)).value]
    assert out["levels"]["volume"]["dice"] == pytest.approx(np.mean(vol_dice))
    # distances: volume level with source spacing, per foreground class
    sd = surface_metrics(p1_truth == 1, p1_pred == 1, SPACING)
    per_class_hd95 = out["levels"]["volume"]["per_class"]["hd95"]
    assert math.isnan(per_class_hd95[0])  # background has no distance
    sd2 = surface_metrics(np.moveaxis(truth[6:], 0, 2) == 1, np.moveaxis(pred[6:], 0, 2) == 1,
                          SPACING)
    assert per_class_hd95[1] == pytest.approx((sd.hd95 + sd2.hd95) / 2)
    # whole tumour region at the split level
    wt = M.confusion_matrix(truth > 0, pred > 0, 2)
    assert out["regions"]["whole_tumour"]["split"]["dice"] == pytest.approx(M.dice(wt)[1])


def test_missing_class_gives_inf_distance_counted_not_averaged(tmp_path):
    vol = np.zeros((8, 8, 4), np.uint8)
    vol[2:6, 2:6, :] = 1
    store = make_store(tmp_path / "s", {"A": vol, "B": vol.copy()}, 2)
    pred = np.array(store.labels)
    pred[4:] = 0  # patient B predicted all background
    out = evaluate_store(store, pred)
    vol_level = out["levels"]["volume"]
    assert vol_level["hd95"] == 0.0  # A only
    assert vol_level["valid_counts"]["hd95"] == 1
    assert vol_level["infinite_counts"]["hd95"] == 1
    assert out["regions"] == {}
    assert out["summary"]["dice"] == pytest.approx(M.mean_dice(
        M.confusion_matrix(np.array(store.labels), pred, 2)).value)


def test_resized_store_is_reassembled_into_whole_volumes(tmp_path):
    rng = np.random.default_rng(5)
    vol = blob_volume(rng, (9, 11, 7), 2)
    store = make_store(tmp_path / "s", {"A": vol}, 2, axis=0, size=(16, 16))
    seen = {}
    out = evaluate_store(store, np.array(store.labels), lambda p, v: seen.update({p: v}))
    assert seen["A"].shape == vol.shape
    for z in range(9):  # every plane predicted: the stored slice resized back to 11 x 7
        np.testing.assert_array_equal(seen["A"][z],
                                      slicing.resize_label(store.labels[z], (11, 7)))
    assert out["levels"]["volume"]["dice"] == 1.0
    assert out["levels"]["volume"]["covers"] == {"planes": 9, "voxels": 9 * 11 * 7,
                                                 "volumes": 1, "grid": "source"}
    assert out["levels"]["slice"]["covers"] == {"planes": 9, "voxels": 9 * 16 * 16,
                                                "volumes": 1, "grid": "store [16, 16]"}
    assert out["test_planes"] == "all planes of every test volume along axis 0"


@pytest.mark.parametrize("planes", [[1, 4, 6], [0, 1, 2, 3, 4, 5, 6, 7, 8, 8], [1, 2, 3, 4,
                                                                                  5, 6, 7, 8]])
def test_store_lacking_planes_is_refused(tmp_path, planes):
    """A store of a subset of planes (built before whole-volume test stores) would score
    partial volumes: refused, naming the store, whatever the prediction."""
    vol = blob_volume(np.random.default_rng(5), (9, 11, 7), 2)
    store = make_store(tmp_path / "s", {"A": vol}, 2, axis=0, planes={"A": planes})
    with pytest.raises(ValueError, match=r"/s: patient A has .* planes.*built before "
                                         r"whole-volume test stores.*rebuild"):
        evaluate_store(store, np.array(store.labels))


def test_shape_mismatch_raises(four_class_store):
    store, _ = four_class_store
    with pytest.raises(ValueError, match="does not match"):
        evaluate_store(store, np.zeros((3, 12, 10), np.uint8))
    with pytest.raises(ValueError, match="outside"):
        evaluate_store(store, np.full(store.labels.shape, 7, np.uint8))


def test_split_valid_counts_are_integers(four_class_store):
    store, _ = four_class_store
    pred = np.array(store.labels)
    pred[pred == 2] = 1  # class 2 never predicted
    split = evaluate_store(store, pred)["levels"]["split"]
    counts = split["valid_counts"]["per_class"]["dice"]
    assert counts == [1, 1, 1, 1] and all(type(c) is int for c in counts)
    assert split["per_class"]["dice"][2] == 0.0
