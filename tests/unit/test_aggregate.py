"""Aggregation on a synthetic results tree built to the docs/formats.md run-directory contract.

The tree (``make_results_tree``) is also what tests/unit/test_plots.py draws from:

=========  ====  ======================  =========================================
policy     gpus  train_time_s per rep    notes
=========  ====  ======================  =========================================
none       1     100, 110, 120           baseline of none, constant-like policies
none       2     60, 55, 65
none       4     30, 32, 34
gradual    2     58, 62, 60              no 1-GPU runs: baseline falls back to none
gradual    4     30, 34, (12 diverged)   rep2 diverged after 2 of 4 epochs
grescale   1     200, 220                its own 1-GPU baseline
grescale   4     60, (failed)            rep1: only ckpt/ survived, no run.json
=========  ====  ======================  =========================================
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segscale import study
from segscale.report import runs as report_runs
from segscale.report import tables as agg

EPOCHS = 4
IMAGES_PER_EPOCH = 280  # every run does the same work (equal_work: tests below vary it)
CLASS_NAMES = ["background", "left atrium"]
# (policy, gpus) -> per repeat: (train_time_s, dice, status)
SWEEP = {
    ("none", 1): [(100.0, 0.80, "ok"), (110.0, 0.82, "ok"), (120.0, 0.84, "ok")],
    ("none", 2): [(60.0, 0.81, "ok"), (55.0, 0.80, "ok"), (65.0, 0.79, "ok")],
    ("none", 4): [(30.0, 0.76, "ok"), (32.0, 0.78, "ok"), (34.0, 0.77, "ok")],
    ("gradual", 2): [(58.0, 0.81, "ok"), (62.0, 0.83, "ok"), (60.0, 0.82, "ok")],
    ("gradual", 4): [(30.0, 0.79, "ok"), (34.0, 0.81, "ok"), (12.0, 0.05, "diverged")],
    ("grescale", 1): [(200.0, 0.83, "ok"), (220.0, 0.85, "ok")],
    ("grescale", 4): [(60.0, 0.82, "ok"), (None, None, "failed")],
}


def _metrics(dice: float, status: str) -> dict:
    levels = {
        level: {"n": n, "dice": dice + off, "mean_iou": dice - 0.1 + off,
                "mean_accuracy": 0.9 + off / 2, "valid_counts": {"dice": n - 1}}
        for level, n, off in (("slice", 700, 0.0), ("volume", 10, 0.01), ("split", 1, 0.005))
    }
    levels["slice"]["per_class"] = {"dice": [0.99, dice]}
    regions = {} if dice < 0.5 else {"whole_tumour": {"labels": [1, 2, 3],
                                                      "slice": {"n": 700, "dice": dice}}}
    return {
        "status": status, "n_classes": 2, "class_names": CLASS_NAMES,
        "summary": {"dice": dice, "pixel_accuracy": 0.99, "mean_accuracy": 0.9 + dice / 10,
                    "mean_iou": dice - 0.1, "fw_iou": 0.98, "sensitivity": dice + 0.05,
                    "specificity": 0.999, "avg_hausdorff": 10 * (1 - dice), "hd95": float("nan")},
        "levels": levels, "regions": regions,
        "inference": {"batch1_ms_per_image": 12.5, "batched_ms_per_image": 3.0,
                      "batch_size": 16},
    }


LR_SHAPE = {"none": lambda e: np.ones(e.size), "gradual": lambda e: np.minimum(1, (e + 1) / 2),
            "grescale": lambda e: np.where(e < 2, (e + 1) / 2, 0.8 ** (e - 1))}


def _history(time_s: float, epochs: int, gpus: int, diverged: bool,
             policy: str = "gradual") -> pd.DataFrame:
    epoch = np.arange(epochs)
    loss = 1.0 / (1 + epoch) + 0.02 * len(policy) if not diverged \
        else np.array([0.9, np.inf])[:epochs]
    return pd.DataFrame({
        "epoch": epoch, "lr": 1e-5 * gpus * LR_SHAPE.get(policy, LR_SHAPE["none"])(epoch),
        "loss": loss, "val_loss": 1.1 / (1 + epoch), "val_dice": 0.5 + 0.1 * epoch,
        "epoch_time_s": time_s / epochs, "images_per_s": 7 * gpus * 10 + epoch,
        "ranks": gpus,
    })


def _resources(gpus: int, rng: np.random.Generator) -> dict[int, pd.DataFrame]:
    t = np.arange(0, 40, 2.0)
    return {k: pd.DataFrame({
        "time_s": t, "cpu_percent": 80 + 10 * rng.random(t.size),
        "rss_mb": 2000 + 5 * t, "gpu_util": 60 + 30 * np.sin(t / 5 + k) ** 2,
        "gpu_mem_mb": 4000 + 100 * k + 0 * t,
        "net_sent_bytes": np.cumsum(1e6 * (1 + rng.random(t.size))),
        "net_recv_bytes": np.cumsum(1e6 * (1 + rng.random(t.size))),
    }) for k in range(gpus)}


def make_results_tree(root: Path, sweep: dict | None = None, dataset: str = "lasc",
                      arch: str = "unet", resources: bool = True,
                      strategy: str = "horovod") -> list[Path]:
    """Write run directories under ``root``; returns the metrics.json paths (what Snakemake
    would pass). A ``failed`` entry gets only ``ckpt/``."""
    rng = np.random.default_rng(0)
    metrics_paths = []
    for (policy, gpus), reps in (sweep or SWEEP).items():
        for rep, (time_s, dice, status) in enumerate(reps):
            run = root / study.run_dir(dataset, arch, policy, gpus, rep, strategy)
            (run / "ckpt").mkdir(parents=True)
            if status == "failed":
                continue
            epochs = 2 if status == "diverged" else EPOCHS
            _history(time_s, epochs, gpus, status == "diverged", policy).to_csv(
                run / "history.csv", index=False)
            (run / "run.json").write_text(json.dumps({
                "status": status, "dataset": dataset, "arch": arch, "policy": policy,
                "strategy": strategy, "n_ranks": gpus, "repeat": rep, "seed": rep,
                "hparams": {"lr": 2e-5, "batch_size": 7, "epochs": EPOCHS,
                            "optimizer": "sgd", "warmup": {"epochs": 5}},
                "epochs_planned": EPOCHS, "epochs_completed": epochs,
                "train_time_s": time_s, "hosts": [f"node{i // 2}" for i in range(gpus)],
                "resumed_from_epoch": None, "images_per_epoch": IMAGES_PER_EPOCH,
                "images_per_epoch_1gpu": IMAGES_PER_EPOCH,
                "images_seen": epochs * IMAGES_PER_EPOCH,
                "environment": {"gpus": ["Fake GPU"], "git": "abc123",
                                "slurm": {"SLURM_JOB_ID": "42"}},
            }))
            if resources:
                (run / "resources").mkdir()
                for k, frame in _resources(gpus, rng).items():
                    frame.to_csv(run / "resources" / f"rank{k}.csv", index=False)
            (run / "metrics.json").write_text(json.dumps(_metrics(dice, status)))
            metrics_paths.append(run / "metrics.json")
    return metrics_paths


def table_paths(out: Path) -> dict[str, Path]:
    return {"runs-csv": out / "runs.csv", "runs-parquet": out / "runs.parquet",
            "summary": out / "summary.csv", "scaling": out / "scaling.csv",
            "history": out / "history.csv", "resources": out / "resources.csv"}


def cli_args(metrics: list[Path], root: Path | None, out: Path) -> list[str]:
    args = ["--metrics", *map(str, metrics)]
    if root is not None:
        args += ["--runs-root", str(root)]
    for flag, path in table_paths(out).items():
        args += [f"--{flag}", str(path)]
    return args


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("results") / "runs"
    return root, make_results_tree(root)


@pytest.fixture(scope="module")
def runs(tree) -> pd.DataFrame:
    root, metrics = tree
    return report_runs.collect_runs(metrics, root)


def _row(df: pd.DataFrame, policy: str, gpus: int, repeat: int | None = None) -> pd.Series:
    sel = df[(df.policy == policy) & (df.gpus == gpus)]
    if repeat is not None:
        sel = sel[sel.repeat == repeat]
    assert len(sel) == 1, sel
    return sel.iloc[0]


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("path, expected", [
    ("results/runs/lasc/unet/horovod/none/gpus4/rep2",
     ("lasc", "unet", "horovod", "none", 4, 2)),
    ("/abs/brats/fcn/tf-collective/grescale/gpus18/rep0/",
     ("brats", "fcn", "tf-collective", "grescale", 18, 0)),
    # stored before the strategy axis: Horovod's
    ("results/runs/lasc/unet/none/gpus4/rep2", ("lasc", "unet", "horovod", "none", 4, 2)),
    ("lasc/unet/none/gpus0/rep1", None),
    ("lasc/unet/gpus4/rep1", None),
    ("tune/lasc/unet/iter3", None),
])
def test_parse_run_dir(path, expected):
    got = study.parse_run_dir(path)
    assert (got if got is None else tuple(got[k] for k in study.RUN_KEYS)) == expected


def test_flatten_metrics_levels_classes_and_inference():
    flat = report_runs.flatten_metrics(_metrics(0.8, "ok"))
    assert flat["dice"] == 0.8
    assert flat["slice_dice"] == 0.8 and flat["volume_dice"] == pytest.approx(0.81)
    assert flat["split_n"] == 1 and flat["volume_valid_counts_dice"] == 9
    assert flat["slice_per_class_dice_left_atrium"] == 0.8
    assert flat["slice_per_class_dice_background"] == 0.99
    assert flat["inference_batch1_ms_per_image"] == 12.5
    assert math.isnan(flat["hd95"])
    assert flat["region_whole_tumour_slice_dice"] == 0.8
    assert "status" not in flat and "class_names" not in flat
    assert not any("labels" in k for k in flat)


# --------------------------------------------------------------------------- runs table
def test_runs_table_rows_and_status(runs):
    assert len(runs) == sum(len(v) for v in SWEEP.values()) == 19
    assert runs.status.value_counts().to_dict() == {"ok": 17, "diverged": 1, "failed": 1}
    assert _row(runs, "gradual", 4, 2).status == "diverged"
    failed = _row(runs, "grescale", 4, 1)
    assert failed.status == "failed" and "no metrics.json" in failed.note
    assert math.isnan(failed.train_time_s) and math.isnan(failed.dice)
    assert list(runs.columns[:7]) == [*study.RUN_KEYS, "status"]
    # policies in their natural order, then gpus, then repeat
    assert list(dict.fromkeys(runs.policy)) == ["none", "gradual", "grescale"]


def test_runs_table_values(runs):
    r = _row(runs, "none", 2, 1)
    assert (r.dataset, r.arch, r.seed, r.hp_lr, r.hp_warmup_epochs) == ("lasc", "unet", 1, 2e-5, 5)
    assert r.hp_optimizer == "sgd"
    assert r.train_time_s == 55.0 and r.time_per_epoch_s == 55.0 / EPOCHS
    assert r.images_per_s == 140 + 1.5  # median of 140..143
    assert r.images_per_s_per_gpu == pytest.approx(141.5 / 2)
    assert r.dice == 0.80 and r.slice_mean_iou == pytest.approx(0.70)
    assert r.final_lr == pytest.approx(2e-5) and r.final_loss == pytest.approx(0.25 + 0.08)
    assert r.hosts == "node0,node0" and r.n_hosts == 1 and r.slurm_job_id in (42, "42")
    d = _row(runs, "gradual", 4, 2)
    assert d.epochs_completed == 2 and d.time_per_epoch_s == 6.0
    assert math.isnan(d.final_loss)  # inf loss of the diverged epoch is not a number


def test_parquet_equals_csv(tree, tmp_path):
    root, metrics = tree
    assert agg.main(cli_args(metrics, root, tmp_path)) == 0
    csv = pd.read_csv(tmp_path / "runs.csv")
    pq = pd.read_parquet(tmp_path / "runs.parquet")
    assert list(csv.columns) == list(pq.columns)
    num = csv.select_dtypes("number").columns
    np.testing.assert_allclose(csv[num].to_numpy(float), pq[num].to_numpy(float))
    assert (csv.status == pq.status).all()


def test_without_runs_root_failed_run_is_absent(tree):
    _, metrics = tree
    df = report_runs.collect_runs(metrics)
    assert len(df) == 18 and "failed" not in set(df.status)


def test_unrequested_evaluated_run_is_skipped(tree):
    root, metrics = tree
    df = report_runs.collect_runs(metrics[1:], root)  # rep0 of none/1 not requested
    assert len(df) == 18
    assert not ((df.policy == "none") & (df.gpus == 1) & (df.repeat == 0)).any()


# --------------------------------------------------------------------------- summary
def test_summary_counts_and_stats(runs):
    s = agg.summarise(runs)
    t = s[s.measure == "train_time_s"].set_index(["policy", "gpus"])
    assert t.loc[("none", 1), "mean"] == 110 and t.loc[("none", 1), "std"] == 10
    assert t.loc[("none", 1), "count"] == 3
    # the diverged repeat is counted but not averaged
    g4 = t.loc[("gradual", 4)]
    assert (g4["mean"], g4["count"], g4.n_runs, g4.n_ok, g4.n_diverged) == (32, 2, 3, 2, 1)
    assert g4["std"] == pytest.approx(math.sqrt(8))
    r4 = t.loc[("grescale", 4)]
    assert (r4["mean"], r4["count"], r4.n_failed) == (60, 1, 1) and math.isnan(r4["std"])
    d = s[s.measure == "dice"].set_index(["policy", "gpus"])
    assert d.loc[("none", 1), "mean"] == pytest.approx(0.82)
    assert d.loc[("none", 1), "std"] == pytest.approx(0.02)
    assert {"slice_dice", "volume_dice", "split_dice", "images_per_s",
            "time_per_epoch_s"} <= set(s.measure)
    assert not {"gpus", "repeat", "seed", "hp_lr", "slice_valid_counts_dice"} & set(s.measure)
    assert len(s) == 7 * s.measure.nunique()  # every configuration x every measure


def test_summary_config_with_no_ok_run_still_listed():
    df = pd.DataFrame({"dataset": "d", "arch": "a", "strategy": "horovod", "policy": "none",
                       "gpus": [1, 1, 2],
                       "repeat": [0, 1, 0], "status": ["ok", "ok", "diverged"],
                       "train_time_s": [10.0, 12.0, 3.0]})
    s = agg.summarise(df).set_index("gpus")
    assert s.loc[2, "count"] == 0 and math.isnan(s.loc[2, "mean"]) and s.loc[2, "n_diverged"] == 1


# --------------------------------------------------------------------------- scaling
def test_scaling_arithmetic_and_baselines(runs):
    sc = agg.scaling(runs).set_index(["policy", "gpus"])
    assert len(sc) == 7
    b = sc.loc[("none", 1)]
    assert (b.speedup, b.speedup_std, b.efficiency, b.baseline_policy) == (1, 0, 1, "none")

    n2 = sc.loc[("none", 2)]
    s = 110 / 60
    s_std = s * math.sqrt((10 / 110) ** 2 + (5 / 60) ** 2)
    assert n2.speedup == pytest.approx(s) and n2.speedup_std == pytest.approx(s_std)
    assert n2.efficiency == pytest.approx(s / 2) and n2.efficiency_std == pytest.approx(s_std / 2)
    assert (n2.time_mean_s, n2.time_std_s, n2.n_ok) == (60, 5, 3)

    g4 = sc.loc[("gradual", 4)]  # falls back to none's 1-GPU runs; diverged rep excluded
    s = 110 / 32
    assert g4.baseline_policy == "none" and g4.baseline_n == 3
    assert g4.speedup == pytest.approx(s) and g4.efficiency == pytest.approx(s / 4)
    assert g4.speedup_std == pytest.approx(s * math.sqrt((10 / 110) ** 2 + (8**0.5 / 32) ** 2))
    assert g4.n_ok == 2

    r4 = sc.loc[("grescale", 4)]  # own baseline; a single ok repeat -> unknown spread
    assert r4.baseline_policy == "grescale" and r4.baseline_time_mean_s == 210
    assert r4.speedup == pytest.approx(3.5) and r4.efficiency == pytest.approx(0.875)
    assert math.isnan(r4.speedup_std) and math.isnan(r4.efficiency_std)
    assert r4.ideal_speedup == 4


def test_scaling_of_the_tree_is_equal_work(runs):
    sc = agg.scaling(runs).set_index(["policy", "gpus"])
    timed = sc[sc.n_ok > 0]
    assert timed.equal_work.eq(True).all() and (timed.work_ratio == 1).all()
    assert (timed.images_per_epoch == IMAGES_PER_EPOCH).all()
    assert sc.loc[("gradual", 4)].n_diverged == 1 and sc.loc[("grescale", 4)].n_failed == 1
    assert sc.loc[("gradual", 4)].note == "left out of the time to train: 1 diverged run(s)"
    assert sc.loc[("none", 2)].note == ""


def _work_runs() -> pd.DataFrame:
    """Hand-made runs table: 1-GPU none (2 repeats, 100 and 120 s), 2 GPUs (60, 64 s),
    4 GPUs (30 s), all 200 images x 4 epochs; each test changes what it needs."""
    rows = [(1, 0, 100.0), (1, 1, 120.0), (2, 0, 60.0), (2, 1, 64.0), (4, 0, 30.0)]
    df = pd.DataFrame([{"dataset": "d", "arch": "a", "strategy": "horovod", "policy": "none",
                        "gpus": g,
                        "repeat": r, "status": "ok", "stop_reason": None,
                        "train_time_s": t, "time_per_epoch_s": t / 4,
                        "images_per_s": 800 / t, "epochs_completed": 4.0,
                        "images_per_epoch": 200.0, "images_per_epoch_1gpu": 200.0,
                        "images_seen": 800.0} for g, r, t in rows])
    return df


def test_unequal_images_per_epoch_are_marked_not_hidden():
    # 2 GPUs rounded 200 images down to 192 per epoch (whole global batches of 16)
    df = _work_runs()
    df.loc[df.gpus.eq(2), ["images_per_epoch", "images_seen"]] = [192.0, 768.0]
    sc = agg.scaling(df).set_index("gpus")
    two = sc.loc[2]
    assert two.equal_work == False  # noqa: E712
    assert two.note == "unequal work: 192 images per epoch vs the 1-GPU baseline's 200"
    assert two.work_ratio == pytest.approx(0.96)
    assert two.speedup == pytest.approx(110 / 62)  # given, but marked
    assert sc.loc[1].equal_work == True and sc.loc[4].equal_work == True  # noqa: E712
    assert sc.loc[4].note == "" and sc.loc[4].work_ratio == 1


def test_rounding_of_the_split_is_equal_work_with_the_time_scaled():
    """2 ranks x batch 8 split the 1-GPU run's 200 images into 12 steps = 192: short by less
    than one global batch (16), the unavoidable rounding; the 2-GPU time is scaled to 200
    images so that the speedup compares the same work. 4 GPUs short by 40 (> 32): unequal."""
    df = _work_runs().assign(global_batch=lambda d: 8.0 * d.gpus)
    df.loc[df.gpus.eq(2), ["images_per_epoch", "images_seen"]] = [192.0, 768.0]
    df.loc[df.gpus.eq(4), ["images_per_epoch", "images_seen"]] = [160.0, 640.0]
    sc = agg.scaling(df).set_index("gpus")
    two, four = sc.loc[2], sc.loc[4]
    assert two.equal_work == True  # noqa: E712
    assert two.speedup == pytest.approx(110 / (62 * 200 / 192))
    assert two.efficiency == pytest.approx(two.speedup / 2)
    assert two.note == ("time scaled to the baseline's 200 images per epoch (the split over "
                        "ranks leaves 192: less than one global batch of 16)")
    assert four.equal_work == False and four.speedup == pytest.approx(110 / 30)  # noqa: E712
    assert four.note == "unequal work: 160 images per epoch vs the 1-GPU baseline's 200"


def test_unequal_epochs_are_marked():
    df = _work_runs()
    df.loc[df.gpus.eq(4), ["epochs_completed", "images_seen"]] = [5.0, 1000.0]
    four = agg.scaling(df).set_index("gpus").loc[4]
    assert four.equal_work == False  # noqa: E712
    assert four.note == "unequal work: 5 epochs vs the 1-GPU baseline's 4"
    assert four.work_ratio == pytest.approx(1.25)


def test_early_stopped_and_diverged_runs_are_left_out_of_time_to_train():
    df = _work_runs()
    df.loc[df.gpus.eq(2) & df.repeat.eq(1), ["stop_reason", "train_time_s",
                                             "epochs_completed"]] = ["early_stopped", 16.0, 1.0]
    df.loc[df.gpus.eq(1) & df.repeat.eq(1), ["status", "train_time_s"]] = ["diverged", 5.0]
    sc = agg.scaling(df).set_index("gpus")
    one, two = sc.loc[1], sc.loc[2]
    assert (one.time_mean_s, one.n_ok, one.n_diverged) == (100.0, 1, 1)
    assert (two.time_mean_s, two.n_ok, two.n_early_stopped) == (60.0, 1, 1)
    assert two.speedup == pytest.approx(100 / 60)
    assert two.equal_work == True  # noqa: E712 - the timed repeat did the baseline's work
    assert two.note == "left out of the time to train: 1 early-stopped run(s)"
    assert one.note == "left out of the time to train: 1 diverged run(s)"
    # its epochs still count per epoch
    assert two.time_per_epoch_mean_s == pytest.approx((15 + 16) / 2)


def test_unrecorded_work_is_unknown_not_equal(tmp_path):
    df = _work_runs().drop(columns=["images_per_epoch", "images_per_epoch_1gpu",
                                    "images_seen"])
    sc = agg.scaling(df)
    assert sc.equal_work.isna().all() and sc.work_ratio.isna().all()
    assert sc.note.str.startswith("work not recorded").all()
    # the CSV says True, False or nothing
    df = _work_runs()
    df.loc[df.gpus.eq(4), "images_per_epoch"] = 192.0
    agg.write_csv(agg.scaling(df), tmp_path / "s.csv")
    back = pd.read_csv(tmp_path / "s.csv")
    assert back.equal_work.tolist() == [True, True, False]


def test_run_work_from_older_records():
    assert report_runs.run_work({"steps_per_epoch": 12, "global_batch": 16,
                                 "epochs_completed": 3}) == {
        "images_per_epoch": 192.0, "images_per_epoch_1gpu": pytest.approx(math.nan, nan_ok=True),
        "images_seen": 576.0}
    assert report_runs.run_work({"images_per_epoch": 40, "images_per_epoch_1gpu": 50,
                                 "images_seen": 120, "epochs_completed": 9}) == {
        "images_per_epoch": 40.0, "images_per_epoch_1gpu": 50.0, "images_seen": 120.0}


def test_scaling_without_baseline_is_nan(caplog):
    df = pd.DataFrame({"dataset": "d", "arch": "a", "strategy": "horovod", "policy": "gradual",
                       "gpus": [2, 4],
                       "repeat": 0, "status": "ok", "train_time_s": [10.0, 6.0],
                       "time_per_epoch_s": [1.0, 0.6], "images_per_s": [5.0, 9.0]})
    with caplog.at_level(logging.WARNING):
        sc = agg.scaling(df)
    assert sc.speedup.isna().all() and (sc.baseline_policy == "").all()
    assert "no ok 1-GPU baseline" in caplog.text


@pytest.mark.parametrize("num_std, den_std, expected", [
    (0.0, 0.0, 0.0), (1.0, 0.0, 0.2), (float("nan"), 1.0, float("nan")),
])
def test_ratio_std(num_std, den_std, expected):
    got = agg.ratio_std(2.0, 10.0, num_std, 5.0, den_std)
    assert got == pytest.approx(expected, nan_ok=True)


# --------------------------------------------------------------------------- long tables
def test_history_and_resources_tables(runs):
    hist = report_runs.collect_history(runs)
    assert len(hist) == 17 * EPOCHS + 2  # failed run has none; diverged has 2 epochs
    assert list(hist.columns[:7]) == [*study.RUN_KEYS, "status"]
    assert set(hist[hist.status == "diverged"].epoch) == {0, 1}
    res = report_runs.collect_resources(runs)
    ranks = sum(g for (_, g), reps in SWEEP.items() for t, _, st in reps if st != "failed")
    assert len(res) == ranks * 20 and res["rank"].max() == 3
    thinned = report_runs.collect_resources(runs, max_points=6)
    assert len(thinned) == ranks * 6  # rows 0, 4, 8, 12, 16 of 20, plus the last


def test_thin_keeps_last_row():
    frame = pd.DataFrame({"x": range(10)})
    assert list(report_runs.thin(frame, 3).x) == [0, 4, 8, 9]
    assert len(report_runs.thin(frame, 0)) == 10


# --------------------------------------------------------------------------- bad input
def test_cli_bad_json_names_file_and_writes_nothing(tree, tmp_path, caplog):
    root, metrics = tree
    bad_root = tmp_path / "runs"
    bad = make_results_tree(bad_root, {("none", 1): [(1.0, 0.5, "ok")]})
    bad[0].write_text("{not json")
    out = tmp_path / "tables"
    with caplog.at_level(logging.ERROR):
        rc = agg.main(cli_args(bad, None, out))
    assert rc != 0
    assert str(bad[0]) in caplog.text and "not valid JSON" in caplog.text
    assert not out.exists() or not any(out.iterdir())


def test_run_json_contradicting_path_is_an_error(tmp_path):
    metrics = make_results_tree(tmp_path, {("none", 2): [(1.0, 0.5, "ok")]})
    run_json = metrics[0].parent / "run.json"
    payload = json.loads(run_json.read_text())
    payload["n_ranks"] = 4
    run_json.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=r"run\.json: gpus=4 disagrees"):
        report_runs.collect_runs(metrics)


def test_unknown_status_and_missing_file(tmp_path):
    metrics = make_results_tree(tmp_path, {("none", 1): [(1.0, 0.5, "exploded")]})
    with pytest.raises(ValueError, match="status 'exploded'"):
        report_runs.collect_runs(metrics)
    with pytest.raises(FileNotFoundError, match="nope"):
        report_runs.collect_runs([tmp_path / "nope" / "metrics.json"])


def test_no_runs_is_an_error(tmp_path):
    assert agg.main(cli_args([], tmp_path, tmp_path / "t")) == 1


def test_only_failed_runs_give_a_table(tmp_path):
    make_results_tree(tmp_path, {("none", 1): [(None, None, "failed")]})
    df = report_runs.collect_runs([], tmp_path)
    assert list(df.status) == ["failed"] and df.train_time_s.isna().all()
    sc = agg.scaling(df)
    assert sc.n_ok.tolist() == [0] and sc.speedup.isna().all()
    assert agg.summarise(df).n_failed.eq(1).all()


def test_expected_runs_limit_failed_rows_to_the_sweep(tmp_path):
    """A leftover run directory of an earlier sweep is not this study's failure."""
    from segscale.report.runs import collect_runs

    root = tmp_path / "runs"
    leftover = root / "d" / "unet" / "none" / "gpus4" / "rep0"
    wanted = root / "d" / "unet" / "none" / "gpus2" / "rep0"
    for folder in (leftover, wanted):
        (folder / "ckpt").mkdir(parents=True)
    scanned = collect_runs([], runs_root=root)
    assert sorted(scanned["gpus"]) == [2, 4] and set(scanned["status"]) == {"failed"}
    limited = collect_runs([], expected=[wanted, root / "d/unet/none/gpus8/rep0"])
    assert limited["gpus"].tolist() == [2] and limited["status"].tolist() == ["failed"]
