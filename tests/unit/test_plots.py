"""Figures from the aggregate tables of the synthetic tree in test_aggregate.py.

One full CLI render (module fixture, run directories deleted first: figures need only the
tables); edge cases build each figure in memory and draw it at low resolution.
"""

from __future__ import annotations

import logging
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from segscale.report import figures as plots
from segscale.report import published, style
from segscale.report import runs as report_runs
from segscale.report import tables as agg
from segscale.report.strategies import fig_strategies, network_per_rank

try:  # tests/unit is on sys.path under pytest's default (prepend) import mode
    from test_aggregate import SWEEP, cli_args, make_results_tree
except ImportError:  # pragma: no cover - tests/unit made a package
    from .test_aggregate import SWEEP, cli_args, make_results_tree

EXPECTED = [f"{n}.{f}" for n in ("training_time", "speedup", "efficiency", "metrics_vs_gpus",
                                 "curves", "resources", "strategies") for f in ("png", "svg")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("plots")
    root = base / "runs"
    assert agg.main(cli_args(make_results_tree(root), root, base / "tables")) == 0
    shutil.rmtree(root)  # regenerating figures must not need the run directories
    assert plots.main(["--tables-dir", str(base / "tables"), "--out-dir", str(base / "figs"),
                       "--curve-gpus", "4"]) == 0
    return base / "figs"


def test_fixed_set_of_files(rendered):
    assert sorted(p.name for p in rendered.iterdir()) == sorted(EXPECTED)
    assert [p.name for p in plots.output_paths(Path("x"))] == EXPECTED


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.endswith(".png")])
def test_png_valid_and_not_blank(rendered, name):
    path = rendered / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
    img = mpimg.imread(path)
    assert img.shape[0] > 400 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # not a single colour
    # several distinct colours: the policies' lines are drawn, not only black text
    assert len(np.unique((img[::3, ::3, :3] * 8).astype(int).reshape(-1, 3), axis=0)) > 20


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.endswith(".svg")])
def test_svg_valid_and_not_trivial(rendered, name):
    path = rendered / name
    assert path.stat().st_size > 10_000
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert sum(1 for el in root.iter() if el.tag.endswith("path")) > 20


@pytest.mark.parametrize("name, words", [
    ("speedup.svg", ["published (Guedria thesis)", "ideal (S = N)", "none", "gradual",
                     "grescale", "17.5"]),
    ("efficiency.svg", ["ideal (E = 100%)", "97%", "1 diverged, 1 failed"]),
    ("training_time.svg", ["21 h 40 min", "training time (min, log scale)"]),
    ("metrics_vs_gpus.svg", ["1-GPU baseline (none): mean ± sd", "Dice", "81.32%"]),
    ("curves.svg", ["4 GPUs", "diverged / failed run", "learning rate"]),
    ("resources.svg", ["rank 3", "GPU utilisation (%)", "none, 4 GPUs, repeat 0 (ok)"]),
])
def test_figure_labels(rendered, name, words):
    text = (rendered / name).read_text()
    for word in words:
        assert word in text, word


# --------------------------------------------------------------------------- edge cases
def _tables(tmp_path: Path, sweep: dict, resources: bool = True) -> plots.Tables:
    tree = make_results_tree(tmp_path, sweep, resources=resources)
    runs = report_runs.collect_runs(tree, tmp_path)
    return plots.Tables(runs=runs, scaling=agg.scaling(runs),
                        history=report_runs.collect_history(runs),
                        resources=report_runs.collect_resources(runs))


