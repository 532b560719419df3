"""The local-parallelism target's pure parts (segscale.report.parallelism): which splits,
which global batch, and the table that compares them (hand-computed cases)."""

from __future__ import annotations

import json
import logging
import math

import pandas as pd
import pytest

from segscale.report import parallelism as par


@pytest.mark.parametrize(("cores", "ranks", "threads", "expected"), [
    (2, None, None, [(1, 2), (2, 1)]),
    (6, None, None, [(1, 6), (2, 3), (3, 2), (6, 1)]),
    (6, [2, 3], None, [(2, 3), (3, 2)]),
    (6, None, [1], [(6, 1)]),
    (4, [1, 2], [1, 4], [(1, 1), (1, 4), (2, 1), (2, 4)]),  # both lists: every pair
])
def test_splits(cores, ranks, threads, expected):
    assert par.splits(cores, ranks, threads) == expected


def test_splits_refusals_name_the_keys():
    with pytest.raises(ValueError, match="cores_per_node must be >= 1"):
        par.splits(0)
    with pytest.raises(ValueError, match=r"no split of 4 cores .* ranks in \[3\]"):
        par.splits(4, [3])


@pytest.mark.parametrize(("ranks", "at_least", "expected"), [
    ([1, 2], 8, 8), ([1, 2, 3, 6], 8, 12), ([1, 3], 7, 9), ([4], 1, 4)])
def test_global_batch_is_whole_for_every_split(ranks, at_least, expected):
    assert par.global_batch(ranks, at_least) == expected


def _row(ranks, threads, ips, status="ok", images=48, batch=None):
    batch = batch if batch is not None else 8 // ranks
    return {"dataset": "d", "arch": "unet", "strategy": "horovod", "ranks_per_node": ranks,
            "threads_per_rank": threads, "cores": ranks * threads, "batch_per_rank": batch,
            "global_batch": batch * ranks, "images_per_epoch": images, "status": status,
            "epochs": 3, "images_per_s": ips, "train_s_per_epoch": images / ips}


def test_split_table_speedup_best_and_equal_work():
    table = par.split_table([_row(2, 1, 30.0), _row(1, 2, 20.0), _row(4, 1, 50.0, "failed"),
                             _row(8, 1, 10.0, images=40)])
    assert table["ranks_per_node"].tolist() == [1, 2, 4, 8]
    assert table["speedup_vs_one_rank"].tolist() == pytest.approx([1.0, 1.5, 2.5, 0.5])
    # the failed split is faster but never the best
    assert table["best"].tolist() == [False, True, False, False]
    assert table["equal_work"].tolist() == [True, True, True, False]
    assert list(table.columns) == list(par.COLUMNS)


def test_split_row_reads_a_run_directory(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({
        "dataset": "d", "arch": "unet", "strategy": "horovod", "status": "ok", "n_ranks": 2,
        "hparams": {"threads_per_rank": 1, "batch_size": 4}, "images_per_epoch": 48}))
    pd.DataFrame({"epoch": [0, 1, 2], "images_per_s": [5.0, 20.0, 30.0],
                  "epoch_time_s": [10.0, 3.0, 2.0], "validation_s": [1.0, 0.5, 0.5]}
                 ).to_csv(tmp_path / "history.csv", index=False)
    row = par.split_row(tmp_path)
    assert (row["ranks_per_node"], row["threads_per_rank"], row["cores"]) == (2, 1, 2)
    assert (row["batch_per_rank"], row["global_batch"]) == (4, 8)
    assert row["images_per_s"] == pytest.approx(25.0)  # median of epochs 1 and 2
    assert row["train_s_per_epoch"] == pytest.approx(2.0)  # median of 2.5 and 1.5


def test_cli_writes_table_and_figure_and_names_a_missing_run(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    for ranks, ips in ((1, 10.0), (2, 12.0)):
        run = tmp_path / f"r{ranks}"
        run.mkdir()
        (run / "run.json").write_text(json.dumps({
            "dataset": "d", "arch": "unet", "strategy": "horovod", "status": "ok",
            "n_ranks": ranks, "hparams": {"threads_per_rank": 2 // ranks,
                                          "batch_size": 8 // ranks},
            "images_per_epoch": 48}))
        pd.DataFrame({"images_per_s": [1.0, ips], "epoch_time_s": [9.0, 4.0],
                      "validation_s": [1.0, 1.0]}).to_csv(run / "history.csv", index=False)
    table = tmp_path / "parallelism.csv"
    assert par.main(["--runs", str(tmp_path / "r1"), str(tmp_path / "r2"), "--table",
                     str(table), "--out-dir", str(tmp_path / "figs")]) == 0
    out = pd.read_csv(table)
    assert out["best"].tolist() == [False, True]
    assert out["speedup_vs_one_rank"].tolist() == pytest.approx([1.0, 1.2])
    assert (tmp_path / "figs" / "parallelism.svg").stat().st_size > 5000
    assert "best split: 2 ranks x 1 threads" in caplog.text
    assert par.main(["--runs", str(tmp_path / "nowhere"), "--table", str(table),
                     "--out-dir", str(tmp_path / "figs")]) == 1
    assert "nowhere" in caplog.text
    assert math.isfinite(out["images_per_s"].iloc[0])
