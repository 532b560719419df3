"""The time breakdown's bookkeeping (segscale.train.timing) with fake clocks, no TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segscale.study import BREAKDOWN_COLUMNS, HISTORY_COLUMNS
from segscale.train.timing import (
    STEP_COMPONENTS,
    EpochTimes,
    gather_rows,
    rank_mean,
    split_step,
)


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


def test_split_step_parts_sum_to_the_step():
    # begin 0, batch at 0.1, grads at 0.6, reduced at 0.9, end 1.0
    compute, allreduce, wait = split_step(0.0, 0.1, 0.6, 0.9, 1.0)
    assert (compute, allreduce, wait) == pytest.approx((0.5 + 0.1, 0.3, 0.1))


@pytest.mark.parametrize("stamps", [
    (math.nan, math.nan, math.nan),   # no graph stamps: everything is compute
    (-5.0, 0.6, 0.9),                 # a stamp before begin
    (0.1, 0.9, 0.6),                  # reduced before grads ready
    (0.1, 0.6, 7.0),                  # a stamp after end
])
def test_split_step_never_creates_or_loses_time(stamps):
    parts = split_step(0.0, *stamps, 1.0)
    assert all(p >= 0 for p in parts)
    assert sum(parts) == pytest.approx(1.0)


def test_split_step_without_stamps_is_all_compute():
    assert split_step(2.0, math.nan, math.nan, math.nan, 3.5) == (1.5, 0.0, 0.0)


def test_epoch_times_accumulate_steps_and_validation():
    clock = FakeClock()
    times = EpochTimes(clock=clock, process_start=clock.t - 30.0)
    times.reset()
    for _ in range(3):
        begin = clock.t
        times.batch_begin()
        clock.advance(1.0)
        # batch ready 0.2 s after begin, grads 0.5 s later, allreduced 0.2 s later
        times.batch_end(begin + 0.2, begin + 0.7, begin + 0.9)
        clock.advance(0.05)  # other callbacks between steps: not attributed
    times.test_begin()
    clock.advance(2.0)
    times.test_end()
    compute, allreduce, wait, validation = times.values()
    assert times.steps == 3
    assert compute == pytest.approx(3 * (0.5 + 0.1))
    assert allreduce == pytest.approx(3 * 0.2)
    assert wait == pytest.approx(3 * 0.2)
    assert validation == pytest.approx(2.0)
    assert times.startup_s == pytest.approx(30.0)  # the first batch only
    times.reset()
    assert times.values().tolist() == [0.0, 0.0, 0.0, 0.0] and times.startup_s == 30.0


def test_epoch_times_ignore_an_unmatched_end_and_unknown_process_start():
    clock = FakeClock()
    times = EpochTimes(clock=clock)
    times.batch_end(clock.t, clock.t, clock.t)  # no begin: nothing attributed
    times.test_end()
    assert times.values().tolist() == [0.0, 0.0, 0.0, 0.0] and times.steps == 0
    times.batch_begin()
    assert math.isnan(times.startup_s)


def fake_allreduce_max(per_rank: list[np.ndarray]):
    """What a max-allreduce over ranks returns, given every rank's contribution."""
    return np.max(np.stack(per_rank), axis=0)


def test_gather_rows_is_an_allgather_through_max():
    values = [np.array([1.0, 5.0]), np.array([3.0, math.nan]), np.array([-2.0, 0.5])]
    contributions = []  # what each rank hands to the collective
    for rank, v in enumerate(values):
        gather_rows(v, rank, 3, lambda a: contributions.append(a.copy()) or a)
    gathered = fake_allreduce_max(contributions)
    rows = gather_rows(values[0], 0, 3, lambda _a: gathered)
    assert rows.shape == (3, 2)
    np.testing.assert_array_equal(rows, np.array([[1.0, 5.0], [3.0, np.nan], [-2.0, 0.5]]))
    np.testing.assert_allclose(rank_mean(rows), [2 / 3, 2.75])


def test_gather_rows_single_rank_and_rank_mean_of_nothing():
    rows = gather_rows(np.array([1.5, 2.5]), 0, 1, lambda a: a)
    np.testing.assert_array_equal(rows, [[1.5, 2.5]])
    assert np.isnan(rank_mean(np.full((2, 1), np.nan))).all()


def test_history_columns_hold_the_breakdown():
    assert set(STEP_COMPONENTS) < set(BREAKDOWN_COLUMNS)
    assert HISTORY_COLUMNS[-len(BREAKDOWN_COLUMNS) - 1:] == (*BREAKDOWN_COLUMNS, "startup_s")
    assert "epoch_time_s" in HISTORY_COLUMNS  # unchanged meaning, still there


def test_probe_moves_allreduce_out_of_compute_and_traced_steps_count_nowhere():
    clock = FakeClock()
    times = EpochTimes(clock=clock)
    times.reset()
    times.batch_begin()
    clock.advance(5.0)  # the first step builds the graph
    times.batch_end(clock.t - 1.0, math.nan, math.nan, traced=True)
    for _ in range(4):
        begin = clock.t
        times.batch_begin()
        clock.advance(1.0)
        times.batch_end(begin + 0.1, math.nan, math.nan)
    assert times.steps == 4 and times.traced_steps == 1
    assert times.values().tolist() == pytest.approx([3.6, 0.0, 0.4, 0.0])
    times.allreduce_per_step = 0.25
    assert times.values().tolist() == pytest.approx([2.6, 1.0, 0.4, 0.0])
    times.allreduce_per_step = 10.0  # never more than the steps' compute
    assert times.values().tolist() == pytest.approx([0.0, 3.6, 0.4, 0.0])
    times.reset()
    assert math.isnan(times.allreduce_per_step) and times.traced_steps == 0