def _draw_all(t: plots.Tables) -> dict[str, str]:
    """Build and draw every figure; returns each figure's visible text."""
    style.apply_style()
    pub = published.load_published(published.default_published())
    figs = {"training_time": plots.fig_scaling(t, pub, "training_time"),
            "speedup": plots.fig_scaling(t, pub, "speedup"),
            "efficiency": plots.fig_scaling(t, pub, "efficiency"),
            "metrics_vs_gpus": plots.fig_metrics(t, pub),
            "curves": plots.fig_curves(t, None), "resources": plots.fig_resources(t, None),
            "strategies": fig_strategies(t.runs, t.scaling, t.resources)}
    texts = {}
    for name, fig in figs.items():
        fig.set_dpi(30)
        fig.canvas.draw()
        texts[name] = " ".join(txt.get_text() for txt in fig.findobj(plt.Text))
        plt.close(fig)
    return texts


EDGE_CASES = {
    "single_gpu_count": ({("none", 1): SWEEP[("none", 1)],
                          ("grescale", 1): SWEEP[("grescale", 1)]}, True, {}),
    "one_policy": ({k: v for k, v in SWEEP.items() if k[0] == "none"}, True, {}),
    "all_diverged": ({("none", 1): [(5.0, 0.1, "diverged")], ("none", 2): [(3.0, 0.1, "diverged")]},
                     True, {"speedup": "no successful 1-GPU baseline",
                            "metrics_vs_gpus": "no evaluated successful runs"}),
    "no_resources": ({k: v for k, v in SWEEP.items() if k[1] < 4}, False,
                     {"resources": "no resource samples"}),
    "only_failed": ({("none", 1): [(None, None, "failed")]}, True,
                    {"training_time": "no successful runs",
                     "curves": "no training history",
                     "resources": "no resource samples"}),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_draw_annotated_panels(tmp_path, case):
    sweep, resources, expected = EDGE_CASES[case]
    texts = _draw_all(_tables(tmp_path, sweep, resources))
    for name, message in expected.items():
        assert message in texts[name], (name, texts[name])


def test_resources_without_gpu_samples(tmp_path):
    t = _tables(tmp_path, {("none", 2): SWEEP[("none", 2)]})
    res = t.resources.assign(gpu_util=np.nan, gpu_mem_mb=np.nan)
    fig = plots.fig_resources(plots.Tables(t.runs, t.scaling, t.history, res), None)
    fig.set_dpi(30)
    fig.canvas.draw()
    text = " ".join(x.get_text() for x in fig.findobj(plt.Text))
    plt.close(fig)
    assert text.count("no samples (NVML unavailable)") == 2
    assert "rank 1" in text


def _texts_and_hollow(fig) -> tuple[str, int]:
    """A drawn figure's text and how many hollow (white-faced) markers it has."""
    fig.set_dpi(30)
    fig.canvas.draw()
    text = " ".join(x.get_text() for x in fig.findobj(plt.Text))
    hollow = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections
                 if len(c.get_facecolors()) and (c.get_facecolors()[:, :3] == 1).all())
    plt.close(fig)
    return text, hollow


def test_unequal_work_hollow_and_early_stopped_apart(tmp_path):
    """A speedup between unequal work is drawn hollow; an early-stopped run is an x outside
    the mean and said in the title."""
    t = _tables(tmp_path, {k: SWEEP[k] for k in (("none", 1), ("none", 2), ("none", 4))})
    scaling = t.scaling.assign(equal_work=[True, False, True])
    runs = t.runs.copy()
    runs.loc[runs.gpus.eq(4) & runs.repeat.eq(2), "stop_reason"] = "early_stopped"
    t = plots.Tables(runs, scaling, t.history, t.resources)
    style.apply_style()
    pub = published.load_published(None)
    for kind in ("speedup", "efficiency", "training_time"):
        text, hollow = _texts_and_hollow(plots.fig_scaling(t, pub, kind))
        assert plots.UNEQUAL_LABEL in text and hollow == 1, kind
        assert "1 early-stopped run(s) left out of the time to train" in text
    assert plots.EARLY_LABEL in text  # training time: the run is an x
    text, hollow = _texts_and_hollow(plots.fig_scaling(
        plots.Tables(t.runs, t.scaling.drop(columns="equal_work"), t.history, t.resources),
        pub, "speedup"))
    assert plots.UNEQUAL_LABEL not in text and hollow == 0


