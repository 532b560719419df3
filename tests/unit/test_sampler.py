"""Resource sampler: columns, NaN GPU fields without NVML, GPU index mapping."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from segscale.train.sampler import COLUMNS, ResourceSampler, physical_gpu_index, write_rows


def test_samples_and_writes(tmp_path):
    with ResourceSampler(0.05) as sampler:
        time.sleep(0.2)
    rows = sampler.rows
    assert len(rows) >= 3 and set(rows[0]) == set(COLUMNS)
    assert all(r["rss_mb"] > 1 for r in rows)
    assert [r["time_s"] for r in rows] == sorted(r["time_s"] for r in rows)
    assert all(math.isnan(r["gpu_util"]) for r in rows)  # no GPU index given
    write_rows(tmp_path / "r" / "rank0.csv", rows)
    df = pd.read_csv(tmp_path / "r" / "rank0.csv")
    assert list(df.columns) == list(COLUMNS) and len(df) == len(rows)


def test_missing_gpu_is_nan():
    sampler = ResourceSampler(1.0, gpu_index=99).start()
    rows = sampler.stop()
    assert math.isnan(rows[-1]["gpu_mem_mb"])


@pytest.mark.parametrize("visible, local_rank, expected", [
    (None, 1, 1), ("2,3", 1, 3), ("2,3", 0, 2), ("GPU-abc,GPU-def", 1, 1), ("", 0, 0),
])
def test_physical_gpu_index(monkeypatch, visible, local_rank, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert physical_gpu_index(local_rank) == expected


def test_bad_interval():
    with pytest.raises(ValueError):
        ResourceSampler(0)
