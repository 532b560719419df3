"""``python -m segscale.evaluate`` end to end on a tiny store built from NIfTI volumes."""

from __future__ import annotations

import json
import logging
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from segscale.data import slicing
from segscale.data.msd import load_volume
from segscale.data.store import SliceStoreWriter
from segscale.evaluate.cli import main
from segscale.evaluate.surface import surface_metrics
from segscale.fileio import write_json

AFFINE = np.array([[0.0, -1.2, 0.0, 30.0],  # axes permuted and flipped, translated
                   [0.9, 0.0, 0.0, -12.5],
                   [0.0, 0.0, 2.5, 4.0],
                   [0.0, 0.0, 0.0, 1.0]])
SHAPE = (14, 12, 6)
SPACING = (0.9, 1.2, 2.5)  # the column norms of AFFINE
AXIS = 2
SIZE = (16, 16)


def label_volume(shift: int) -> np.ndarray:
    vol = np.zeros(SHAPE, np.uint8)
    vol[3 + shift:10, 2:9, 1:5] = 1
    return vol


def write_store(store, vols, planes):
    """A test store of ``vols`` holding ``planes`` of each (every plane, as the data stage
    builds test stores, unless a test asks for fewer); returns its labels."""
    writer = SliceStoreWriter(store, sum(len(v) for v in planes.values()), SIZE, 1, "float32")
    rows, meta, start = [], {}, 0
    for p, vol in vols.items():
        images, labels = slicing.slice_volume(vol.data[..., None].astype(np.float32), vol.data,
                                              planes[p], AXIS, SIZE)
        writer.write(start, images, labels)
        start += len(labels)
        rows += [{"patient": p, "slice": int(z), "image": f"{p}.nii.gz",
                  "label": f"{p}.nii.gz"} for z in planes[p]]
        meta[p] = {"shape": list(vol.data.shape), "affine": vol.affine.tolist(),
                   "spacing": list(vol.spacing), "slices": planes[p].tolist(),
                   "image": f"{p}.nii.gz", "label": f"{p}.nii.gz"}
    writer.commit(pd.DataFrame(rows), {
        "dataset": "lasc", "split": "test", "count": len(rows), "n_classes": 2,
        "class_names": ["background", "left_atrium"], "image_shape": [*SIZE, 1],
        "volumes": meta, "params": {"size": list(SIZE), "axis": AXIS}})
    return np.load(store / "labels.npy")


@pytest.fixture
def case(tmp_path):
    """Source NIfTIs -> test store (every plane) -> perfect pred.npy, inference.json,
    run.json."""
    src = tmp_path / "raw"
    src.mkdir()
    vols = {}
    for i, p in enumerate(("LA_001", "LA_002")):
        nib.save(nib.Nifti1Image(label_volume(i), AFFINE), src / f"{p}.nii.gz")
        vols[p] = load_volume(src / f"{p}.nii.gz")
    planes = {p: np.arange(SHAPE[AXIS]) for p in vols}
    labels = write_store(tmp_path / "store", vols, planes)
    np.save(tmp_path / "pred.npy", labels)
    write_json(tmp_path / "inference.json", {"batch1_ms_per_image": 12.5,
                                             "batched_ms_per_image": 3.25, "batch_size": 8,
                                             "device": "cpu", "n_images": len(labels)})
    write_json(tmp_path / "run.json", {"status": "ok", "dataset": "lasc"})
    return tmp_path, vols, planes


def argv(tmp, **override):
    files = {"store": tmp / "store", "pred": tmp / "pred.npy", "inference": tmp / "inference.json",
             "run": tmp / "run.json", "metrics": tmp / "out" / "metrics.json",
             "predictions-dir": tmp / "out" / "predictions"}
    files.update(override)
    return [x for k, v in files.items() for x in (f"--{k}", str(v))] + ["--no-progress"]


