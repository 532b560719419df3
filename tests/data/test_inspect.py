"""Inspection refuses every kind of broken input with a message naming the file,
a non-zero exit, and no report; and it reads non-NIfTI formats through SimpleITK."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from segscale.data import validate as inspect
from segscale.data.msd import load_volume


def _run(root, tmp_path, caplog, *extra):
    report = tmp_path / "report" / "inspect.json"
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code = inspect.main(["--root", str(root), "--report", str(report), *extra])
    return code, report, caplog.text


def _rewrite(path, data=None, affine=None):
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) if data is None else data,
                             img.affine if affine is None else affine), str(path))


def test_valid_task_reports_every_volume(heart_task, tmp_path, caplog):
    code, report, _ = _run(heart_task, tmp_path, caplog)
    assert code == 0
    meta = json.loads(report.read_text())
    assert meta["n_training"] == 5 and len(meta["cases"]) == 5
    case = meta["cases"][0]
    assert case["shape"] == [64, 52, 20] and case["spacing"] == [1.25, 1.25, 2.7]
    assert set(case["label_counts"]) == {"0", "1"}
    total = sum(sum(c["label_counts"].values()) for c in meta["cases"])
    assert total == 5 * 64 * 52 * 20
    assert meta["environment"]["packages"]["nibabel"]


def test_valid_4d_task(brats_task, tmp_path, caplog):
    code, report, _ = _run(brats_task, tmp_path, caplog, "--params",
                           json.dumps({"root": str(brats_task), "channels": [1, 3],
                                       "label_map": [0, 1, 2, 3]}))
    assert code == 0
    meta = json.loads(report.read_text())
    assert meta["cases"][0]["shape"] == [56, 48, 32, 4]
    assert set(meta["label_voxel_totals"]) == {"0", "1", "2", "3"}


def _break_missing(root):
    (root / "labelsTr" / "la_002.nii.gz").unlink()
    return "la_002.nii.gz: file not found"


def _break_truncated(root):
    path = root / "imagesTr" / "la_003.nii.gz"
    path.write_bytes(path.read_bytes()[:4000])
    return "la_003.nii.gz: truncated or corrupt"


def _break_garbage(root):
    (root / "imagesTr" / "la_001.nii.gz").write_bytes(b"\x1f\x8b" + b"not gzip at all" * 50)
    return "la_001.nii.gz"


def _break_shape(root):
    path = root / "labelsTr" / "la_004.nii.gz"
    _rewrite(path, data=np.zeros((64, 52, 19), np.uint8))
    return "la_004.nii.gz: label shape (64, 52, 19) differs from image shape (64, 52, 20)"


def _break_affine(root):
    path = root / "labelsTr" / "la_005.nii.gz"
    _rewrite(path, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    return "la_005.nii.gz: label affine differs"


def _break_label_values(root):
    path = root / "labelsTr" / "la_001.nii.gz"
    data = np.asarray(nib.load(str(path)).dataobj).copy()
    data[0, 0, 0] = 7
    _rewrite(path, data=data)
    return "la_001.nii.gz: label values [7] not declared"


def _break_nan(root):
    path = root / "imagesTr" / "la_002.nii.gz"
    data = np.asarray(nib.load(str(path)).dataobj).astype(np.float32)
    data[1, 2, 3] = np.nan
    data[2, 2, 3] = np.inf
    _rewrite(path, data=data)
    return "la_002.nii.gz: 2 NaN/inf intensities"


def _break_dimensionality(root):
    path = root / "imagesTr" / "la_003.nii.gz"
    data = np.asarray(nib.load(str(path)).dataobj)
    _rewrite(path, data=np.stack([data, data], axis=-1))
    return "la_003.nii.gz: image is 4D, expected 3D"


def _break_json(root):
    (root / "dataset.json").write_text("{not json")
    return "dataset.json: not valid JSON"


def _break_json_keys(root):
    meta = json.loads((root / "dataset.json").read_text())
    del meta["training"]
    (root / "dataset.json").write_text(json.dumps(meta))
    return "key 'training' missing"


@pytest.mark.parametrize("breaker", [
    _break_missing, _break_truncated, _break_garbage, _break_shape, _break_affine,
    _break_label_values, _break_nan, _break_dimensionality, _break_json, _break_json_keys,
], ids=lambda f: f.__name__[7:])
def test_bad_input_is_refused_with_the_file_named(heart_copy, tmp_path, caplog, breaker):
    expected = breaker(heart_copy)
    code, report, text = _run(heart_copy, tmp_path, caplog)
    assert code == 1
    assert expected in text
    assert not report.exists()
    assert not list(report.parent.glob("*")) if report.parent.exists() else True


def test_all_problems_reported_together(heart_copy, tmp_path, caplog):
    _break_missing(heart_copy)
    _break_label_values(heart_copy)
    code, _, text = _run(heart_copy, tmp_path, caplog)
    assert code == 1 and "la_002.nii.gz: file not found" in text
    assert "la_001.nii.gz: label values [7]" in text


@pytest.mark.parametrize(("params", "expected"), [
    ({"channels": [2]}, "channels: [2] but dataset.json declares 1"),
    ({"label_map": [0, 1], "bogus": 1}, "unknown key(s) ['bogus']"),
])
def test_config_that_does_not_fit_the_data(heart_task, tmp_path, caplog, params, expected):
    code, report, text = _run(heart_task, tmp_path, caplog, "--params",
                              json.dumps({"root": str(heart_task), **params}))
    assert code == 1 and expected in text and not report.exists()


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_simpleitk_formats_match_nifti(heart_copy, tmp_path, caplog, suffix):
    import SimpleITK as sitk

    meta = json.loads((heart_copy / "dataset.json").read_text())
    for entry in meta["training"]:
        for key in ("image", "label"):
            src = heart_copy / entry[key]
            dst = src.with_name(src.name.replace(".nii.gz", suffix))
            sitk.WriteImage(sitk.ReadImage(str(src)), str(dst))
            entry[key] = entry[key].replace(".nii.gz", suffix)
    (heart_copy / "dataset.json").write_text(json.dumps(meta))
    code, report, _ = _run(heart_copy, tmp_path, caplog)
    assert code == 0
    first = meta["training"][0]["image"]
    via_itk = load_volume(heart_copy / first)
    via_nib = load_volume(heart_copy / first.replace(suffix, ".nii.gz"))
    np.testing.assert_array_equal(via_itk.data, via_nib.data)
    np.testing.assert_allclose(via_itk.affine, via_nib.affine, atol=1e-4)
    assert via_itk.spacing == pytest.approx(via_nib.spacing)


def test_4d_simpleitk_volume_matches_nifti(brats_task, tmp_path):
    """A BRATS-style 4D (x, y, z, channel) NRRD: spatial affine and spacing, not 4x4 junk."""
    import SimpleITK as sitk

    src = brats_task / "imagesTr" / "BRATS_001.nii.gz"
    dst = tmp_path / "BRATS_001.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(src)), str(dst))
    via_itk, via_nib = load_volume(dst), load_volume(src)
    assert via_itk.data.shape == via_nib.data.shape == (56, 48, 32, 4)
    np.testing.assert_array_equal(via_itk.data, via_nib.data)
    np.testing.assert_allclose(via_itk.affine, via_nib.affine, atol=1e-4)
    assert via_itk.spacing == pytest.approx(via_nib.spacing)
