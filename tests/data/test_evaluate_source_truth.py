"""Volume-level scores compare against the source labels, not the store's resampled ones."""

from __future__ import annotations

import json

import numpy as np

from segscale.data import build
from segscale.data.params import DatasetParams
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
