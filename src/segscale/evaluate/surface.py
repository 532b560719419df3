"""Surface distances between two binary masks, in physical units (voxel spacing), 2D or 3D.

Definitions (the same as ``medpy.metric.binary``, against which the tests check them):

* The **surface** of a mask is its voxels with at least one face-neighbour (connectivity 1;
  ``connectivity`` widens it) outside the mask; voxels beyond the array edge count as
  outside, so a mask touching the edge has a surface there.
* The **directed surface distances** from A to B are, for every surface voxel of A, the
  Euclidean distance (with ``spacing``) to the nearest surface voxel of B.
* ``asd_pred_to_truth`` / ``asd_truth_to_pred``: the means of the two directed sets
  (medpy ``asd(pred, truth)`` / ``asd(truth, pred)``).
* ``masd``: the mean of those two directed averages, ``(asd_p2t + asd_t2p) / 2`` (what
  medpy < 0.5 called ``assd``).
* ``assd``: the average symmetric surface distance of Heimann et al. (2009): the mean of
  all directed distances of both directions pooled, so the larger surface weighs more
  (medpy >= 0.5 ``assd``).
* ``avg_hausdorff``: the thesis's Average Hausdorff distance (table 5.1, "AVD",
  Taha & Hanbury 2015): the **maximum** of the two directed averages,
  ``max(d_H(pred, truth), d_H(truth, pred))``, over **all voxels** of each mask ("N is the
  number of pixels/voxels considered"), see :func:`average_hausdorff`.
* ``hd``: the Hausdorff distance, the maximum of all directed distances.
* ``hd95``: the 95th percentile of the pooled directed distances of both directions
  (medpy ``hd95``; not the max of two one-sided percentiles).

Empty masks: both empty gives NaN everywhere (nothing to compare, like Dice); exactly one
empty gives ``inf`` everywhere (the distance to a missing object is unbounded; callers that
average keep these out of means and count them, see :mod:`segscale.evaluate.scoring`).

Speed: the distance transform runs only on the bounding box of the union of the two
masks. That is exact: every surface voxel of both masks lies in the box, Euclidean
distances between them do not depend on what surrounds the box, and voxels just outside
the box are background, as the array edge is for the erosion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

__all__ = ["SurfaceDistances", "average_hausdorff", "bounding_box", "directed_surface_distances",
           "surface_distances", "surface_metrics"]


@dataclass(frozen=True)
class SurfaceDistances:
    """Surface-distance summary of one (truth, prediction) pair, in spacing units (mm)."""

    hd: float
    hd95: float
    asd_pred_to_truth: float
    asd_truth_to_pred: float
    masd: float
    assd: float
    avg_hausdorff: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def filled(cls, value: float) -> SurfaceDistances:
        """Every field ``value`` (NaN: both masks empty; inf: exactly one empty)."""
        return cls(*[value] * 7)


def _check(truth: np.ndarray, pred: np.ndarray,
           spacing: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    if truth.ndim < 1:
        raise ValueError("masks must have at least one dimension")
    sp = np.ones(truth.ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    if sp.shape != (truth.ndim,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be {truth.ndim} positive finite numbers, "
                         f"got {None if spacing is None else list(spacing)}")
    return truth.astype(bool), pred.astype(bool), sp


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every non-zero voxel of ``mask`` (empty slices if none).

    One ``any`` projection per axis: much faster than ``np.nonzero`` on large volumes.
    """
    mask = np.asarray(mask, dtype=bool)
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others) if others else mask)
        box.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0))
    return tuple(box)


def _border(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=footprint, border_value=0)


