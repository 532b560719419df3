"""Score a test store's prediction per slice, per reassembled 3D volume and over the split.

Test planes: the test store holds every plane of every test volume along the slicing axis,
in order (``slices.count``/``select``/``margin`` shape train and val only, see
:func:`segscale.data.slicing.choose_planes`), so nothing about which planes are scored
depends on the test labels. A store lacking planes (built before whole-volume test stores)
is refused rather than scored as partial volumes.

Levels (``metrics.json`` ``levels``; each records what it covers in ``covers``: ``planes``,
``voxels``, ``volumes`` and the ``grid`` they are counted on):

* ``slice``: one confusion matrix per store row, i.e. per plane of every test volume, at the
  store's resolution ([H, W]); each metric is computed per slice, then averaged over the
  slices where it is defined.
* ``volume``: each patient's slices are put back into the source geometry
  (:func:`reassemble`, the inverse of the data stage's slicing) to give the whole predicted
  volume, scored against the source label volume (``volume_truth``; the store's labels
  reassembled when the source is not readable). The confusion matrix and every surface
  distance (with the source voxel spacing) cover the whole volume, every voxel of every
  plane: comparable with full-volume challenge numbers.
* ``split``: one pooled confusion matrix over every slice (the headline ``summary``).

Reported per level: ``n`` (units: slices, volumes; for ``split`` the slices pooled),
class-averaged metrics (``dice``, ``dice_fg``, ``mean_iou``, ``mean_accuracy``, ``fw_iou``,
``pixel_accuracy``; ``sensitivity``/``specificity`` are means over the foreground classes),
``per_class`` lists, and ``valid_counts``: how many values each reported mean averaged
(units for ``slice``/``volume``, classes for ``split``). Undefined values (NaN, see
:mod:`segscale.evaluate.metrics`) never enter a mean. Distances (volume level, foreground classes
only) are ``inf`` when exactly one mask of a class is empty; means use finite values only
and ``infinite_counts`` counts the rest, so a missed object is visible but does not turn
the average into ``inf``.

BRATS regions (whole tumour 1|2|3, tumour core 2|3, enhancing tumour 3) are scored as
binary problems when ``n_classes == 4`` (the 4-class BRATS label map); their ``dice`` is the
Dice of the region (the foreground of the binary problem).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields

import numpy as np
from tqdm import tqdm

from segscale.data.store import SliceStore
from segscale.evaluate import metrics as M
from segscale.evaluate.surface import SurfaceDistances, bounding_box, surface_metrics
from segscale.evaluate.volumes import (
    patient_layout,
    reassemble,
    require_whole_volumes,
    store_axis,
)

log = logging.getLogger(__name__)

BRATS_REGIONS: dict[str, tuple[int, ...]] = {
    "whole_tumour": (1, 2, 3),
    "tumour_core": (2, 3),
    "enhancing_tumour": (3,),
}
OVERLAP = ("dice", "dice_fg", "pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou",
           "sensitivity", "specificity")
PER_CLASS = ("dice", "iou", "sensitivity", "specificity")
DISTANCES = tuple(f.name for f in fields(SurfaceDistances))
REGION_METRICS = ("dice", "iou", "sensitivity", "specificity")
PIXELS_PER_CHUNK = 1 << 22  # bounds the int64 index array of one bincount to 32 MiB

VolumeSink = Callable[[str, np.ndarray], None]


def regions_for(n_classes: int) -> dict[str, tuple[int, ...]]:
    """The binary regions to score: BRATS's three for 4 classes, none otherwise."""
    return dict(BRATS_REGIONS) if n_classes == 4 else {}


# ---------------------------------------------------------------- overlap tables


