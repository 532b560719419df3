"""Augmentation as thesis table 2.1: rotation [-45, 45], zoom [0.8, 1.2], translation along ONE
axis at a time by [0, 25.6 px] at 512 (scaled with the side); other behaviours only as named
options (``translation``, ``shift_sign``), refused when misspelt."""

from __future__ import annotations

import math
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from segscale.data import augment, build
from segscale.data.augment import build_augmented
from segscale.data.params import (
    AUGMENT_SHIFT_SIGNS,
    AUGMENT_TRANSLATIONS,
    AugmentParams,
    DatasetParams,
)
from segscale.data.split import split_patients
from segscale.data.store import SliceStore
from segscale.data.validate import inspect_dataset

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
AUGMENT_SCHEMA = SCHEMA["$defs"]["dataset"]["properties"]["augment"]


class _Stub:
    """A generator whose uniform draw returns a fixed point of the interval (0 = low end,
    1 = high end) and whose integer draw returns a fixed axis: draws by hand."""

    def __init__(self, fraction: float, axis: int = 0):
        self.fraction, self.axis = fraction, axis

    def uniform(self, low, high):
        return low + self.fraction * (high - low)

    def integers(self, n):
        assert n == 2
        return self.axis


# ---- defaults and bounds, hand-computed --------------------------------------------------

def test_defaults_are_table_2_1():
    p = AugmentParams()
    assert (p.rotation, p.zoom, p.shift) == (45.0, (0.8, 1.2), 0.05)
    assert (p.translation, p.shift_sign) == ("one_axis", "positive")


@pytest.mark.parametrize(("size", "bounds"), [
    ((512, 512), (25.6, 25.6)),   # the thesis's 25.6 px at 512
    ((64, 64), (3.2, 3.2)),       # 25.6 * 64 / 512
    ((128, 128), (6.4, 6.4)),
    ((40, 24), (2.0, 1.2)),       # rows (y) scale with the height, cols (x) with the width
])
def test_shift_bound_scales_with_the_side(size, bounds):
    assert augment.shift_bounds(AugmentParams(), size) == pytest.approx(bounds, abs=1e-12)


@pytest.mark.parametrize(("size", "axis", "rows", "cols"), [
    ((512, 512), 1, 0.0, 25.6), ((512, 512), 0, 25.6, 0.0),
    ((64, 64), 1, 0.0, 3.2), ((64, 64), 0, 3.2, 0.0),
    ((40, 24), 0, 2.0, 0.0), ((40, 24), 1, 0.0, 1.2),
])
def test_largest_draw_is_the_bound_along_the_drawn_axis_only(size, axis, rows, cols):
    t = augment.draw(_Stub(1.0, axis), AugmentParams(), size)
    assert (t.rotation, t.zoom) == (45.0, pytest.approx(1.2))
    assert (t.shift_rows, t.shift_cols) == (pytest.approx(rows), pytest.approx(cols))


def test_sign_positive_starts_at_zero_and_both_at_minus_the_bound():
    low = augment.draw(_Stub(0.0, 1), AugmentParams(), (64, 64))
    assert (low.rotation, low.zoom, low.shift_rows, low.shift_cols) == (-45.0, 0.8, 0.0, 0.0)
    both = augment.draw(_Stub(0.0, 1), AugmentParams(shift_sign="both"), (64, 64))
    assert (both.shift_rows, both.shift_cols) == (0.0, pytest.approx(-3.2))
    mid = augment.draw(_Stub(0.5, 0), AugmentParams(), (64, 64))
    assert (mid.rotation, mid.zoom) == (0.0, pytest.approx(1.0))
    assert (mid.shift_rows, mid.shift_cols) == (pytest.approx(1.6), 0.0)


# ---- real draws: one axis per image, within the bound ------------------------------------

def test_fixed_seed_each_image_is_shifted_along_exactly_one_axis():
    params, size = AugmentParams(seed=0), (64, 64)
    draws = [augment.draw(np.random.default_rng([params.seed, i]), params, size)
             for i in range(400)]
    axes = [(t.shift_rows != 0) + 2 * (t.shift_cols != 0) for t in draws]
    assert set(axes) == {1, 2}  # y only or x only; never both (3), never none (0)
    n_x = axes.count(2)
    assert 140 <= n_x <= 260  # axis drawn with probability 1/2 (binomial 400, +-6 sd)
    shifts = np.array([t.shift_rows + t.shift_cols for t in draws])
    assert shifts.min() >= 0 and shifts.max() <= 3.2
    assert shifts.max() > 0.95 * 3.2  # the whole range is used
    rotations = np.array([t.rotation for t in draws])
    zooms = np.array([t.zoom for t in draws])
    assert rotations.min() >= -45 and rotations.max() <= 45 and rotations.min() < -40
    assert zooms.min() >= 0.8 and zooms.max() <= 1.2


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), row=st.integers(0, 10**6),
       height=st.integers(8, 1024), width=st.integers(8, 1024),
       sign=st.sampled_from(AUGMENT_SHIFT_SIGNS))
