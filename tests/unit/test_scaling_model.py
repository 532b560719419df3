"""The alpha-beta scaling model by hand: ring allreduce, fusion, hierarchical links, epoch
and speedup arithmetic, closed-form parameter counts, the alpha/beta fit on synthetic data,
cluster refusals, and the predict CLI on hand-made tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from segscale.scaling import archs, model
from segscale.scaling.calibrate import calibrate_links, compute_per_step, fit_link, fit_per_n
from segscale.scaling.cli import main
from segscale.scaling.clusters import cluster_from_mapping
from segscale.scaling.model import Link

MB = 1_000_000


def test_one_rank_has_no_communication():
    link = Link(alpha=1e-3, beta=1e9)
    assert model.ring_allreduce_s(100 * MB, 1, link) == 0.0
    assert model.allreduce_s(100 * MB, 1, 2, link, link) == 0.0
    assert model.step_s(0.2, 100 * MB, 1, 2, link, link) == 0.2


def test_two_ranks_by_hand():
    # 2(N-1) alpha + 2(N-1)/N * bytes / beta = 2 * 10us + 1 * 100 MB / (1 GB/s)
    link = Link(alpha=10e-6, beta=1e9)
    assert model.ring_allreduce_s(100 * MB, 2, link) == pytest.approx(20e-6 + 0.1)
    # 4 ranks: 6 alpha + 1.5 * bytes / beta
    assert model.ring_allreduce_s(100 * MB, 4, link) == pytest.approx(60e-6 + 0.15)


def test_fusion_splits_latency_not_bandwidth():
    link = Link(alpha=1e-3, beta=1e9)
    assert model.messages(100, 64) == 2 and model.messages(128, 64) == 2
    assert model.messages(129, 64) == 3 and model.messages(10, None) == 1
    assert model.messages(0, 64) == 0
    # 200 MB in 64 MiB messages: 3 messages, each 2(N-1) alpha; bandwidth term unchanged
    one = model.ring_allreduce_s(200 * MB, 2, link, None)
    fused = model.ring_allreduce_s(200 * MB, 2, link, 64 * 2**20)
    assert one == pytest.approx(2e-3 + 0.2)
    assert fused - one == pytest.approx(2 * 2e-3)


def test_links_across_nodes():
    intra, inter = Link(1e-6, 10e9), Link(1e-5, 1e9)
    b = 100 * MB
    # within a node: the intra link only, either variant
    for variant in model.VARIANTS:
        assert model.allreduce_s(b, 2, 2, intra, inter, variant, None) == pytest.approx(
            2e-6 + b / 10e9)
    # ring across 2 nodes of 2: 4 ranks paced by the slowest link
    assert model.allreduce_s(b, 4, 2, intra, inter, "ring", None) == pytest.approx(
        6e-5 + 1.5 * b / 1e9)
    # hierarchical: intra ring of 2, then a ring of the 2 nodes carrying the whole gradient
    assert model.allreduce_s(b, 4, 2, intra, inter, "hierarchical", None) == pytest.approx(
        (2e-6 + b / 10e9) + (2e-5 + b / 1e9))
    assert model.nodes_spanned(18, 2) == 9 and model.nodes_spanned(5, 2) == 3
    with pytest.raises(ValueError, match="variant"):
        model.allreduce_s(b, 4, 2, intra, inter, "tree")


def test_epoch_speedup_efficiency_by_hand():
    # 1000 steps of 0.1 s on 1 GPU; at 4 GPUs 250 steps of 0.1 + 0.025 s
    one = model.epoch_s(1000, 0.1, 1)
    four = model.epoch_s(1000, 0.125, 4)
    assert one == pytest.approx(100) and four == pytest.approx(31.25)
    s = model.speedup(one, four)
    assert s == pytest.approx(3.2) and model.efficiency(s, 4) == pytest.approx(0.8)


def test_gradient_bytes_and_grid():
    assert model.gradient_bytes(1000) == 4000 and model.gradient_bytes(1000, fp16=True) == 2000
    grid = model.gpu_grid(512, 8, (18, 6))
    assert grid[0] == 1 and grid[-1] == 512 and {2, 6, 18, 64, 256}.issubset(grid)
    assert grid == sorted(set(grid))


def test_bad_links_refused():
    with pytest.raises(ValueError, match="beta"):
        Link(1e-6, 0)
    with pytest.raises(ValueError, match="alpha"):
        Link(-1, 1e9)


def test_param_counts_by_hand():
    # U-Net depth 1, 2 filters, 1 channel, 2 classes:
    # down0: 9*1*2+2, 9*2*2+2; bottom (4): 9*2*4+4, 9*4*4+4; upconv 2x2: 4*4*2+2;
    # up0 (in 4): 9*4*2+2, 9*2*2+2; classifier 2*2+2
    by_hand = 20 + 38 + 76 + 148 + 34 + 74 + 38 + 6
    assert archs.param_counts("unet", 1, 2, {"depth": 1, "base_filters": 2}) == {
        "total": by_hand, "trainable": by_hand}
    # batch norm: no conv bias, + gamma/beta (trainable) + mean/var (not) per conv channel
    bn = archs.param_counts("unet", 1, 2, {"depth": 1, "base_filters": 2, "batch_norm": True})
    bn_channels = 2 + 2 + 4 + 4 + 2 + 2
    assert bn["trainable"] == by_hand - bn_channels + 2 * bn_channels
    assert bn["total"] == bn["trainable"] + 2 * bn_channels
    # the thesis geometries (equal to Keras's count_params(): tests/horovod/test_scaling_tf.py)
    assert archs.param_counts("unet", 1, 2)["trainable"] == 31_030_658
    assert archs.param_counts("fcn", 1, 2)["trainable"] == 134_270_278
    with pytest.raises(ValueError, match="no closed-form"):
        archs.param_counts("resnet", 1, 2)


def test_flops_scale_with_pixels():
    small = archs.forward_flops("unet", 1, 2, (64, 64), {"depth": 2, "base_filters": 4})
    big = archs.forward_flops("unet", 1, 2, (128, 128), {"depth": 2, "base_filters": 4})
    assert big == pytest.approx(4 * small)
    # a 1x1 classifier alone: 2 * c_in * c_out per pixel
    layer = archs.layers("unet", 1, 2, {"depth": 1, "base_filters": 2})[-1]
    assert layer.name == "classifier" and layer.k == 1


def synthetic_bench(alpha, beta, ranks=(2, 4, 8), sizes=(4096, 2**20, 2**24, 2**26)):
    rows = [{"ranks": n, "bytes": b,
             "time_median_s": 2 * (n - 1) * alpha + 2 * (n - 1) / n * b / beta}
            for n in ranks for b in sizes]
    return pd.DataFrame(rows)


def test_fit_recovers_alpha_beta():
    bench = synthetic_bench(25e-6, 3e9)
    link, record = fit_link(bench["ranks"], bench["bytes"], bench["time_median_s"])
    assert link.alpha == pytest.approx(25e-6, rel=1e-6)
    assert link.beta == pytest.approx(3e9, rel=1e-6)
    assert record["rows"] == 12 and record["rms_relative_residual"] < 1e-9
    per_n = fit_per_n(bench)
    assert np.allclose(per_n["alpha_s"], 25e-6) and np.allclose(per_n["beta_bytes_per_s"], 3e9)


def test_fit_with_noise_and_split_by_node():
    rng = np.random.default_rng(0)
    inside = synthetic_bench(5e-6, 10e9, ranks=(2,))
    across = synthetic_bench(40e-6, 1e9, ranks=(4, 8))
    bench = pd.concat([inside, across], ignore_index=True)
    bench["time_median_s"] *= rng.normal(1, 0.01, len(bench))
    intra, inter, record = calibrate_links(bench, gpus_per_node=2)
    assert intra.beta == pytest.approx(10e9, rel=0.05)
    assert inter.beta == pytest.approx(1e9, rel=0.05)
    assert inter.alpha == pytest.approx(40e-6, rel=0.1)
    assert record["intra"]["from_ranks"] == [2] and record["inter"]["from_ranks"] == [4, 8]
    # one kind measured: both links take it
    intra, inter, record = calibrate_links(inside, gpus_per_node=4)
    assert intra == inter and record["inter"] == {"same_as": "intra"}


def test_fit_refuses_what_it_cannot_separate():
    with pytest.raises(ValueError, match="more than one rank"):
        fit_link([1, 1], [10, 20], [1.0, 2.0])
    with pytest.raises(ValueError, match="two message sizes"):
        fit_link([2, 2], [10, 10], [1.0, 1.1])


def test_compute_per_step_from_runs():
    runs = pd.DataFrame([
        {"dataset": "d", "arch": "unet", "policy": "none", "gpus": 1, "status": "ok",
         "time_per_epoch_s": 10.0, "steps_per_epoch": 100},
        {"dataset": "d", "arch": "unet", "policy": "none", "gpus": 1, "status": "ok",
         "time_per_epoch_s": 12.0, "steps_per_epoch": 100},
        {"dataset": "d", "arch": "unet", "policy": "none", "gpus": 1, "status": "failed",
         "time_per_epoch_s": 99.0, "steps_per_epoch": 100},
        {"dataset": "d", "arch": "unet", "policy": "none", "gpus": 2, "status": "ok",
         "time_per_epoch_s": 6.0, "steps_per_epoch": 50},
    ])
    out = compute_per_step(runs)
    assert len(out) == 1 and out.iloc[0]["compute_step_s"] == pytest.approx(0.11)
    assert out.iloc[0]["n_runs"] == 2 and not out.iloc[0]["fp16_allreduce"]


def test_cluster_descriptions_refused_when_incomplete():
    with pytest.raises(ValueError, match="compute must be"):
        cluster_from_mapping("x", {"compute": "guessed"})
    with pytest.raises(ValueError, match="'intra' and 'inter'"):
        cluster_from_mapping("x", {"links": {"intra": {"alpha_s": 0, "beta_bytes_per_s": 1}}})
    with pytest.raises(ValueError, match="needs a 'workloads' list"):
        cluster_from_mapping("x", {"compute": "published"})
    with pytest.raises(ValueError, match="peak_flops"):
        cluster_from_mapping("x", {"compute": "nominal", "workloads": []})
    c = cluster_from_mapping("x", {}, default_gpus_per_node=4)
    assert c.calibrated and c.compute == "measured" and c.gpus_per_node == 4


WORKLOAD = {"dataset": "d", "arch": "unet", "channels": 1, "classes": 2, "size": [32, 32],
            "model": {"depth": 1, "base_filters": 2}, "batch_size": 4}


def hand_tables(tmp_path):
    """runs.csv and scaling.csv of a sweep on 1 and 2 GPUs; a benchmark at 2 ranks."""
    runs = pd.DataFrame([{"dataset": "d", "arch": "unet", "policy": "none", "gpus": 1,
                          "status": "ok", "time_per_epoch_s": 10.0, "steps_per_epoch": 100,
                          "hp_fp16_allreduce": False}])
    scaling = pd.DataFrame([
        {"dataset": "d", "arch": "unet", "policy": "none", "gpus": 1,
         "time_per_epoch_mean_s": 10.0, "speedup": 1.0, "efficiency": 1.0},
        {"dataset": "d", "arch": "unet", "policy": "none", "gpus": 2,
         "time_per_epoch_mean_s": 6.0, "speedup": 10 / 6, "efficiency": 10 / 12},
        {"dataset": "d", "arch": "unet", "policy": "gradual", "gpus": 2,
         "time_per_epoch_mean_s": 7.0, "speedup": 10 / 7, "efficiency": 10 / 14}])
    bench = synthetic_bench(1e-4, 1e6, ranks=(2,))  # 1 MB/s: 0.00176 s per step's gradient
    paths = {}
    for name, df in (("runs", runs), ("scaling", scaling), ("bench", bench)):
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    return paths


def test_cli_on_hand_made_tables(tmp_path):
    paths = hand_tables(tmp_path)
    clusters = {"local": {"compute": "measured", "links": "calibrated", "fusion_bytes": 0},
                "paper": {"gpus_per_node": 2, "fusion_bytes": 0, "compute": "published",
                          "published": "guedria_thesis",
                          "links": {"intra": {"alpha_s": 0, "beta_bytes_per_s": 1e10},
                                    "inter": {"alpha_s": 0, "beta_bytes_per_s": 1e10}},
                          "workloads": [{"dataset": "brats", "arch": "unet", "channels": 1,
                                         "classes": 2, "batch_size": 7, "epochs": 100,
                                         "images_per_epoch": 23730}]}}
    out = tmp_path / "pred.csv"
    code = main(["--clusters", json.dumps(clusters), "--workloads", json.dumps([WORKLOAD]),
                 "--runs", str(paths["runs"]), "--scaling", str(paths["scaling"]),
                 "--bench", str(paths["bench"]), "--max-gpus", "64", "--out", str(out),
                 "--record", str(tmp_path / "pred.json"),
                 "--figure", str(tmp_path / "pred.png")])
    assert code == 0
    table = pd.read_csv(out)
    local = table[table["cluster"] == "local"].set_index("gpus")
    params = archs.param_counts("unet", 1, 2, WORKLOAD["model"])["trainable"]
    nbytes = 4 * params
    # compute 0.1 s per step; at 2 ranks one message: 2 alpha + bytes / beta
    comm = 2e-4 + nbytes / 1e6
    assert local.loc[2, "allreduce_step_s"] == pytest.approx(comm, rel=1e-6)
    assert local.loc[2, "predicted_epoch_s"] == pytest.approx(50 * (0.1 + comm), rel=1e-6)
    assert local.loc[2, "measured_speedup"] == pytest.approx(10 / 6)
    assert local.loc[2, "residual_speedup"] == pytest.approx(
        10 / 6 - local.loc[2, "predicted_speedup"])
    assert math.isnan(local.loc[4, "measured_speedup"])   # no run at 4: nothing measured
    assert {1, 2, 18, 64}.issubset(local.index)
    paper = table[table["cluster"] == "paper"].set_index("gpus")
    # compute per step from the thesis's 21 h 40 min for 100 epochs of 23730 / 7 steps
    assert paper.loc[1, "compute_step_s"] == pytest.approx(21.6667 * 3600 / 100 / (23730 / 7))
    assert paper.loc[18, "published_speedup"] == 17.5
    assert paper.loc[18, "gap_speedup"] == pytest.approx(17.5 - paper.loc[18,
                                                                          "predicted_speedup"])
    assert paper["params"].iloc[0] == 31_030_658
    record = json.loads((tmp_path / "pred.json").read_text())
    assert record["clusters"]["local"]["links"]["calibrated"]["inter"]["rows"] == 4  # 1 GPU a node
    assert record["produced_by"].startswith("segscale ")
    assert (tmp_path / "pred.png").stat().st_size > 0


def test_cli_refuses_calibration_without_benchmark(tmp_path, capsys):
    code = main(["--clusters", json.dumps({"local": {}}), "--out", str(tmp_path / "p.csv")])
    assert code == 1
    assert "no allreduce benchmark" in capsys.readouterr().err