# --------------------------------------------------------------------------- helpers, CLI
@pytest.mark.parametrize("seconds, text", [
    (45, "45 s"), (4440, "74 min"), (78000, "21 h 40 min"), (12300, "3 h 25 min"),
])
def test_human_duration(seconds, text):
    assert style.human_duration(seconds) == text


def test_published_points_match_dataset_and_arch():
    pub = published.load_published(published.default_published())
    assert set(pub.source) == {"guedria_thesis"}
    pts = published.published_points(pub, "speedup", "lasc", "unet")
    assert list(pts.value) == [17.5] and list(pts.gpus) == [18]
    brats_fcn = published.published_points(pub, "train_time", "brats", "fcn")
    assert brats_fcn.value.max() == 35.6667 * 3600
    assert published.published_points(pub, "dice", "brats", "fcn").empty
    assert len(published.published_points(pub, "dice", "Task02_Heart", "unet")) == 2


def test_published_csv_is_tidy():
    raw = pd.read_csv(published.default_published(), keep_default_na=False)
    assert list(raw.columns) == ["source", "dataset", "arch", "policy", "gpus", "quantity",
                                 "value", "unit", "note"]
    assert raw.value.dtype.kind == "f" and (raw.note != "").all()


def test_network_rate_from_cumulative_counters():
    run = pd.DataFrame({"time_s": [0.0, 2.0, 4.0], "net_sent_bytes": [0, 2e6, 6e6],
                        "net_recv_bytes": [0, 2e6, 2e6]})
    assert list(plots.network_rate(run).dropna()) == [2.0, 2.0]


def test_curve_gpus_fallback_warns(caplog):
    hist = pd.DataFrame({"dataset": "d", "arch": "a", "gpus": [1, 2, 8]})
    with caplog.at_level(logging.WARNING):
        assert plots.choose_curve_gpus(hist, 4) == 8
    assert "no curves at 4 GPUs" in caplog.text
    assert plots.choose_curve_gpus(hist, 2) == 2 and plots.choose_curve_gpus(hist, None) == 8