def test_one_axis_never_shifts_both_axes_nor_exceeds_the_bound(seed, row, height, width, sign):
    params = AugmentParams(seed=seed, shift_sign=sign)
    t = augment.draw(np.random.default_rng([seed, row]), params, (height, width))
    assert t.shift_rows == 0.0 or t.shift_cols == 0.0
    bound_rows, bound_cols = 25.6 * height / 512, 25.6 * width / 512
    assert abs(t.shift_rows) <= bound_rows + 1e-9 and abs(t.shift_cols) <= bound_cols + 1e-9
    if sign == "positive":
        assert t.shift_rows >= 0 and t.shift_cols >= 0


# ---- named departures ---------------------------------------------------------------------

def _old_draw(rng, params, size):
    """The draw of this package before table 2.1 was followed (both axes, both signs)."""
    return augment.Affine2D(
        rotation=float(rng.uniform(-params.rotation, params.rotation)),
        zoom=float(rng.uniform(*params.zoom)),
        shift_rows=float(rng.uniform(-params.shift, params.shift) * size[0]),
        shift_cols=float(rng.uniform(-params.shift, params.shift) * size[1]),
    )


def test_both_axes_both_signs_reproduces_the_old_draw_exactly():
    params = AugmentParams(translation="both_axes", shift_sign="both")
    for i in range(100):
        new = augment.draw(np.random.default_rng([3, i]), params, (64, 48))
        assert new == _old_draw(np.random.default_rng([3, i]), params, (64, 48))
    draws = [augment.draw(np.random.default_rng([3, i]), params, (64, 48)) for i in range(100)]
    assert all(t.shift_rows != 0 and t.shift_cols != 0 for t in draws)
    assert min(t.shift_rows for t in draws) < 0 < max(t.shift_rows for t in draws)


def test_both_axes_positive_shifts_both_axes_forward():
    params = AugmentParams(translation="both_axes")
    t = augment.draw(_Stub(1.0), params, (64, 32))
    assert (t.shift_rows, t.shift_cols) == (pytest.approx(3.2), pytest.approx(1.6))
    draws = [augment.draw(np.random.default_rng([0, i]), params, (64, 64)) for i in range(50)]
    assert all(0 < t.shift_rows <= 3.2 and 0 < t.shift_cols <= 3.2 for t in draws)


@pytest.mark.parametrize(("key", "value"), [
    ("translation", "diagonal"), ("translation", "x"), ("translation", ""),
    ("translation", None), ("shift_sign", "negative"), ("shift_sign", "+"),
])
def test_bad_option_values_are_refused_naming_the_key(key, value):
    expected = rf"augment\.{key} must be one of .*got {re.escape(repr(value))}"
    with pytest.raises(ValueError, match=expected):
        AugmentParams(**{key: value})
    with pytest.raises(ValueError, match=rf"augment\.{key}"):
        DatasetParams.from_mapping("heart", {"root": "x", "augment": {key: value}})


def test_misspelt_option_key_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"datasets\.heart\.augment: unknown key\(s\) "
                                         r"\['translate'\]"):
        DatasetParams.from_mapping("heart", {"root": "x", "augment": {"translate": "both_axes"}})


def test_schema_options_and_defaults_match_the_params():
    props = AUGMENT_SCHEMA["properties"]
    assert tuple(props["translation"]["enum"]) == AUGMENT_TRANSLATIONS
    assert tuple(props["shift_sign"]["enum"]) == AUGMENT_SHIFT_SIGNS
    defaults = AugmentParams()
    for key in ("target", "rotation", "shift", "translation", "shift_sign", "seed"):
        assert props[key]["default"] == getattr(defaults, key), key
    assert tuple(props["zoom"]["default"]) == defaults.zoom


@pytest.mark.parametrize(("key", "value"), [("translation", "diagonal"),
                                            ("shift_sign", "negative")])
def test_schema_refuses_bad_option_values_naming_the_key(key, value):
    config = {"datasets": {"heart": {"root": "x", "augment": {key: value}}}}
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(config))
    assert errors
    assert any(list(e.absolute_path) == ["datasets", "heart", "augment", key] for e in errors)
    jsonschema.Draft202012Validator(SCHEMA).validate({"datasets": {"heart": {"root": "x",
        "augment": {"translation": "both_axes", "shift_sign": "both"}}}})


