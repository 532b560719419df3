"""predict trusts run.json: failed runs are skipped with their cause, a model that is not the
one the run recorded is refused (no TensorFlow needed for either)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segscale.evaluate import predict
from segscale.fileio import sha256


def _run(tmp_path, record, model=b"weights"):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(model)
    (run / "run.json").write_text(json.dumps(record))
    return run


def test_recorded_model_passes_and_a_stale_one_is_refused(tmp_path):
    run = _run(tmp_path, {"status": "ok"})
    record = {"status": "ok", "model_sha256": sha256(run / "model.keras")}
    predict.check_model(run, record)
    (run / "model.keras").write_bytes(b"an earlier attempt's weights")
    with pytest.raises(ValueError, match="not the model this run wrote"):
        predict.check_model(run, record)
    predict.check_model(run, {"status": "ok"})  # records from before the digest: no check


def test_failed_run_is_skipped_with_its_cause(tmp_path):
    run = _run(tmp_path, {"status": "failed", "error": "RuntimeError: boom"}, model=b"")
    (run / "model.keras").unlink()
    code = predict.main(["--run", str(run), "--store", str(tmp_path / "no-store"),
                         "--pred", str(tmp_path / "pred.npy"),
                         "--inference", str(tmp_path / "inference.json")])
    assert code == 0
    assert np.load(tmp_path / "pred.npy").size == 0
    info = json.loads((tmp_path / "inference.json").read_text())
    assert info["run_status"] == "failed" and "RuntimeError: boom" in info["skipped"]
    assert info["batch1_ms_per_image"] is None
