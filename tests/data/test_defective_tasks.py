"""The MSD contract checked in full: every task of the defect corpus (tests/data/defects.py)
is refused by ``python -m segscale.data.validate`` with the file and the cause named, a
non-zero exit, no traceback and no report; and the slice-store build refuses a source volume
edited after inspection."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from defects import DEFECTS, apply, make_task

from segscale.data.store import MANIFEST, STORE_FILES


def _python(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=300, env=env)


def _inspect(root, report) -> subprocess.CompletedProcess:
    return _python("segscale.data.validate", "--root", str(root), "--report", str(report),
                   "--name", "x")


def test_corpus_is_large_and_every_base_task_is_valid(tmp_path):
    assert len(DEFECTS) >= 30
    for kind in sorted({kind for kind, _ in DEFECTS.values()}):
        root = make_task(kind, tmp_path / kind / "task")
        done = _inspect(root, tmp_path / kind / "inspect.json")
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads((tmp_path / kind / "inspect.json").read_text())
        assert all(len(c["sha256"]["image"]) == 64 for c in report["cases"])
        assert len(report["test"]) == 1 and report["test"][0]["sha256"]


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defective_task_is_refused(tmp_path, name):
    root = tmp_path / "task"
    file_fragment, cause = apply(name, root)
    report = tmp_path / "out" / "inspect.json"
    done = _inspect(root, report)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    problems = [line for line in output.splitlines() if file_fragment in line]
    assert any(cause in line for line in problems), (
        f"expected a line naming {file_fragment!r} with {cause!r}:\n{output[-3000:]}")
    assert not report.exists()
    assert not (report.parent.exists() and list(report.parent.iterdir()))


def _build_args(root, tmp_path) -> tuple[list[str], object]:
    params = {"root": str(root), "size": [40, 24], "label_map": [0, 1],
              "class_names": ["background", "left_atrium"],
              "slices": {"count": 3, "select": "labelled", "margin": 0},
              "split": {"train": 0.34, "val": 0.33, "test": 0.33, "seed": 1}}
    report = tmp_path / "inspect.json"
    done = _python("segscale.data.validate", "--root", str(root), "--report", str(report),
                   "--name", "heart", "--params", json.dumps(params))
    assert done.returncode == 0, done.stderr[-2000:]
    cases = json.loads(report.read_text())["cases"]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"params": {}, "patients": {
        "train": [c["patient"] for c in cases], "val": [], "test": []}}))
    out = tmp_path / "store"
    return ["--name", "heart", "--params", json.dumps(params), "--inspect", str(report),
            "--split-file", str(split), "--split", "train", "--out", str(out)], out


@pytest.mark.parametrize("which", ["imagesTr", "labelsTr"])
def test_build_refuses_a_source_changed_after_inspection(tmp_path, which):
    root = make_task("heart", tmp_path / "task")
    args, out = _build_args(root, tmp_path)
    # An older complete store in the output folder must not survive the failed build.
    assert _python("segscale.data.build", *args).returncode == 0
    assert (out / MANIFEST).is_file()
    victim = root / which / "la_002.nii.gz"
    img = nib.load(str(victim))
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 1 - data[0, 0, 0] if which == "labelsTr" else data[0, 0, 0] + 1
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(victim))  # still readable
    done = _python("segscale.data.build", *args)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output, output[-3000:]
    line = next(x for x in output.splitlines() if "changed since inspection" in x)
    assert f"{which}/la_002.nii.gz" in line and "re-run inspect" in line
    assert not any((out / name).exists() for name in STORE_FILES)
    assert not list(out.glob(".*partial*"))


def test_build_refuses_a_report_without_checksums(tmp_path):
    root = make_task("heart", tmp_path / "task")
    args, out = _build_args(root, tmp_path)
    report = tmp_path / "inspect.json"
    meta = json.loads(report.read_text())
    for case in meta["cases"]:
        del case["sha256"]
    report.write_text(json.dumps(meta))
    done = _python("segscale.data.build", *args)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output
    assert "records no checksum" in output and "la_001.nii.gz" in output
    assert not (out / MANIFEST).exists()
