"""The whole DAG for real on CPU through the local profile: generated data, 1- and 2-rank
Horovod runs, evaluation, tables and figures; then the promises about reruns."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from .helpers import REPO, TEST_CONFIG, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.horovod]

TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
RUNS = ["tiny-heart/unet/horovod/none/gpus1/rep0", "tiny-heart/unet/horovod/none/gpus2/rep0",
        "tiny-heart/unet/horovod/gradual/gpus2/rep0"]
DEMO_TARGETS = ("all", "predict_scaling")


def _local(workdir, *args, timeout=900):
    return snakemake(workdir, "--profile", str(REPO / "profiles" / "local"), "--configfile",
                     str(TEST_CONFIG), *args, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not TRAIN_PYTHON.exists():
        pytest.skip("training environment missing: run scripts/setup.sh")
    workdir = tmp_path_factory.mktemp("demo")
    proc = _local(workdir, "--", *DEMO_TARGETS)  # as scripts/demo.sh
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return workdir


def test_every_run_trained_with_its_rank_count_and_was_evaluated(demo):
    split = json.loads((demo / "results/data/tiny-heart/split.json").read_text())
    test_volumes = sorted(f"{p}.nii.gz" for p in split["patients"]["test"])
    for run in RUNS:
        folder = demo / "results" / "runs" / run
        manifest = json.loads((folder / "run.json").read_text())
        history = pd.read_csv(folder / "history.csv")
        metrics = json.loads((folder / "metrics.json").read_text())
        n = int(re.search(r"gpus(\d+)", run)[1])
        assert manifest["status"] == "ok" and manifest["n_ranks"] == n
        assert history["epoch"].tolist() == [0, 1] and (history["ranks"] == n).all()
        assert 0 <= metrics["summary"]["dice"] <= 1
        assert sorted(p.name for p in (folder / "predictions").glob("*.nii.gz")) == test_volumes
    # gradual warmup on 2 ranks: epoch 0 at the base lr, then lr x 2 (warmup_epochs: 1)
    lrs = pd.read_csv(demo / "results/runs" / RUNS[2] / "history.csv")["lr"]
    assert lrs.iloc[-1] == pytest.approx(2e-3)


def test_tables_and_figures(demo):
    runs = pd.read_csv(demo / "results" / "tables" / "runs.csv")
    assert len(runs) == 3 and set(runs["status"]) == {"ok"}
    for name in ("training_time", "speedup", "efficiency", "metrics_vs_gpus", "curves",
                 "resources"):
        for ext in ("png", "svg"):
            assert (demo / "results" / "figures" / f"{name}.{ext}").stat().st_size > 5000


def test_report_holds_the_figures_tables_and_prediction(demo):
    """The HTML report scripts/demo.sh builds: every figure and table of the targets, the
    predictor's included, with their captions."""
    proc = _local(demo, "--report", "report.html", "--", *DEMO_TARGETS, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = (demo / "report.html").read_text()
    for name in ("speedup.png", "efficiency.png", "breakdown.png", "time_to_accuracy.png",
                 "predicted_scaling.png", "predicted_scaling.csv", "runs.csv"):
        assert name in html, name
    assert "alpha-beta" in html  # the predictor's caption
    predicted = pd.read_csv(demo / "results/tables/predicted_scaling.csv")
    assert predicted["gpus"].max() == 512 and "local" in set(predicted["cluster"])


def test_figures_dry_run_schedules_no_training(demo):
    proc = _local(demo, "-n", "--", "figures", timeout=300)
    assert proc.returncode == 0
    out = proc.stdout + proc.stderr
    assert "rule train" not in out and "rule evaluate" not in out


def test_single_point_rerun_runs_exactly_one_training(demo):
    target = f"results/runs/{RUNS[1]}/metrics.json"
    before = {run: json.loads((demo / "results/runs" / run / "run.json").read_text())
              for run in RUNS}
    proc = _local(demo, "--forcerun", "train", "--", target)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout + proc.stderr
    assert out.count("rule train:") == 1 and f"{RUNS[1]}" in out
    assert "rule aggregate" not in out
    after = {run: json.loads((demo / "results/runs" / run / "run.json").read_text())
             for run in RUNS}
    # The point really trained again (no checkpoint to resume from), the others untouched.
    assert after[RUNS[1]]["resumed_from_epoch"] is None
    assert after[RUNS[1]]["environment"]["created"] >= before[RUNS[1]]["environment"]["created"]
    assert after[RUNS[1]]["train_time_s"] != before[RUNS[1]]["train_time_s"]
    for run in (RUNS[0], RUNS[2]):
        assert after[run] == before[run]


def test_guideline_loop_runs_to_a_decision(demo, tmp_path):
    """The GreScale guideline as part of the workflow: iterations train with grescale
    against the sweep's 1-GPU baseline until a decision says done."""
    overlay = tmp_path / "tune.yaml"
    overlay.write_text("guideline: {gpus: [2], min_gpus: 2, max_iterations: 3, start: {}}\n")
    proc = _local(demo, "--configfile", str(TEST_CONFIG), str(overlay), "--", "tune")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    loop = demo / "results" / "tune" / "tiny-heart" / "unet" / "gpus2"
    table = pd.read_csv(loop / "iterations.csv")
    decisions = sorted(loop.glob("iter*/decision.json"))
    assert 1 <= len(decisions) <= 3
    final = json.loads(decisions[-1].read_text())
    assert final["done"] and final["reason"]
    assert all(not json.loads(d.read_text())["done"] for d in decisions[:-1])
    for decision in decisions:
        run = json.loads((decision.parent / "run.json").read_text())
        assert run["policy"] == "grescale" and run["n_ranks"] == 2
    assert len(table) >= len(decisions)  # one row per iteration (+ the baseline row)
    assert "rule train:" not in proc.stdout + proc.stderr  # the baseline was reused

    # The guideline's results beside the sweep: tables and figure (thesis figs 6.4-6.6).
    proc = _local(demo, "--configfile", str(TEST_CONFIG), str(overlay), "--", "guideline")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    tuned = pd.read_csv(demo / "results" / "tables" / "guideline_tuned.csv")
    last = table[table["action"].ne("baseline")].iloc[-1]
    assert tuned[["dataset", "arch", "gpus"]].values.tolist() == [["tiny-heart", "unet", 2]]
    assert tuned["dice"].iloc[0] == pytest.approx(last["dice"])
    assert tuned["iterations_run"].iloc[0] == len(decisions)
    assert (demo / "results" / "figures" / "guideline.svg").stat().st_size > 5000

    # ... and in the HTML report of that target, with its captions (docs/guideline.md)
    proc = _local(demo, "--configfile", str(TEST_CONFIG), str(overlay), "--report",
                  "guideline-report.html", "--", "all", "guideline")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = (demo / "guideline-report.html").read_text()
    for name in ("guideline.png", "guideline_tuned.csv", "speedup.png"):
        assert name in html, name