# ---- the augmented store ----------------------------------------------------------------

@pytest.fixture(scope="module")
def store64(heart_task, tmp_path_factory):
    """A 64 x 64 train store of the demo heart task (15 slices)."""
    params = DatasetParams.from_mapping("heart", {
        "root": str(heart_task), "size": [64, 64], "label_map": [0, 1],
        "slices": {"count": 5, "select": "labelled", "margin": 0},
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 1}})
    report = inspect_dataset(heart_task, params)
    patients = split_patients([c["patient"] for c in report["cases"]], params.split)
    out = tmp_path_factory.mktemp("aug64") / "train"
    build.build_store(params, report, {"params": {}, "patients": patients}, "train", out,
                      threads=1)
    return SliceStore.open(out)


def _shifted(label: np.ndarray, rows: float, cols: float) -> np.ndarray:
    """``label`` translated by (rows, cols) >= 0 as nearest-neighbour resampling does it:
    pixels whose source lies before the first row/column are background."""
    out = np.zeros_like(label)
    r0, c0 = math.ceil(rows), math.ceil(cols)
    dr, dc = round(rows), round(cols)
    out[r0:, c0:] = label[r0 - dr:label.shape[0] - dr, c0 - dc:label.shape[1] - dc]
    return out


def test_augmented_labels_are_one_axis_translations_of_their_source(store64, tmp_path):
    params = AugmentParams(target=60, rotation=0, zoom=(1.0, 1.0), seed=4)
    manifest = build_augmented(str(store64.directory), str(tmp_path / "aug"), params,
                               threads=2, chunk=8)
    aug = SliceStore.open(tmp_path / "aug")
    rows = aug.index[aug.index["augmented"]]
    assert len(rows) == 45
    moved = {"x": 0, "y": 0}
    for i, r in rows.iterrows():
        assert (r["shift_rows"] == 0) != (r["shift_cols"] == 0)
        assert 0 <= r["shift_rows"] <= 3.2 and 0 <= r["shift_cols"] <= 3.2
        moved["x" if r["shift_cols"] else "y"] += 1
        expected = _shifted(store64.labels[r["source_row"]], r["shift_rows"], r["shift_cols"])
        np.testing.assert_array_equal(aug.labels[i], expected)
    assert moved["x"] > 0 and moved["y"] > 0
    # The effective settings, in pixels at the configured size, are in the manifest.
    assert manifest["augment_effective"] == {
        "size": [64, 64], "rotation_deg": [0.0, 0.0], "zoom": [1.0, 1.0],
        "translation": "one_axis", "shift_sign": "positive",
        "shift_px_x": [0.0, pytest.approx(3.2)], "shift_px_y": [0.0, pytest.approx(3.2)],
        "axis_probability": {"x": 0.5, "y": 0.5}}
    assert manifest["augment"]["translation"] == "one_axis"
    assert aug.manifest["augment_effective"]["shift_px_x"][1] == pytest.approx(3.2)


def test_manifest_effective_settings_of_the_options(store64, tmp_path):
    params = AugmentParams(target=20, translation="both_axes", shift_sign="both", shift=0.1)
    manifest = build_augmented(str(store64.directory), str(tmp_path / "aug"), params)
    eff = manifest["augment_effective"]
    assert eff["rotation_deg"] == [-45.0, 45.0] and eff["zoom"] == [0.8, 1.2]
    assert eff["shift_px_x"] == [pytest.approx(-6.4), pytest.approx(6.4)]
    assert eff["axis_probability"] == {"x_and_y": 1.0}


@pytest.mark.parametrize("params", [AugmentParams(target=50, seed=7),
                                    AugmentParams(target=50, seed=7, translation="both_axes",
                                                  shift_sign="both")])
def test_same_store_whatever_the_worker_count(store64, tmp_path, params):
    outs = []
    for threads, chunk in ((1, 256), (3, 4)):
        out = tmp_path / f"aug{threads}"
        build_augmented(str(store64.directory), str(out), params, threads=threads, chunk=chunk)
        outs.append(SliceStore.open(out))
    np.testing.assert_array_equal(outs[0].labels, outs[1].labels)
    np.testing.assert_array_equal(np.asarray(outs[0].images), np.asarray(outs[1].images))
    cols = ["source_row", "rotation", "zoom", "shift_rows", "shift_cols"]
    assert outs[0].index[cols].equals(outs[1].index[cols])
