"""A training that fails is a row, not a blocker: with the local profile (keep-going) the
sweep still ends in tables and figures, and the failed run is in them with its status."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from .helpers import REPO, TEST_CONFIG, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

BROKEN_BUILDER = '''
def build(input_shape, n_classes, **options):
    raise RuntimeError("this architecture cannot be built (a test's broken builder)")
'''


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    work = tmp_path_factory.mktemp("failed")
    builder = work / "broken_builder.py"
    builder.write_text(BROKEN_BUILDER)
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["archs"]["broken"] = {**config["archs"]["unet"], "builder": f"{builder}:build"}
    config["archs"]["broken"].pop("model")
    config["sweep"] = {"archs": ["unet", "broken"], "policies": ["none"], "gpus": [1, 2],
                       "repeats": 1}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(work, "--profile", str(REPO / "profiles" / "local"), "--configfile",
                     str(path), timeout=1200)
    return work, proc


def test_the_sweep_finishes_with_figures(sweep):
    work, proc = sweep
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for name in ("speedup", "metrics_vs_gpus", "training_time"):
        assert (work / "results" / "figures" / f"{name}.png").stat().st_size > 5000
    assert "not drawn: 2 failed run(s)" in (work / "results/figures/speedup.svg").read_text()


def test_failed_runs_are_rows_with_their_cause(sweep):
    work, _ = sweep
    runs = pd.read_csv(work / "results" / "tables" / "runs.csv", keep_default_na=False)
    status = dict(zip(zip(runs["arch"], runs["gpus"]), runs["status"]))
    assert status == {("unet", 1): "ok", ("unet", 2): "ok",
                      ("broken", 1): "failed", ("broken", 2): "failed"}
    broken = runs[runs["arch"].eq("broken")]
    assert broken["note"].str.contains("this architecture cannot be built").all()
    for n in (1, 2):
        run = (work / "results" / "runs" / "tiny-heart" / "broken" / "horovod" / "none"
               / f"gpus{n}" / "rep0")
        record = json.loads((run / "run.json").read_text())
        assert record["status"] == "failed" and "RuntimeError" in record["error"]
        assert record["n_ranks"] == n
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "failed" and "cannot be built" in metrics["error"]
        assert not (run / "model.keras").exists()
        assert not list((run / "predictions").glob("*.nii.gz"))
