"""Overlap metrics of a segmentation from its confusion matrix ``conf[true, pred]``.

Everything here is a pure, vectorised function of pixel counts, so the same code scores one
slice, one volume or a whole pooled test split, and a stack of matrices ``(..., K, K)`` at
once (one per slice) without a Python loop.

Formulas (SPEC "Evaluation", thesis 3.3.2.3), with ``n_ij`` the pixels of class ``i``
predicted as ``j``, ``t_i = sum_j n_ij`` (truth count) and ``p_i = sum_j n_ji`` (predicted
count)::

    dice_i  = 2 n_ii / (t_i + p_i)               (= 2 n_ii / (2 n_ii + FN_i + FP_i))
    iou_i   = n_ii / (t_i + p_i - n_ii)
    acc_i   = n_ii / t_i                         (class accuracy = sensitivity = TPR)
    spec_i  = TN_i / (TN_i + FP_i)               (TNR, TN_i = total - t_i - p_i + n_ii)
    PA      = sum_i n_ii / sum_i t_i
    MA      = mean_i acc_i,  mean IoU = mean_i iou_i,  Dice = mean_i dice_i
    fwIoU   = sum_i t_i iou_i / sum_k t_k

Conventions, the same everywhere:

* A per-class value whose denominator is 0 is **NaN** ("undefined"), never 0 or 1: Dice and
  IoU when the class is absent from both truth and prediction; accuracy/sensitivity when it
  is absent from the truth (whatever was predicted); specificity when every pixel is that
  class in the truth (no negatives).
* Class means (``dice``, ``mean_iou``, ``mean_accuracy``) follow the thesis: over **all**
  classes, background included, but only over the valid (non-NaN) ones; they come as a
  :class:`Mean` carrying ``n_valid``, the number of classes averaged. ``dice_fg`` is the
  usual foreground-only Dice (classes 1..K-1), the number most papers report.
* A mean with no valid value is NaN with ``n_valid == 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Mean",
    "class_counts",
    "confusion_matrices",
    "confusion_matrix",
    "dice",
    "dice_fg",
    "fw_iou",
    "iou",
    "mean_accuracy",
    "mean_dice",
    "mean_iou",
    "nan_mean",
    "pixel_accuracy",
    "sensitivity",
    "specificity",
]


@dataclass(frozen=True)
class Mean:
    """A mean over the valid (non-NaN) values only, and how many there were.

    ``value`` and ``n_valid`` are a Python float/int for one confusion matrix, arrays of the
    batch shape for a stack of them. ``value`` is NaN exactly where ``n_valid == 0``.
    """

    value: float | np.ndarray
    n_valid: int | np.ndarray

    def as_dict(self) -> dict:
        """JSON-able ``{"value", "n_valid"}``."""
        return {"value": np.asarray(self.value).tolist(),
                "n_valid": np.asarray(self.n_valid).tolist()}


def nan_mean(values: np.ndarray, axis: int = -1,
             weights: np.ndarray | None = None) -> Mean:
    """Mean of ``values`` along ``axis`` ignoring NaN, without numpy's all-NaN warning.

    Args:
        values: any float array.
        axis: axis to reduce.
        weights: optional non-negative weights broadcastable to ``values``; a weight only
            counts where the value is valid.

    Returns:
        :class:`Mean`; NaN and ``n_valid == 0`` where a lane has no valid value.
    """
    values = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    w = valid.astype(np.float64) if weights is None else np.where(valid, weights, 0.0)
    total = np.sum(np.where(valid, values, 0.0) * w, axis=axis)
    count = np.sum(valid, axis=axis)
    norm = np.sum(w, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(norm > 0, total / np.where(norm > 0, norm, 1.0), np.nan)
    return Mean(_scalar(value), _scalar(count))


def _scalar(x: np.ndarray) -> float | int | np.ndarray:
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (and no warning)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _check(conf: np.ndarray) -> np.ndarray:
    """``conf`` as float64 after validation (see :func:`class_counts` for the rules)."""
    conf = np.asarray(conf)
    if conf.ndim < 2 or conf.shape[-1] != conf.shape[-2] or conf.shape[-1] == 0:
        raise ValueError(f"confusion matrix must be square (..., K, K) with K >= 1, "
                         f"got shape {conf.shape}")
    if not (np.issubdtype(conf.dtype, np.number) or conf.dtype == np.bool_):
        raise ValueError(f"confusion matrix must be numeric, got dtype {conf.dtype}")
    conf = conf.astype(np.float64)
    if not np.all(np.isfinite(conf)):
        raise ValueError("confusion matrix has NaN or infinite counts")
    if np.any(conf < 0):
        raise ValueError("confusion matrix has negative counts")
    return conf


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixel counts ``conf[t, p]`` of truth class ``t`` predicted as ``p``.

    A ``bincount`` of the codes ``t * K + p`` (uint8 for K <= 16, in cache-sized chunks);
    for K == 2, three ``count_nonzero`` passes instead, which is several times faster.

    Args:
        truth: integer or bool label map, any shape.
        pred: same shape as ``truth``.
        n_classes: K; labels must lie in ``[0, K)``.

    Returns:
        int64 array (K, K); all zeros for empty inputs.

    Raises:
        ValueError: shapes differ, ``n_classes < 1``, a non-integer dtype, or a label outside
            ``[0, K)`` (naming the offending value).
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    _check_labels(truth, pred, n_classes)
    return _confusion(truth.reshape(-1), pred.reshape(-1), n_classes)


def confusion_matrices(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """One confusion matrix per item of the first axis (e.g. per slice).

    Args:
        truth: (N, ...) integer label maps.
        pred: same shape.
        n_classes: K.

    Returns:
        int64 array (N, K, K); ``(0, K, K)`` for N = 0.

    Raises:
        ValueError: as :func:`confusion_matrix`, or inputs with no leading axis.
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.ndim < 1:
        raise ValueError("confusion_matrices needs arrays with a leading item axis")
    _check_labels(truth, pred, n_classes)
    n = truth.shape[0]
    out = np.zeros((n, n_classes, n_classes), dtype=np.int64)
    if n == 0:
        return out
    t2, p2 = truth.reshape(n, -1), pred.reshape(n, -1)
    for i in range(n):  # per item: small arrays stay in cache; the loop costs ~µs per item
        out[i] = _confusion(t2[i], p2[i], n_classes)
    return out


