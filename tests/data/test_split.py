"""Patient-level splits: no leakage, reproducible, hand-checked sizes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segscale.data.params import SplitParams
from segscale.data.split import split_patients


@settings(max_examples=50, deadline=None)
@given(n=st.integers(3, 80), seed=st.integers(0, 2**31))
def test_every_patient_in_exactly_one_split(n, seed):
    patients = [f"P{i:03d}" for i in range(n)]
    out = split_patients(patients, SplitParams(0.7, 0.1, 0.2, seed))
    seen = out["train"] + out["val"] + out["test"]
    assert sorted(seen) == patients  # none lost, none twice
    assert all(len(v) >= 1 for v in out.values())


def test_sizes_hand_computed():
    out = split_patients([f"p{i}" for i in range(10)], SplitParams(0.6, 0.2, 0.2, 0))
    assert {k: len(v) for k, v in out.items()} == {"train": 6, "val": 2, "test": 2}


def test_independent_of_listing_order_and_reproducible():
    ids = [f"p{i}" for i in range(20)]
    a = split_patients(ids, SplitParams(seed=7))
    b = split_patients(list(reversed(ids)), SplitParams(seed=7))
    c = split_patients(ids, SplitParams(seed=8))
    assert a == b
    assert a != c


def test_zero_ratio_gives_empty_split():
    out = split_patients(["a", "b", "c"], SplitParams(0.8, 0.0, 0.2, 0))
    assert out["val"] == [] and len(out["test"]) == 1


@pytest.mark.parametrize(("ids", "match"), [
    (["a", "a", "b"], "duplicate patient ids: \\['a'\\]"),
    (["a", "b"], "cannot fill"),
])
def test_bad_inputs(ids, match):
    with pytest.raises(ValueError, match=match):
        split_patients(ids, SplitParams(0.4, 0.3, 0.3, 0))


def test_ratios_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        SplitParams(0.5, 0.1, 0.1)