def surface_distances(truth: np.ndarray, pred: np.ndarray,
                      spacing: Sequence[float] | None = None,
                      connectivity: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances both ways: ``(pred -> truth, truth -> pred)``.

    Args:
        truth: binary mask (any non-zero is foreground), 1D to 3D (any ndim works).
        pred: binary mask, same shape.
        spacing: voxel size per axis (default 1); distances come in its units.
        connectivity: neighbourhood defining the surface, 1..ndim
            (``scipy.ndimage.generate_binary_structure``).

    Returns:
        Two 1D float64 arrays: one distance per surface voxel of ``pred`` (to the truth
        surface) and per surface voxel of ``truth``; both empty if either mask is empty.

    Raises:
        ValueError: shapes differ, or ``spacing`` has the wrong length or a value <= 0.
    """
    truth, pred, sp = _check(truth, pred, spacing)
    if not truth.any() or not pred.any():
        return np.empty(0), np.empty(0)
    box = bounding_box(truth | pred)
    truth, pred = truth[box], pred[box]
    footprint = ndimage.generate_binary_structure(truth.ndim, connectivity)
    t_border, p_border = _border(truth, footprint), _border(pred, footprint)
    to_truth = ndimage.distance_transform_edt(~t_border, sampling=sp)
    to_pred = ndimage.distance_transform_edt(~p_border, sampling=sp)
    return to_truth[p_border], to_pred[t_border]


def directed_surface_distances(source: np.ndarray, target: np.ndarray,
                               spacing: Sequence[float] | None = None,
                               connectivity: int = 1) -> np.ndarray:
    """Distances from each surface voxel of ``source`` to the surface of ``target``.

    Same arguments, conventions and errors as :func:`surface_distances` (empty result when
    either mask is empty).
    """
    return surface_distances(target, source, spacing, connectivity)[0]


def surface_metrics(truth: np.ndarray, pred: np.ndarray,
                    spacing: Sequence[float] | None = None, percentile: float = 95.0,
                    connectivity: int = 1) -> SurfaceDistances:
    """Hausdorff, percentile Hausdorff and average surface distances of one pair.

    Args:
        truth, pred, spacing, connectivity: as :func:`surface_distances`.
        percentile: of the pooled directed distances, reported as ``hd95`` (default 95).

    Returns:
        :class:`SurfaceDistances`; all NaN when both masks are empty, all ``inf`` when
        exactly one is empty; all 0.0 for identical non-empty masks.

    Raises:
        ValueError: as :func:`surface_distances`, or ``percentile`` outside [0, 100].
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    truth_any, pred_any = bool(np.any(truth)), bool(np.any(pred))
    if not (truth_any and pred_any):
        _check(truth, pred, spacing)
        return SurfaceDistances.filled(math.nan if truth_any == pred_any else math.inf)
    p2t, t2p = surface_distances(truth, pred, spacing, connectivity)
    pooled = np.concatenate([p2t, t2p])
    a, b = float(p2t.mean()), float(t2p.mean())
    return SurfaceDistances(hd=float(pooled.max()),
                            hd95=float(np.percentile(pooled, percentile)),
                            asd_pred_to_truth=a, asd_truth_to_pred=b,
                            masd=(a + b) / 2, assd=float(pooled.mean()),
                            avg_hausdorff=average_hausdorff(truth, pred, spacing))


def average_hausdorff(truth: np.ndarray, pred: np.ndarray,
                      spacing: Sequence[float] | None = None) -> float:
    """The thesis's Average Hausdorff distance (table 5.1, Taha & Hanbury 2015) over all
    voxels of the two masks, not their surfaces: ``max(d(P, T), d(T, P))`` with
    ``d(A, B)`` the mean over voxels ``a`` of A of the distance to the nearest voxel of B
    (0 for voxels in both).

    Returns:
        The distance in spacing units; NaN when both masks are empty, ``inf`` when exactly
        one is.

    Raises:
        ValueError: as :func:`surface_distances`.
    """
    truth, pred, sp = _check(truth, pred, spacing)
    if not truth.any() or not pred.any():
        return math.nan if truth.any() == pred.any() else math.inf
    box = bounding_box(truth | pred)  # every voxel of both lies inside: crop is exact
    truth, pred = truth[box], pred[box]
    to_truth = ndimage.distance_transform_edt(~truth, sampling=sp)
    to_pred = ndimage.distance_transform_edt(~pred, sampling=sp)
    return float(max(to_truth[pred].mean(), to_pred[truth].mean()))