_CHUNK = 1 << 15  # codes per bincount: the intp copy bincount makes stays in cache


def _confusion(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts of two validated 1D label arrays."""
    if truth.dtype == np.bool_:
        truth = truth.view(np.uint8)
    if pred.dtype == np.bool_:
        pred = pred.view(np.uint8)
    if k == 2:  # labels are 0/1: counts of 1s and of joint 1s give the whole matrix
        n_t, n_p = np.count_nonzero(truth), np.count_nonzero(pred)
        tp = np.count_nonzero(truth & pred)
        return np.array([[truth.size - n_t - n_p + tp, n_p - tp], [n_t - tp, tp]],
                        dtype=np.int64)
    kk = k * k
    code_type = np.uint8 if kk <= 256 else np.uint16 if kk <= 65536 else np.intp
    out = np.zeros(kk, dtype=np.int64)
    for start in range(0, truth.size, _CHUNK):
        code = truth[start:start + _CHUNK].astype(code_type)
        code *= code_type(k)
        code += pred[start:start + _CHUNK].astype(code_type, copy=False)
        out += np.bincount(code, minlength=kk)
    return out.reshape(k, k)


def _check_labels(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> None:
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes}")
    for name, arr in (("truth", truth), ("prediction", pred)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise ValueError(f"{name} labels must be integers, got dtype {arr.dtype}")
        if not arr.size or (arr.dtype == np.bool_ and n_classes >= 2):
            continue
        hi = int(arr.max())
        lo = 0 if arr.dtype.kind in "ub" else int(arr.min())  # unsigned: no min pass
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name} labels span [{lo}, {hi}], outside [0, {n_classes})")


def class_counts(conf: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-class ``(tp, fn, fp, tn)`` as float64 arrays of shape (..., K).

    Binary metrics of class ``i`` treat ``i`` as positive and every other class as negative.

    Raises:
        ValueError: ``conf`` not (..., K, K) with K >= 1, not numeric, negative, NaN or inf.
    """
    conf = _check(conf)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    t = conf.sum(axis=-1)
    p = conf.sum(axis=-2)
    total = conf.sum(axis=(-2, -1))[..., None]
    return tp, t - tp, p - tp, total - t - p + tp


def dice(conf: np.ndarray) -> np.ndarray:
    """Per-class Dice ``2 n_ii / (t_i + p_i)``, shape (..., K).

    A class absent from truth and prediction is NaN, not 1.0; a class present in only one
    of them is 0.0.

    Raises:
        ValueError: if ``conf`` is not square (..., K, K), or has negative/NaN/inf counts.
    """
    tp, fn, fp, _ = class_counts(conf)
    return _ratio(2 * tp, 2 * tp + fn + fp)


def iou(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU (Jaccard) ``n_ii / (t_i + p_i - n_ii)``, shape (..., K).

    NaN for a class absent from truth and prediction (empty union); 0.0 when present in
    only one of them.

    Raises:
        ValueError: as :func:`dice`.
    """
    tp, fn, fp, _ = class_counts(conf)
    return _ratio(tp, tp + fn + fp)


def sensitivity(conf: np.ndarray) -> np.ndarray:
    """Per-class sensitivity (TPR, recall, the thesis's class accuracy) ``n_ii / t_i``.

    NaN for a class absent from the truth, even if it was predicted: there is nothing to
    detect, and the false positives show in :func:`specificity`, Dice and IoU.

    Raises:
        ValueError: as :func:`dice`.
    """
    tp, fn, _, _ = class_counts(conf)
    return _ratio(tp, tp + fn)


def specificity(conf: np.ndarray) -> np.ndarray:
    """Per-class specificity (TNR) ``TN_i / (TN_i + FP_i)``, shape (..., K).

    NaN for a class that covers every truth pixel (no negatives), e.g. the background of
    an all-background image; also NaN for every class of an empty matrix.

    Raises:
        ValueError: as :func:`dice`.
    """
    _, _, fp, tn = class_counts(conf)
    return _ratio(tn, tn + fp)


def pixel_accuracy(conf: np.ndarray) -> float | np.ndarray:
    """Pixel accuracy ``sum_i n_ii / sum_i t_i``; NaN for an empty matrix (no pixels).

    Raises:
        ValueError: as :func:`dice`.
    """
    conf = _check(conf)
    return _scalar(_ratio(np.trace(conf, axis1=-2, axis2=-1), conf.sum(axis=(-2, -1))))


def mean_dice(conf: np.ndarray) -> Mean:
    """Dice averaged over all valid classes, background included (the thesis's Dice).

    An all-background image predicted all background scores 1.0 over ``n_valid == 1``
    class; any valid class counts, so a missed small class pulls the mean down.

    Raises:
        ValueError: as :func:`dice`.
    """
    return nan_mean(dice(conf))


def dice_fg(conf: np.ndarray) -> Mean:
    """Foreground-only Dice: mean per-class Dice over classes 1..K-1 (background excluded).

    For a binary problem this is the Dice of class 1. NaN (``n_valid == 0``) when no
    foreground class is in truth or prediction, and always for K == 1.

    Raises:
        ValueError: as :func:`dice`.
    """
    return nan_mean(dice(conf)[..., 1:])


def mean_iou(conf: np.ndarray) -> Mean:
    """IoU averaged over all valid classes, background included (thesis mean IoU).

    Raises:
        ValueError: as :func:`dice`.
    """
    return nan_mean(iou(conf))


def mean_accuracy(conf: np.ndarray) -> Mean:
    """Class accuracy ``n_ii / t_i`` averaged over classes present in the truth (thesis MA).

    Classes absent from the truth are left out (their ``t_i`` is 0), so ``n_valid`` is the
    number of classes present in the truth.

    Raises:
        ValueError: as :func:`dice`.
    """
    return nan_mean(sensitivity(conf))


def fw_iou(conf: np.ndarray) -> Mean:
    """Frequency-weighted IoU ``sum_i t_i iou_i / sum_k t_k``.

    Classes absent from the truth weigh 0 (even if predicted), so they never make it NaN;
    ``n_valid`` counts the classes present in the truth. NaN for an empty matrix.

    Raises:
        ValueError: as :func:`dice`.
    """
    t = _check(conf).sum(axis=-1)
    return nan_mean(np.where(t > 0, iou(conf), np.nan), weights=t)
