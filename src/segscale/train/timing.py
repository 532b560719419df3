"""Where a training epoch's time goes: the pure bookkeeping behind the breakdown columns of
``history.csv`` (docs/training.md, "Where the time goes"). No TensorFlow here.

A training step is cut by three wall-clock instants (seconds since the Unix epoch, so the
Python clock, ``time.time()``, and TensorFlow's ``tf.timestamp()`` agree): ``begin`` (Keras
calls the batch-begin hooks), ``input_ready`` (in the graph: the batch came out of the input
pipeline; the step waits for this stamp) and ``end`` (the batch-end hooks: the step's logs
have been fetched, so the update and metrics have finished). ``input_wait = input_ready -
begin`` (waiting for the batch, plus the ``tf.function`` dispatch); the rest of the step is
forward, backward, allreduce and update.

The allreduce is not stamped inside the step (a stamp no op waits for runs late; one the
allreduce waits for would stop Horovod overlapping it with the backward pass). Instead, once
per epoch, a gradient-sized buffer is allreduced a few times (the *probe*); ``steps x`` the
fastest of them is moved from compute to ``allreduce``. :func:`split_step` also splits a
step at two in-graph allreduce stamps, should a caller have them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: In-epoch components measured per rank, in the order :meth:`EpochTimes.values` gives.
STEP_COMPONENTS = ("compute_s", "allreduce_s", "input_wait_s", "validation_s")
#: What :func:`gather_rows` fills a slot with before the max-allreduce (below any time).
_ABSENT = -1e300


def split_step(begin: float, input_ready: float, grads_ready: float, reduced: float,
               end: float) -> tuple[float, float, float]:
    """``(compute, allreduce, input_wait)`` of one step from its five instants.

    The instants are clamped into ``begin <= input_ready <= grads_ready <= reduced <= end``
    (a NaN graph stamp counts as the instant before it), so the three parts are
    non-negative and always sum to ``end - begin``.
    """
    end = max(end, begin)

    def clamp(t: float, lo: float) -> float:
        return lo if math.isnan(t) else min(max(t, lo), end)

    i = clamp(input_ready, begin)
    g = clamp(grads_ready, i)
    r = clamp(reduced, g)
    return (g - i) + (end - r), r - g, i - begin


@dataclass
class EpochTimes:
    """One rank's breakdown of the current epoch, accumulated step by step.

    ``clock`` is injectable (tests use a fake one); it must be the clock the graph stamps use
    (``time.time``, seconds since the Unix epoch). ``process_start`` is when this rank's
    process was created (:func:`process_start_time`); the first batch-begin after it gives
    :attr:`startup_s`.
    """

    clock: Callable[[], float] = time.time
    process_start: float = math.nan
    compute: float = 0.0
    allreduce: float = 0.0
    input_wait: float = 0.0
    validation: float = 0.0
    steps: int = 0
    traced_steps: int = 0
    allreduce_per_step: float = math.nan  # seconds of one step's gradient allreduce (probe)
    startup_s: float = math.nan
    _begin: float = field(default=math.nan, repr=False)
    _test_begin: float = field(default=math.nan, repr=False)

    def reset(self) -> None:
        """At epoch begin: every component back to zero."""
        self.compute = self.allreduce = self.input_wait = self.validation = 0.0
        self.steps = self.traced_steps = 0
        self.allreduce_per_step = math.nan
        self._begin = self._test_begin = math.nan

    def batch_begin(self) -> None:
        self._begin = self.clock()
        if math.isnan(self.startup_s) and not math.isnan(self.process_start):
            self.startup_s = max(0.0, self._begin - self.process_start)

    def batch_end(self, input_ready: float, grads_ready: float, reduced: float,
                  traced: bool = False) -> None:
        """Close the step begun by :meth:`batch_begin` with the graph's three stamps.

        A ``traced`` step (its graph was built during it: a process's first step) is not
        attributed to any component: its time stays in the epoch's remainder (``other``).
        """
        end = self.clock()
        if math.isnan(self._begin) or traced:  # no begin seen, or graph building
            self.traced_steps += int(traced)
            self._begin = math.nan
            return
        compute, allreduce, wait = split_step(self._begin, input_ready, grads_ready, reduced,
                                              end)
        self.compute += compute
        self.allreduce += allreduce
        self.input_wait += wait
        self.steps += 1
        self._begin = math.nan

    def test_begin(self) -> None:
        self._test_begin = self.clock()

    def test_end(self) -> None:
        if not math.isnan(self._test_begin):
            self.validation += max(0.0, self.clock() - self._test_begin)
        self._test_begin = math.nan

    def values(self) -> np.ndarray:
        """This epoch's components in :data:`STEP_COMPONENTS` order.

        With :attr:`allreduce_per_step` known (the probe), ``steps`` times it is taken out of
        the steps' compute (never more than there is) and reported as allreduce.
        """
        compute, allreduce = self.compute, self.allreduce
        if not math.isnan(self.allreduce_per_step):
            moved = min(compute, self.steps * self.allreduce_per_step)
            compute, allreduce = compute - moved, allreduce + moved
        return np.array([compute, allreduce, self.input_wait, self.validation])


def gather_rows(values: np.ndarray, rank: int, size: int,
                allreduce_max: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Every rank's ``values`` as a ``(size, k)`` array, from one max-allreduce.

    Each rank fills its own row and leaves the others far below any value; the element-wise
    maximum over ranks is then every rank's row (an allgather made of the one collective the
    callbacks have). Rows a rank never filled come back as NaN.
    """
    values = np.asarray(values, dtype=float)
    slots = np.full((size, values.size), _ABSENT)
    slots[rank] = np.where(np.isnan(values), _ABSENT, values)
    rows = np.asarray(allreduce_max(slots.ravel()), dtype=float).reshape(size, values.size)
    return np.where(rows <= _ABSENT / 2, np.nan, rows)


def rank_mean(rows: np.ndarray) -> np.ndarray:
    """Column means over the ranks that reported a value (NaN where none did)."""
    rows = np.asarray(rows, dtype=float)
    counts = np.sum(~np.isnan(rows), axis=0)
    sums = np.nansum(rows, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def process_start_time() -> float:
    """When this process was created (seconds since the Unix epoch); NaN if unknown."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - start-up is then simply not reported
        return math.nan