def test_perfect_prediction_end_to_end(case):
    tmp, vols, planes = case
    assert main(argv(tmp)) == 0
    metrics = json.loads((tmp / "out" / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["n_classes"] == 2
    assert metrics["class_names"] == ["background", "left_atrium"]
    summary = metrics["summary"]
    for key in ("dice", "pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou", "sensitivity",
                "specificity", "dice_fg"):
        assert summary[key] == 1.0, key
    assert summary["avg_hausdorff"] == 0.0 and summary["hd95"] == 0.0
    assert set(metrics["levels"]) == {"slice", "volume", "split"}
    for level in metrics["levels"].values():
        assert "n" in level and "valid_counts" in level
    assert metrics["levels"]["slice"]["n"] == 12  # 2 volumes x 6 planes: every plane
    assert metrics["levels"]["volume"]["n"] == 2
    assert metrics["test_planes"] == "all planes of every test volume along axis 2"
    assert metrics["levels"]["volume"]["covers"] == {
        "planes": 12, "voxels": 2 * 14 * 12 * 6, "volumes": 2, "grid": "source"}
    assert metrics["levels"]["slice"]["covers"] == {
        "planes": 12, "voxels": 12 * 16 * 16, "volumes": 2, "grid": "store [16, 16]"}
    assert metrics["levels"]["split"]["covers"] == metrics["levels"]["slice"]["covers"]
    assert metrics["regions"] == {}
    assert metrics["inference"] == {"batch1_ms_per_image": 12.5, "batched_ms_per_image": 3.25,
                                    "batch_size": 8}
    assert metrics["inputs"]["pred"] == str(tmp / "pred.npy")
    assert "packages" in metrics["environment"]
    for p, vol in vols.items():
        img = nib.load(tmp / "out" / "predictions" / f"{p}.nii.gz")
        assert img.shape == SHAPE
        np.testing.assert_allclose(img.affine, AFFINE)
        data = np.asarray(img.dataobj)
        assert data.dtype == np.uint8
        assert planes[p].tolist() == list(range(SHAPE[AXIS]))
        np.testing.assert_array_equal(data, vol.data)  # every plane, there and back: exact
    assert not list((tmp / "out").rglob(".*partial*"))


def test_known_errors_hand_computed(case):
    tmp, _, _ = case
    pred = np.load(tmp / "pred.npy")
    pred[:] = 0
    pred[0, :, :] = 1  # slice 0 of LA_001 (empty in truth) predicted all foreground: 256 FP
    np.save(tmp / "pred.npy", pred)
    assert main(argv(tmp)) == 0
    m = json.loads((tmp / "out" / "metrics.json").read_text())
    split = m["levels"]["split"]
    total = 12 * 16 * 16
    # truth foreground count in the store
    fg = int((np.load(tmp / "store" / "labels.npy") > 0).sum())
    assert split["per_class"]["dice"][1] == 0.0  # no foreground pixel predicted right
    assert split["pixel_accuracy"] == pytest.approx((total - fg - 256) / total)
    assert m["summary"]["sensitivity"] == 0.0
    assert m["summary"]["specificity"] == pytest.approx((total - fg - 256) / (total - fg))
    vol = m["levels"]["volume"]
    # LA_002: nothing predicted -> inf, counted apart; LA_001: the full plane 0 vs the box.
    assert vol["valid_counts"]["hd95"] == 1 and vol["infinite_counts"]["hd95"] == 1
    pred_vol = np.zeros(SHAPE, bool)
    pred_vol[..., 0] = True
    sd = surface_metrics(label_volume(0) > 0, pred_vol, SPACING)
    assert m["summary"]["hd95"] == pytest.approx(sd.hd95)
    assert m["summary"]["avg_hausdorff"] == pytest.approx(sd.avg_hausdorff)
    # the box's far face z=4 lies 4 planes (4 x 2.5 mm) above the predicted plane z=0, which
    # covers every (x, y): the largest distance of all
    assert sd.hd == pytest.approx(10.0)


def test_nothing_predicted_anywhere_gives_nan_mean_distance(case):
    tmp, _, _ = case
    np.save(tmp / "pred.npy", np.zeros((12, *SIZE), np.uint8))
    assert main(argv(tmp)) == 0
    m = json.loads((tmp / "out" / "metrics.json").read_text())
    assert math.isnan(m["summary"]["hd95"]) and m["summary"]["dice_fg"] == 0.0
    assert m["levels"]["volume"]["infinite_counts"]["hd95"] == 2


def test_diverged_run_is_evaluated_and_keeps_status(case):
    tmp, _, _ = case
    write_json(tmp / "run.json", {"status": "diverged"})
    assert main(argv(tmp)) == 0
    assert json.loads((tmp / "out" / "metrics.json").read_text())["status"] == "diverged"


def _bad_shape(tmp):
    np.save(tmp / "pred.npy", np.zeros((12, 8, 8), np.uint8))
    return "pred.npy"


def _bad_labels(tmp):
    np.save(tmp / "pred.npy", np.full((12, *SIZE), 5, np.uint8))
    return "pred.npy"


def _float_pred(tmp):
    np.save(tmp / "pred.npy", np.zeros((12, *SIZE), np.float32))
    return "pred.npy"


def _missing_pred(tmp):
    (tmp / "pred.npy").unlink()
    return "pred.npy"


def _not_npy(tmp):
    (tmp / "pred.npy").write_text("nope")
    return "pred.npy"


def _bad_status(tmp):
    write_json(tmp / "run.json", {"status": "great"})
    return "run.json"


def _missing_run(tmp):
    (tmp / "run.json").unlink()
    return "run.json"


def _inference_key(tmp):
    write_json(tmp / "inference.json", {"batch_size": 8})
    return "inference.json"


def _incomplete_store(tmp):
    (tmp / "store" / "manifest.json").unlink()
    return "manifest.json"


def _partial_store(tmp):
    """A store of 3 of LA_002's 6 planes (as test stores were built before whole-volume
    test stores), with a prediction that fits it."""
    vols = {p: load_volume(tmp / "raw" / f"{p}.nii.gz") for p in ("LA_001", "LA_002")}
    labels = write_store(tmp / "store", vols, {"LA_001": np.arange(SHAPE[AXIS]),
                                               "LA_002": np.array([1, 2, 4])})
    np.save(tmp / "pred.npy", labels)
    return "built before whole-volume test stores"


BAD_INPUTS = {f.__name__.lstrip("_"): f for f in (
    _bad_shape, _bad_labels, _float_pred, _missing_pred, _not_npy, _bad_status, _missing_run,
    _inference_key, _incomplete_store, _partial_store)}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_fails_cleanly(case, caplog, name):
    tmp, _, _ = case
    stale = tmp / "out" / "metrics.json"
    write_json(stale, {"status": "ok"})  # from an earlier evaluation
    culprit = BAD_INPUTS[name](tmp)
    with caplog.at_level(logging.ERROR):
        assert main(argv(tmp)) == 1
    assert not stale.exists()
    assert culprit in caplog.text
    assert not list((tmp / "out").glob(".metrics.json*"))
