"""Volume-level scores compare against the source labels, not the store's resampled ones,
over whole test volumes: every plane, whatever ``slices.count``/``select`` say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segscale.data import build
from segscale.data.msd import load_volume
from segscale.data.params import DatasetParams
from segscale.data.slicing import map_labels
from segscale.data.split import split_patients
from segscale.data.store import SliceStore
from segscale.data.validate import inspect_dataset
from segscale.evaluate import cli as evaluate
from segscale.fileio import write_json


def test_downsampled_store_is_scored_against_the_source(heart_task, tmp_path):
    params = DatasetParams.from_mapping("heart", {
        "root": str(heart_task), "size": [24, 20], "label_map": [0, 1],  # from 64 x 52
        "slices": {"count": 4}, "split": {"train": 0.6, "val": 0.2, "test": 0.2}})
    report = inspect_dataset(heart_task, params)
    patients = split_patients([c["patient"] for c in report["cases"]], params.split)
    store_dir = tmp_path / "test"
    build.build_store(params, report, {"params": {}, "patients": patients}, "test", store_dir)
    store = SliceStore.open(store_dir)
    assert len(store) == 20 * len(patients["test"])  # every plane, not slices.count = 4
    np.save(tmp_path / "pred.npy", np.asarray(store.labels))  # perfect at the store's size
    write_json(tmp_path / "inference.json", {"batch1_ms_per_image": 1.0,
                                              "batched_ms_per_image": 0.5, "batch_size": 4})
    write_json(tmp_path / "run.json", {"status": "ok"})
    code = evaluate.main(["--store", str(store_dir), "--pred", str(tmp_path / "pred.npy"),
                          "--inference", str(tmp_path / "inference.json"),
                          "--run", str(tmp_path / "run.json"),
                          "--metrics", str(tmp_path / "metrics.json"),
                          "--predictions-dir", str(tmp_path / "pred")])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["volume_truth"] == "source"
    assert metrics["levels"]["slice"]["dice"] == 1.0  # store level: perfect by construction
    # Upsampled back to 64 x 52 the blob's edge no longer matches the source exactly.
    assert 0.8 < metrics["levels"]["volume"]["dice"] < 1.0


def _build_split(task, tmp_path, name, mapping, split="test"):
    """``split``'s store of ``task`` built by the data stage's own functions."""
    params = DatasetParams.from_mapping(name, {"root": str(task), **mapping})
    report = inspect_dataset(task, params)
    patients = split_patients([c["patient"] for c in report["cases"]], params.split)
    out = tmp_path / split
    build.build_store(params, report, {"params": {}, "patients": patients}, split, out,
                      threads=2)
    return params, report, SliceStore.open(out)


def _evaluate(store, tmp_path, pred):
    np.save(tmp_path / "pred.npy", pred)
    write_json(tmp_path / "inference.json", {"batch1_ms_per_image": 1.0,
                                              "batched_ms_per_image": 0.5, "batch_size": 4})
    write_json(tmp_path / "run.json", {"status": "ok"})
    code = evaluate.main(["--store", str(store.directory), "--pred", str(tmp_path / "pred.npy"),
                          "--inference", str(tmp_path / "inference.json"),
                          "--run", str(tmp_path / "run.json"),
                          "--metrics", str(tmp_path / "metrics.json"),
                          "--predictions-dir", str(tmp_path / "pred"), "--no-progress"])
    assert code == 0
    return json.loads((tmp_path / "metrics.json").read_text())


# (task fixture, in-plane source shape along the axis, config): a sparse `count` (3 planes
# of 20 or 32) with `labelled` or `even` selection; native size, so resizing is exact.
FED_BACK = {
    "heart-labelled-3of20": ("heart_task", {
        "size": [64, 52], "label_map": [0, 1],
        "slices": {"axis": 2, "count": 3, "select": "labelled", "margin": 0},
        "split": {"train": 0.4, "val": 0.2, "test": 0.4}}),
    "heart-even-axis0": ("heart_task", {
        "size": [52, 20], "label_map": [0, 1],
        "slices": {"axis": 0, "count": 3, "select": "even"},
        "split": {"train": 0.4, "val": 0.2, "test": 0.4}}),
    "brats-4class-labelled": ("brats_task", {
        "channels": [0, 1, 2, 3], "size": [56, 48], "label_map": [0, 1, 2, 3],
        "slices": {"axis": 2, "count": 3, "select": "labelled", "margin": 1},
        "split": {"train": 0.25, "val": 0.25, "test": 0.5}}),
}


@pytest.mark.parametrize("case", sorted(FED_BACK))
def test_labels_fed_back_score_perfectly_at_every_level(case, request, tmp_path):
    """Whole test volumes: with a sparse `count` and label-driven selection configured, the
    test store still holds every plane, so the store's own labels fed back as predictions
    are perfect at the slice, volume and split levels (distances 0, BRATS regions too) and
    the NIfTI predictions are the source label volumes."""
    fixture, mapping = FED_BACK[case]
    task = request.getfixturevalue(fixture)
    params, report, store = _build_split(task, tmp_path, "fed-back", mapping)
    axis = params.slices.axis
    manifest = store.manifest
    assert manifest["selection"] == f"all planes along axis {axis} (test split)"
    cases = {c["patient"]: c for c in report["cases"]}
    depths = {p: cases[p]["shape"][axis] for p in manifest["patients"]}
    assert len(depths) == 2 and min(depths.values()) > params.slices.count
    assert len(store) == sum(depths.values())
    for p, depth in depths.items():
        assert manifest["volumes"][p]["slices"] == list(range(depth))

    metrics = _evaluate(store, tmp_path, np.asarray(store.labels))
    assert metrics["volume_truth"] == "source"
    assert metrics["test_planes"] == f"all planes of every test volume along axis {axis}"
    levels = metrics["levels"]
    for level in ("slice", "volume", "split"):
        assert levels[level]["dice"] == 1.0, level
        assert levels[level]["dice_fg"] == 1.0, level
        assert levels[level]["mean_iou"] == 1.0, level
        assert levels[level]["pixel_accuracy"] == 1.0, level
    for name in ("hd", "hd95", "assd", "avg_hausdorff", "masd"):
        assert levels["volume"][name] == 0.0, name
        assert levels["volume"]["infinite_counts"][name] == 0, name
        assert levels["volume"]["valid_counts"][name] == 2 * (params.n_classes - 1), name
    for name in ("dice", "dice_fg", "hd95", "assd", "avg_hausdorff"):
        assert metrics["summary"][name] == (1.0 if name.startswith("dice") else 0.0), name
    voxels = sum(int(np.prod(cases[p]["shape"][:3])) for p in depths)
    assert levels["volume"]["covers"] == {"planes": sum(depths.values()), "voxels": voxels,
                                          "volumes": 2, "grid": "source"}
    assert levels["slice"]["covers"]["planes"] == len(store) == levels["slice"]["n"]
    assert levels["split"]["covers"] == levels["slice"]["covers"]

    if params.n_classes == 4:
        assert set(metrics["regions"]) == {"whole_tumour", "tumour_core", "enhancing_tumour"}
    for region, entry in metrics["regions"].items():
        for level in ("slice", "volume", "split"):
            assert entry[level]["dice"] == 1.0, (region, level)
        for name in ("hd95", "assd", "avg_hausdorff"):
            assert entry["volume"][name] == 0.0, (region, name)

    for p in depths:  # complete NIfTI predictions: the source labels, every plane
        source = load_volume(task / cases[p]["label"])
        written = load_volume(tmp_path / "pred" / f"{p}.nii.gz")
        np.testing.assert_array_equal(written.data, map_labels(source.data, params.label_map))
        np.testing.assert_allclose(written.affine, source.affine)
