"""Slice stores: what the build writes (values and manifest), shards, atomicity."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from segscale.data import build
from segscale.data.augment import build_augmented
from segscale.data.params import DatasetParams
from segscale.data.split import split_patients
from segscale.data.store import MANIFEST, STORE_FILES, SliceStore
from segscale.data.validate import inspect_dataset
from segscale.fileio import sha256


def _params(root, **overrides):
    base = {"root": str(root), "size": [40, 24], "label_map": [0, 1],
            "class_names": ["background", "left_atrium"],
            "slices": {"count": 5, "select": "labelled", "margin": 0},
            "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 1},
            "augment": {"target": 40, "seed": 2}}
    return DatasetParams.from_mapping("heart", {**base, **overrides})


def _build(root, out, split="train", **overrides):
    params = _params(root, **overrides)
    report = inspect_dataset(root, params)
    patients = split_patients([c["patient"] for c in report["cases"]], params.split)
    split_file = {"params": {}, "patients": patients}
    return params, build.build_store(params, report, split_file, split, out, threads=2)


@pytest.fixture(scope="module")
def train_store(heart_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "train"
    params, manifest = _build(heart_task, out)
    return params, manifest, SliceStore.open(out)


def test_store_contents_match_the_source_volumes(heart_task, train_store):
    params, manifest, store = train_store
    assert store.images.shape == (manifest["count"], 40, 24, 1)
    assert store.images.dtype == np.float16 and store.labels.dtype == np.uint8
    assert manifest["count"] == len(store.index) == 3 * 5  # 3 train patients x 5 slices
    # Each row is the named slice of the named patient: recompute one by hand.
    row = store.index.iloc[7]
    label = np.asarray(nib.load(str(heart_task / row["label"])).dataobj)
    from segscale.data.slicing import resize_label
    expected = resize_label(label[:, :, row["slice"]], (40, 24))
    np.testing.assert_array_equal(store.labels[7], expected)


def test_manifest_records_provenance(heart_task, train_store):
    params, manifest, store = train_store
    on_disk = json.loads((store.directory / MANIFEST).read_text())
    assert on_disk["split"] == "train" and on_disk["n_classes"] == 2
    assert on_disk["class_names"] == ["background", "left_atrium"]
    assert on_disk["image_shape"] == [40, 24, 1]
    assert sum(on_disk["class_pixel_counts"]) == on_disk["count"] * 40 * 24
    assert on_disk["class_pixel_counts"][1] == int(store.labels.sum())
    assert on_disk["params"]["slices"]["count"] == 5 and on_disk["params"]["axis"] == 2
    first = on_disk["sources"][0]
    assert first["sha256"] == sha256(heart_task / first["file"])
    vol = on_disk["volumes"][on_disk["patients"][0]]
    img = nib.load(str(heart_task / vol["image"]))
    assert vol["shape"] == list(img.shape)
    np.testing.assert_allclose(vol["affine"], img.affine)
    assert set(on_disk["environment"]) >= {"packages", "cpu", "host", "created"}


def test_stores_of_different_splits_share_no_patient(heart_task, tmp_path):
    patients = {}
    for split in ("train", "val", "test"):
        _, manifest = _build(heart_task, tmp_path / split, split)
        patients[split] = set(SliceStore.open(tmp_path / split).index["patient"])
        assert patients[split] == set(manifest["patients"])
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shards_are_disjoint_and_equal(train_store, size):
    store = train_store[2]
    shards = [store.shard(r, size) for r in range(size)]
    assert len({len(s) for s in shards}) == 1
    flat = np.concatenate(shards)
    assert len(np.unique(flat)) == len(flat) == len(store) - len(store) % size


def test_shard_rejects_bad_rank(train_store):
    with pytest.raises(ValueError, match="rank 2 outside"):
        train_store[2].shard(2, 2)


def test_batches_are_reproducible_and_complete(train_store):
    store = train_store[2]
    rows = store.shard(0, 1)
    first = [y for _, y in store.batches(rows, 4, np.random.default_rng(0))]
    again = [y for _, y in store.batches(rows, 4, np.random.default_rng(0))]
    assert len(first) == len(rows) // 4
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_augmented_store_keeps_originals_and_label_values(heart_task, train_store, tmp_path):
    params, manifest, store = train_store
    out = tmp_path / "aug"
    aug = build_augmented(str(store.directory), str(out), params.augment, threads=2)
    augmented = SliceStore.open(out)
    assert len(augmented) == 40 and aug["n_original"] == 15 and aug["n_augmented"] == 25
    np.testing.assert_array_equal(augmented.labels[:15], store.labels)
    assert set(np.unique(augmented.labels)) <= {0, 1}
    assert augmented.index["augmented"].sum() == 25
    # Deterministic whatever the worker count.
    build_augmented(str(store.directory), str(tmp_path / "aug1"), params.augment, threads=1)
    np.testing.assert_array_equal(SliceStore.open(tmp_path / "aug1").labels, augmented.labels)


def test_failed_build_leaves_nothing_that_looks_complete(heart_copy, tmp_path):
    params = _params(heart_copy)
    report = inspect_dataset(heart_copy, params)
    patients = split_patients([c["patient"] for c in report["cases"]], params.split)
    victim = heart_copy / report["cases"][[c["patient"] for c in report["cases"]]
                                          .index(patients["train"][-1])]["image"]
    victim.write_bytes(victim.read_bytes()[:3000])  # corrupted after inspection
    out = tmp_path / "train"
    with pytest.raises(Exception, match="truncated or corrupt"):
        build.build_store(params, report, {"params": {}, "patients": patients}, "train", out)
    assert not any((out / name).exists() for name in STORE_FILES)
    assert not list(out.glob(".*partial*"))
    with pytest.raises(FileNotFoundError, match="incomplete"):
        SliceStore.open(out)


def test_numeric_patient_ids_stay_strings(tmp_path):
    import pandas as pd

    from segscale.data.store import SliceStoreWriter

    writer = SliceStoreWriter(tmp_path / "s", 2, (8, 8), 1)
    writer.write(0, np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8)))
    writer.commit(pd.DataFrame({"patient": ["001", "010"], "slice": [0, 1]}), {"n_classes": 2})
    assert SliceStore.open(tmp_path / "s").index["patient"].tolist() == ["001", "010"]


@pytest.mark.parametrize("select", ["labelled", "even"])
def test_test_store_holds_every_plane_train_and_val_follow_count(heart_task, tmp_path, select):
    """`slices.count`/`select`/`margin` choose train and val planes only: the test store
    has every plane of every volume in order, so no test label decides what is scored."""
    from segscale.data.slicing import choose_slices, map_labels

    planes = {}
    for split in ("train", "val", "test"):
        params, manifest = _build(heart_task, tmp_path / split, split,
                                  slices={"count": 3, "select": select, "margin": 1})
        store = SliceStore.open(tmp_path / split)
        for patient in manifest["patients"]:
            vol = manifest["volumes"][patient]
            rows = store.index[store.index["patient"] == patient]
            assert rows["slice"].tolist() == vol["slices"]
            label = map_labels(np.asarray(nib.load(str(heart_task / vol["label"])).dataobj),
                               params.label_map)
            if split == "test":
                assert vol["slices"] == list(range(vol["shape"][2])) == list(range(20))
            else:
                assert vol["slices"] == choose_slices(label, params.slices).tolist()
                assert len(vol["slices"]) == 3
            planes[split] = planes.get(split, 0) + len(vol["slices"])
        assert manifest["count"] == len(store) == planes[split]
        if split == "test":
            assert manifest["selection"] == "all planes along axis 2 (test split)"
            assert len(store) == 20 * len(manifest["patients"])
        else:
            where = ("the whole volume" if select == "even"
                     else "the labelled extent plus a margin of 1 on each side")
            assert manifest["selection"] == (f"min(3, depth) planes along axis 2, spread "
                                             f"evenly over {where}")
    assert planes["train"] == 3 * 3 and planes["val"] == 3  # 3 train, 1 val patient