def test_cli_missing_tables_names_file(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        rc = plots.main(["--tables-dir", str(tmp_path), "--out-dir", str(tmp_path / "f")])
    assert rc == 1 and "runs.csv" in caplog.text
    assert not (tmp_path / "f").exists()


def test_figures_say_what_drew_them(tmp_path):
    """Each file carries the package version and code revision (reproducibility)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from segscale import __version__
    from segscale.report.figures import save

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save(fig, tmp_path, "probe", made_by="segscale 9.9 (git abc)")
    assert Image.open(tmp_path / "probe.png").info["Software"] == "segscale 9.9 (git abc)"
    assert "segscale 9.9 (git abc)" in (tmp_path / "probe.svg").read_text()
    from segscale.report.figures import provenance
    assert provenance().startswith(f"segscale {__version__} (git ")


# --------------------------------------------------------------------------- strategies
def test_two_strategies_each_against_its_own_baseline(tmp_path):
    """The same sweep as Horovod and as tf-collective, the latter twice as slow everywhere:
    the same speedups (each against its own 1-GPU runs), both in strategies.png, and the
    per-policy figures show Horovod's runs and say so."""
    slow = {k: [(t * 2 if t else t, d, st) for t, d, st in reps] for k, reps in SWEEP.items()}
    root = tmp_path / "runs"
    tree = [*make_results_tree(root), *make_results_tree(root, slow, strategy="tf-collective")]
    assert agg.main(cli_args(tree, root, tmp_path / "tables")) == 0
    scaling = report_runs.read_table(tmp_path / "tables" / "scaling.csv")
    horovod = scaling[scaling.strategy.eq("horovod")].reset_index(drop=True)
    collective = scaling[scaling.strategy.eq("tf-collective")].reset_index(drop=True)
    assert len(horovod) == len(collective) == len(SWEEP)
    assert collective["time_mean_s"].tolist() == \
        pytest.approx((2 * horovod["time_mean_s"]).tolist(), nan_ok=True)
    assert collective["speedup"].tolist() == pytest.approx(horovod["speedup"].tolist(),
                                                           nan_ok=True)
    assert plots.main(["--tables-dir", str(tmp_path / "tables"), "--out-dir",
                       str(tmp_path / "figs")]) == 0
    text = (tmp_path / "figs" / "strategies.svg").read_text()
    for word in ("horovod", "tf-collective", "speedup (vs its own 1 GPU)", "test Dice",
                 "network per rank (MB/s)"):
        assert word in text, word
    assert "horovod runs (strategies compared in strategies.png)" in \
        (tmp_path / "figs" / "speedup.svg").read_text()


def test_network_per_rank_is_the_counters_growth_over_the_sampled_time():
    res = pd.DataFrame({"dataset": "d", "arch": "a", "policy": "none", "gpus": 2, "repeat": 0,
                        "rank": [0, 0, 0, 1, 1], "time_s": [0.0, 1.0, 4.0, 0.0, 2.0],
                        "net_sent_bytes": [0, 1e6, 3e6, 5e6, 6e6],
                        "net_recv_bytes": [0, 1e6, 1e6, 0, 2e6]})
    out = network_per_rank(res)
    # rank 0: 4 MB in 4 s; rank 1: 3 MB in 2 s; mean 1.25 MB/s; no strategy column: Horovod
    assert out.to_dict("records") == [{"dataset": "d", "arch": "a", "strategy": "horovod",
                                       "policy": "none", "gpus": 2, "repeat": 0,
                                       "net_mb_per_s": pytest.approx(1.25)}]


def test_parameter_servers_traffic_is_apart_from_the_workers():
    """tf-ps: the workers' mean is the GPU ranks' row; the servers' is their own (Shi et
    al.'s per-server traffic); the coordinator counts in neither."""
    res = pd.DataFrame({"dataset": "d", "arch": "a", "strategy": "tf-ps", "policy": "none",
                        "gpus": 2, "repeat": 0,
                        "rank": [0, 0, 1, 1, 2, 2, 3, 3],
                        "role": ["worker", "worker", "worker", "worker", "chief", "chief",
                                 "ps", "ps"],
                        "time_s": [0.0, 2.0] * 4,
                        "net_sent_bytes": [0, 2e6, 0, 4e6, 0, 1e9, 0, 10e6],
                        "net_recv_bytes": [0, 0, 0, 0, 0, 0, 0, 6e6]})
    workers = network_per_rank(res)
    servers = network_per_rank(res, "ps")
    assert workers["net_mb_per_s"].tolist() == [pytest.approx(1.5)]  # (1 + 2) / 2 MB/s
    assert servers["net_mb_per_s"].tolist() == [pytest.approx(8.0)]  # 16 MB in 2 s
    fig = fig_strategies(
        pd.DataFrame({"dataset": "d", "arch": "a", "strategy": "tf-ps", "policy": "none",
                      "gpus": [1, 2], "repeat": 0, "status": "ok", "dice": [0.8, 0.7]}),
        pd.DataFrame({"dataset": "d", "arch": "a", "strategy": "tf-ps", "policy": "none",
                      "gpus": [1, 2], "speedup": [1.0, 1.5], "speedup_std": [0.0, 0.0],
                      "efficiency": [1.0, 0.75], "efficiency_std": [0.0, 0.0]}), res)
    labels = {t.get_text() for ax in fig.axes for t in ax.texts} | {
        h for ax in fig.axes for h in ax.get_legend_handles_labels()[1]} | {
        t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert "tf-ps, per parameter server" in labels
