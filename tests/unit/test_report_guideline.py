"""The guideline's tables and figure from hand-made iteration tables (thesis table 6.1 shape)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from segscale.report import guideline

HEADER = "iteration,action,seed,dice,pixel_accuracy,mean_accuracy,mean_iou,fw_iou,reached," \
         "improved,changes\n"


def _loop(root: Path, ds: str, arch: str, gpus: int, rows: list[str], base: str) -> Path:
    path = root / ds / arch / f"gpus{gpus}" / "iterations.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "".join(r + "\n" for r in rows) + f",baseline,,{base},,,\n")
    return path


@pytest.fixture
def loops(tmp_path):
    base = "0.8132,0.9986,0.9611,0.8910,0.9976"
    reached = _loop(tmp_path, "lasc", "unet", 18, [
        '0,apply default parameters,0,0.7602,0.9984,0.9611,0.8893,0.9972,False,,"{}"',
        '1,decrease the initial lr,0,0.8374,0.9986,0.9596,0.8796,0.9976,True,True,"{}"',
        '2,model validation,1,0.8264,0.9987,0.9537,0.8934,0.9976,True,,"{}"',
    ], base)
    budget = _loop(tmp_path, "lasc", "unet", 12, [
        '0,apply default parameters,0,0.70,0.99,0.90,0.80,0.99,False,,"{}"',
        '1,decrease the initial lr,0,0.72,0.99,0.91,0.81,0.99,False,True,"{}"',
    ], base)
    return [reached, budget]


def test_tuned_rows_are_each_loops_last_iteration(loops):
    tuned = guideline.tuned_results(guideline.stack_iterations(loops))
    assert tuned[["gpus", "iterations_run", "final_iteration", "reached"]].values.tolist() == \
        [[12, 2, 1, False], [18, 3, 2, True]]
    at18 = tuned[tuned["gpus"].eq(18)].iloc[0]
    assert (at18["dice"], at18["mean_accuracy"], at18["mean_iou"]) == (0.8264, 0.9537, 0.8934)
    assert at18["final_action"] == "model validation"
    assert at18["baseline_dice"] == 0.8132


def test_stacked_table_keeps_every_row_with_its_loop(loops):
    table = guideline.stack_iterations(loops)
    assert len(table) == 2 + 1 + 3 + 1
    assert table.groupby("gpus")["baseline"].sum().to_dict() == {12: 1, 18: 1}
    assert set(table["dataset"]) == {"lasc"} and set(table["arch"]) == {"unet"}


def test_cli_writes_tables_and_a_figure_beside_the_sweep(loops, tmp_path):
    runs = tmp_path / "runs.csv"
    pd.DataFrame([
        {"dataset": "lasc", "arch": "unet", "policy": p, "gpus": g, "repeat": 0,
         "status": "ok", "dice": d, "mean_accuracy": 0.95, "mean_iou": 0.88}
        for p, g, d in [("none", 1, 0.8132), ("none", 12, 0.79), ("gradual", 12, 0.75),
                        ("none", 18, 0.78), ("gradual", 18, 0.74)]
    ]).to_csv(runs, index=False)
    out = tmp_path / "out"
    code = guideline.main(["--iterations", *map(str, loops), "--runs", str(runs),
                           "--iterations-out", str(out / "it.csv"),
                           "--tuned-out", str(out / "tuned.csv"),
                           "--figure", str(out / "fig" / "guideline.png")])
    assert code == 0
    assert len(pd.read_csv(out / "tuned.csv")) == 2
    svg = (out / "fig" / "guideline.svg").read_text()
    for label in ("grescale (guideline-tuned)", "tuned, baseline not reached", "gradual",
                  "1-GPU baseline (none)", "mean IoU: LASC · U-Net"):
        assert label in svg
    assert (out / "fig" / "guideline.png").stat().st_size > 5000


@pytest.mark.parametrize(("name", "text", "message"), [
    ("lasc/unet/iterations.csv", HEADER, "not a loop's table"),
    ("lasc/unet/gpus4/iterations.csv", HEADER + '0,apply,0,1,1,1,1,1,True,,"{}"\n',
     "needs iteration rows and one baseline row"),
    ("lasc/unet/gpus4/iterations.csv", "a,b\n1,2\n", "columns 'iteration' and 'action'"),
])
def test_bad_tables_are_named(tmp_path, name, text, message):
    path = tmp_path / name
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        guideline.read_iterations(path)
    code = guideline.main(["--iterations", str(path), "--iterations-out", str(tmp_path / "a"),
                           "--tuned-out", str(tmp_path / "b"), "--figure",
                           str(tmp_path / "c.png")])
    assert code == 1 and not (tmp_path / "a").exists() and not (tmp_path / "c.png").exists()