def region_confusion(conf: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Collapse (..., K, K) class counts to the (..., 2, 2) counts of "in ``labels``" vs not.

    Raises:
        ValueError: a label outside ``[0, K)``.
    """
    conf = np.asarray(conf)
    k = conf.shape[-1]
    if any(not 0 <= lab < k for lab in labels):
        raise ValueError(f"region labels {list(labels)} outside [0, {k})")
    member = np.zeros((k, 2), dtype=conf.dtype)
    member[:, 0] = 1
    member[list(labels), 0] = 0
    member[list(labels), 1] = 1
    return np.einsum("ia,...ij,jb->...ab", member, conf, member)


def overlap_table(confs: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every overlap metric of each matrix in a (N, K, K) stack.

    Returns:
        ``(scalars, per_class)``: ``scalars[name]`` is a (N,) array for each name in
        :data:`OVERLAP` and ``scalars[name + "_n_valid"]`` the number of classes it
        averaged; ``per_class[name]`` is (N, K) for each of :data:`PER_CLASS`.
        ``sensitivity``/``specificity`` average the foreground classes (all when K == 1).
    """
    per_class = {"dice": M.dice(confs), "iou": M.iou(confs),
                 "sensitivity": M.sensitivity(confs), "specificity": M.specificity(confs)}
    fg = slice(1, None) if confs.shape[-1] > 1 else slice(None)
    means = {"dice": M.nan_mean(per_class["dice"]), "dice_fg": M.dice_fg(confs),
             "mean_accuracy": M.nan_mean(per_class["sensitivity"]),
             "mean_iou": M.nan_mean(per_class["iou"]), "fw_iou": M.fw_iou(confs),
             "sensitivity": M.nan_mean(per_class["sensitivity"][..., fg]),
             "specificity": M.nan_mean(per_class["specificity"][..., fg])}
    pa = np.asarray(M.pixel_accuracy(confs), dtype=np.float64).reshape(len(confs))
    scalars = {"pixel_accuracy": pa, "pixel_accuracy_n_valid": (~np.isnan(pa)).astype(int)}
    for name, mean in means.items():
        scalars[name] = np.asarray(mean.value, dtype=np.float64).reshape(len(confs))
        scalars[f"{name}_n_valid"] = np.asarray(mean.n_valid).reshape(len(confs))
    return scalars, per_class


def _finite_mean(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    mean = M.nan_mean(np.where(ok, values, np.nan), axis=axis)
    return np.asarray(mean.value), np.asarray(mean.n_valid)


def _jsonable(x: np.ndarray) -> float | int | list:
    return np.asarray(x).tolist()


def summarise_units(confs: np.ndarray) -> dict:
    """Level entry for units scored one by one (slices or volumes): means over units."""
    scalars, per_class = overlap_table(confs)
    out: dict = {"n": len(confs)}
    counts: dict = {}
    for name in OVERLAP:
        value, n = _finite_mean(scalars[name])
        out[name], counts[name] = float(value), int(n)
    out["per_class"], counts["per_class"] = {}, {}
    for name, table in per_class.items():
        value, n = _finite_mean(table)
        out["per_class"][name], counts["per_class"][name] = _jsonable(value), _jsonable(n)
    out["valid_counts"] = counts
    return out


def summarise_pooled(conf: np.ndarray, n_units: int) -> dict:
    """Level entry for one pooled matrix: the metrics themselves, class counts as valid."""
    scalars, per_class = overlap_table(np.asarray(conf)[None])
    out: dict = {"n": int(n_units), "pixels": int(np.asarray(conf).sum())}
    counts: dict = {}
    for name in OVERLAP:
        out[name], counts[name] = float(scalars[name][0]), int(scalars[f"{name}_n_valid"][0])
    out["per_class"] = {name: _jsonable(t[0]) for name, t in per_class.items()}
    counts["per_class"] = {name: _jsonable((~np.isnan(t[0])).astype(int))
                           for name, t in per_class.items()}
    out["valid_counts"] = counts
    return out


def _binary_units(confs2: np.ndarray) -> dict[str, np.ndarray]:
    """(N,) region Dice, IoU, sensitivity, specificity from (N, 2, 2) region counts."""
    return {"dice": M.dice(confs2)[:, 1], "iou": M.iou(confs2)[:, 1],
            "sensitivity": M.sensitivity(confs2)[:, 1],
            "specificity": M.specificity(confs2)[:, 1]}


def summarise_region_units(confs2: np.ndarray) -> dict:
    """Region entry over units (slices or volumes): means of the defined values."""
    values = _binary_units(confs2)
    out: dict = {"n": len(confs2)}
    counts = {}
    for name, vals in values.items():
        value, n = _finite_mean(vals)
        out[name], counts[name] = float(value), int(n)
    out["valid_counts"] = counts
    return out


def summarise_region_pooled(conf2: np.ndarray, n_units: int) -> dict:
    """Region entry for the pooled split matrix."""
    values = _binary_units(np.asarray(conf2)[None])
    out: dict = {"n": int(n_units)}
    out.update({name: float(v[0]) for name, v in values.items()})
    out["valid_counts"] = {name: int(~np.isnan(v[0])) for name, v in values.items()}
    return out


def summarise_distances(table: np.ndarray) -> dict:
    """Distance means from a (V, C, D) table of V volumes, C masks, D :data:`DISTANCES`.

    Per metric: mean over every finite (volume, mask) value; ``valid_counts`` the number of
    finite values, ``infinite_counts`` the number of ``inf`` ones (exactly one mask empty);
    ``per_class`` the per-mask means over volumes (with their own counts).
    """
    out: dict = {}
    counts: dict = {}
    infinite: dict = {}
    per, per_counts = {}, {}
    flat = table.reshape(-1, table.shape[-1]) if table.size else np.empty((0, len(DISTANCES)))
    for d, name in enumerate(DISTANCES):
        value, n = _finite_mean(flat[:, d])
        out[name], counts[name] = float(value), int(n)
        infinite[name] = int(np.isinf(flat[:, d]).sum())
        if table.size:
            pv, pn = _finite_mean(table[:, :, d])
            per[name], per_counts[name] = _jsonable(pv), _jsonable(pn)
    return {"values": out, "valid_counts": counts, "infinite_counts": infinite,
            "per_class": per, "per_class_counts": per_counts}


# ---------------------------------------------------------------- the store


def slice_confusions(truth: np.ndarray, pred: np.ndarray, n_classes: int,
                     progress: bool = False) -> np.ndarray:
    """(N, K, K) per-slice confusion matrices, in chunks that bound memory.

    Raises:
        ValueError: as :func:`segscale.evaluate.metrics.confusion_matrices` (shape, label range).
    """
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    n = len(truth)
    pixels = int(np.prod(truth.shape[1:])) if truth.ndim > 1 else 1
    step = max(1, PIXELS_PER_CHUNK // max(1, pixels))
    out = np.zeros((n, n_classes, n_classes), dtype=np.int64)
    starts = range(0, n, step)
    for start in tqdm(starts, desc="slices", unit="chunk", disable=not progress):
        stop = min(n, start + step)
        out[start:stop] = M.confusion_matrices(np.asarray(truth[start:stop]),
                                               np.asarray(pred[start:stop]), n_classes)
    return out


def evaluate_store(store: SliceStore, pred: np.ndarray, volume_sink: VolumeSink | None = None,
                   progress: bool = False,
                   volume_truth: Callable[[str], np.ndarray] | None = None) -> dict:
    """Score ``pred`` (one label map per store row) at every level, plus BRATS regions.

    Args:
        store: the test store (truth labels, index, manifest with ``volumes``).
        pred: (N, H, W) integer predictions aligned with the store rows.
        volume_sink: called as ``sink(patient, volume)`` with each reassembled prediction
            (e.g. to write it as NIfTI) so that no more than one volume is held at a time.
        progress: show tqdm bars.
        volume_truth: ``volume_truth(patient)`` gives the source label volume (classes after
            the label map) to score reassembled predictions against; without it the truth
            is reassembled from the store (every plane), which is exact only when slices
            were not downsampled (nearest-neighbour down- and up-sampling loses thin
            structures).

    Returns:
        ``{"summary", "levels", "regions"}`` as ``metrics.json`` holds them.

    Raises:
        ValueError: shape mismatch between ``pred`` and the store labels, labels outside
            ``[0, n_classes)``, an incomplete manifest, or a store that lacks planes of a
            volume (built before whole-volume test stores).
    """
    labels = store.labels
    if pred.shape != labels.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match the store's labels "
                         f"{labels.shape}")
    k = store.n_classes
    regions = regions_for(k)
    axis = store_axis(store)
    layout = patient_layout(store)
    require_whole_volumes(store, layout, axis)

    confs = slice_confusions(labels, pred, k, progress)
    pooled = confs.sum(axis=0)
    fg = list(range(1, k)) if k > 1 else [0]
    masks = [(f"class{c}", (c,)) for c in fg] + list(regions.items())
    vol_confs = np.zeros((len(layout), k, k), dtype=np.int64)
    dist = np.full((len(layout), len(masks), len(DISTANCES)), np.nan)
    for v, pat in enumerate(tqdm(layout, desc="volumes", unit="vol", disable=not progress)):
        if volume_truth is None:
            truth_vol = reassemble(np.asarray(labels[pat.rows]), pat.slices, axis, pat.shape)
        else:
            truth_vol = np.asarray(volume_truth(pat.patient))
            if truth_vol.shape != tuple(pat.shape):
                raise ValueError(f"patient {pat.patient}: source label shape "
                                 f"{truth_vol.shape} differs from the manifest's {pat.shape}")
        pred_vol = reassemble(np.asarray(pred[pat.rows]), pat.slices, axis, pat.shape)
        vol_confs[v] = M.confusion_matrix(truth_vol, pred_vol, k)  # every plane
        # every scored mask excludes background (k > 1), so its surfaces lie in this box
        box = bounding_box((truth_vol > 0) | (pred_vol > 0)) if k > 1 else (slice(None),) * 3
        t_box, p_box = truth_vol[box], pred_vol[box]
        for m, (_, labs) in enumerate(masks):
            lut = np.zeros(k, dtype=bool)  # labels were checked to lie in [0, k)
            lut[list(labs)] = True
            sd = surface_metrics(lut[t_box], lut[p_box], pat.spacing)
            dist[v, m] = [getattr(sd, name) for name in DISTANCES]
        if volume_sink is not None:
            volume_sink(pat.patient, pred_vol)

    n_fg = len(fg)
    levels = {"slice": summarise_units(confs), "volume": summarise_units(vol_confs),
              "split": summarise_pooled(pooled, len(confs))}
    levels["split"]["n_volumes"] = len(layout)
    stored = {"planes": int(len(labels)), "voxels": int(np.prod(labels.shape)),
              "volumes": len(layout), "grid": f"store {list(labels.shape[1:])}"}
    levels["slice"]["covers"] = dict(stored)
    levels["split"]["covers"] = dict(stored)
    levels["volume"]["covers"] = {
        "planes": sum(int(pat.shape[axis]) for pat in layout),
        "voxels": sum(int(np.prod(pat.shape)) for pat in layout),
        "volumes": len(layout), "grid": "source"}
    class_dist = summarise_distances(dist[:, :n_fg])
    levels["volume"].update(class_dist["values"])
    levels["volume"]["valid_counts"].update(class_dist["valid_counts"])
    levels["volume"]["infinite_counts"] = class_dist["infinite_counts"]
    if k > 1:  # background has no distance: NaN (count 0) keeps the lists one per class
        levels["volume"]["per_class"].update(
            {name: [np.nan, *vals] for name, vals in class_dist["per_class"].items()})
        levels["volume"]["valid_counts"]["per_class"].update(
            {name: [0, *vals] for name, vals in class_dist["per_class_counts"].items()})

    region_out = {}
    for r, (name, labs) in enumerate(regions.items()):
        entry = {"labels": list(labs),
                 "slice": summarise_region_units(region_confusion(confs, labs)),
                 "volume": summarise_region_units(region_confusion(vol_confs, labs)),
                 "split": summarise_region_pooled(region_confusion(pooled, labs), len(confs))}
        rd = summarise_distances(dist[:, n_fg + r:n_fg + r + 1])
        entry["volume"].update(rd["values"])
        entry["volume"]["valid_counts"].update(rd["valid_counts"])
        entry["volume"]["infinite_counts"] = rd["infinite_counts"]
        region_out[name] = entry

    split = levels["split"]
    summary = {name: split[name] for name in ("dice", "pixel_accuracy", "mean_accuracy",
                                              "mean_iou", "fw_iou", "sensitivity",
                                              "specificity")}
    summary["avg_hausdorff"] = class_dist["values"]["avg_hausdorff"]
    summary["hd95"] = class_dist["values"]["hd95"]
    summary["dice_fg"] = split["dice_fg"]
    summary["assd"] = class_dist["values"]["assd"]
    return {"summary": summary, "levels": levels, "regions": region_out,
            "test_planes": f"all planes of every test volume along axis {axis}",
            "volume_truth": "store" if volume_truth is None else "source"}


def class_names_of(manifest: Mapping, n_classes: int) -> list[str]:
    """The manifest's class names, or ``class0..`` when absent or of the wrong length."""
    names = list(manifest.get("class_names") or [])
    return names if len(names) == n_classes else [f"class{i}" for i in range(n_classes)]
