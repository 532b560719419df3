"""The time-breakdown table and figure (segscale.report.breakdown) from hand-made tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from segscale.report.breakdown import breakdown_table, by_gpus, main

KEYS = {"dataset": "demo", "arch": "unet", "policy": "none", "repeat": 0}


def history_rows(gpus: int, status: str = "ok") -> list[dict]:
    # epoch 0: 10 s with 4 + 1 + 2 + 1 inside (other 2); epoch 1: 6 s with 3 + 1 + 0 + 1
    return [
        {**KEYS, "gpus": gpus, "status": status, "epoch": 0, "epoch_time_s": 10.0,
         "compute_s": 4.0, "allreduce_s": 1.0, "input_wait_s": 2.0, "validation_s": 1.0,
         "checkpoint_s": 0.5},
        {**KEYS, "gpus": gpus, "status": status, "epoch": 1, "epoch_time_s": 6.0,
         "compute_s": 3.0, "allreduce_s": 1.0, "input_wait_s": 0.0, "validation_s": 1.0,
         "checkpoint_s": 1.5},
    ]


@pytest.fixture
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    history = pd.DataFrame(history_rows(1) + history_rows(2) + history_rows(4, "failed"))
    runs = pd.DataFrame([{**KEYS, "gpus": g, "status": s, "startup_s": v}
                         for g, s, v in ((1, "ok", 8.0), (2, "ok", math.nan),
                                         (4, "failed", 3.0))])
    return history, runs


def test_breakdown_table_means_per_run(tables):
    table = breakdown_table(*tables)
    assert table["gpus"].tolist() == [1, 2, 4]
    one = table.iloc[0]
    assert one["epochs"] == 2 and one["epoch_time_s"] == pytest.approx(8.0)
    assert one[["compute_s", "allreduce_s", "input_wait_s", "validation_s"]].tolist() == \
        pytest.approx([3.5, 1.0, 1.0, 1.0])
    assert one["other_s"] == pytest.approx((2.0 + 1.0) / 2)
    assert one["checkpoint_s"] == pytest.approx(1.0)
    assert one["startup_s"] == 8.0 and one["startup_per_epoch_s"] == pytest.approx(4.0)
    in_epoch = one[["compute_s", "allreduce_s", "input_wait_s", "validation_s", "other_s"]]
    assert in_epoch.sum() == pytest.approx(one["epoch_time_s"])
    assert math.isnan(table.iloc[1]["startup_s"]) and table.iloc[2]["status"] == "failed"


def test_by_gpus_averages_ok_runs_only(tables):
    means = by_gpus(breakdown_table(*tables))
    assert means["gpus"].tolist() == [1, 2] and means["n_runs"].tolist() == [1, 1]


def test_history_without_breakdown_columns_gives_nan():
    old = pd.DataFrame([{**KEYS, "gpus": 1, "status": "ok", "epoch": 0, "epoch_time_s": 3.0}])
    table = breakdown_table(old, pd.DataFrame())
    assert table["epochs"].tolist() == [1]
    assert table[["compute_s", "other_s", "startup_s"]].isna().all().all()


def test_cli_writes_table_and_figures(tables, tmp_path):
    history, runs = tables
    tdir = tmp_path / "tables"
    tdir.mkdir()
    history.to_csv(tdir / "history.csv", index=False)
    runs.to_csv(tdir / "runs.csv", index=False)
    assert main(["--tables-dir", str(tdir), "--table", str(tdir / "breakdown.csv"),
                 "--out-dir", str(tmp_path / "fig")]) == 0
    out = pd.read_csv(tdir / "breakdown.csv", keep_default_na=False, na_values=[""])
    assert len(out) == 3 and out.loc[0, "compute_s"] == pytest.approx(3.5)
    for ext in ("png", "svg"):
        assert (tmp_path / "fig" / f"breakdown.{ext}").stat().st_size > 0
    # no history at all: still a table (empty) and a figure saying why
    (tdir / "history.csv").unlink()
    assert main(["--tables-dir", str(tdir), "--table", str(tdir / "b2.csv"),
                 "--out-dir", str(tmp_path / "fig2")]) == 0
    assert (tmp_path / "fig2" / "breakdown.png").is_file()
