"""segscale.evaluate.metrics / segscale.evaluate.surface against medpy on a batch of 512x512 masks.

Both sides run in the same process on the same masks, interleaved repeat by repeat (the
order alternating), so machine noise hits both alike; the table gives median times and the
median of the per-repeat ratios, after checking that both sides agree. Then the full
metric set (4 classes) against its floor, one ``np.bincount`` of ``truth * 4 + pred`` over the
same masks; printed last as ``metrics_vs_floor: <full / floor>`` (goal <= 1.5).

    .venv/bin/python benchmarks/bench_metrics.py [--masks 64] [--size 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

import numpy as np
from medpy.metric import binary as medpy

from segscale.evaluate import metrics as M
from segscale.evaluate.scoring import overlap_table
from segscale.evaluate.surface import surface_metrics

log = logging.getLogger(__name__)


def ellipse(shape: tuple[int, int], centre, radii, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    y, x = yy - centre[0], xx - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    return ((c * x + s * y) / radii[1]) ** 2 + ((-s * x + c * y) / radii[0]) ** 2 <= 1


def make_masks(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ellipses of 10-25% of the side as truth; prediction shifted, rescaled and rotated."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, size, size), bool)
    pred = np.zeros_like(truth)
    for i in range(n):
        centre = rng.uniform(0.3, 0.7, 2) * size
        radii = rng.uniform(0.05, 0.125, 2) * size
        angle = rng.uniform(0, np.pi)
        truth[i] = ellipse((size, size), centre, radii, angle)
        pred[i] = ellipse((size, size), centre + rng.normal(0, 3, 2),
                          radii * rng.uniform(0.85, 1.15, 2), angle + rng.normal(0, 0.1))
    return truth, pred


def ours_overlap(truth, pred):
    conf = M.confusion_matrices(truth, pred, 2)
    return M.dice(conf)[:, 1], M.iou(conf)[:, 1]


def medpy_overlap(truth, pred):
    return (np.array([medpy.dc(p, t) for t, p in zip(truth, pred)]),
            np.array([medpy.jc(p, t) for t, p in zip(truth, pred)]))


def ours_surface(truth, pred, spacing):
    sds = [surface_metrics(t, p, spacing) for t, p in zip(truth, pred)]
    return np.array([s.hd95 for s in sds]), np.array([s.assd for s in sds])


def medpy_surface(truth, pred, spacing):
    return (np.array([medpy.hd95(p, t, spacing) for t, p in zip(truth, pred)]),
            np.array([medpy.assd(p, t, spacing) for t, p in zip(truth, pred)]))


def ours_multiclass(truth, pred):
    conf = M.confusion_matrices(truth, pred, 4)
    return M.dice(conf)[:, 1:], M.iou(conf)[:, 1:]


def medpy_multiclass(truth, pred):
    dice = [[medpy.dc(p == c, t == c) for c in (1, 2, 3)] for t, p in zip(truth, pred)]
    iou = [[medpy.jc(p == c, t == c) for c in (1, 2, 3)] for t, p in zip(truth, pred)]
    return np.array(dice), np.array(iou)


def full_metric_set(truth, pred, k: int = 4):
    """Every SegEval metric, per slice and pooled: one confusion matrix per slice, then
    per-class Dice, IoU, sensitivity, specificity and the class means (Dice, foreground Dice,
    mean accuracy, mean IoU, fwIoU, pixel accuracy) of every slice and of the pooled matrix."""
    confs = M.confusion_matrices(truth, pred, k)
    pooled = confs.sum(axis=0)
    return confs, overlap_table(confs), overlap_table(pooled[None])


def bincount_floor(truth, pred, k: int = 4):
    """The floor: one ``np.bincount`` of the codes ``truth * K + pred`` over the same
    arrays (the pooled confusion matrix and nothing else)."""
    return np.bincount((truth * k + pred).ravel(), minlength=k * k)


def against_floor(truth, pred, repeats: int, k: int = 4) -> dict:
    """Interleaved timings of :func:`full_metric_set` and :func:`bincount_floor`, and of a
    bare ``np.bincount`` of precomputed codes; checks the pooled matrices agree."""
    codes = (truth * k + pred).ravel()
    fns = {"full": lambda: full_metric_set(truth, pred, k),
           "floor": lambda: bincount_floor(truth, pred, k),
           "bare": lambda: np.bincount(codes, minlength=k * k)}
    times: dict[str, list[float]] = {name: [] for name in fns}
    out = {}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            out[name] = fns[name]()
            times[name].append(time.perf_counter() - t0)
    np.testing.assert_array_equal(out["full"][0].sum(axis=0), out["floor"].reshape(k, k))
    full = np.array(times["full"])
    return {"full": float(np.median(full)), "floor": float(np.median(times["floor"])),
            "bare": float(np.median(times["bare"])),
            "ratio": float(np.median(full / np.array(times["floor"]))),
            "ratio_bare": float(np.median(full / np.array(times["bare"])))}


def compare(name: str, ours: Callable, theirs: Callable, repeats: int) -> dict:
    """Interleaved timings; raises if the two sides disagree."""
    t_ours, t_theirs = [], []
    for r in range(repeats):
        pair = [(ours, t_ours), (theirs, t_theirs)]
        for fn, sink in (pair if r % 2 == 0 else pair[::-1]):
            t0 = time.perf_counter()
            result = fn()
            sink.append(time.perf_counter() - t0)
            if fn is ours:
                got = result
            else:
                ref = result
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)
    ratios = np.array(t_theirs) / np.array(t_ours)
    return {"name": name, "ours": np.median(t_ours), "medpy": np.median(t_theirs),
            "ratio": float(np.median(ratios))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    truth, pred = make_masks(args.masks, args.size)
    spacing = (0.7, 1.3)
    rng = np.random.default_rng(1)
    t4 = rng.integers(0, 4, truth.shape, dtype=np.uint8) * truth
    p4 = np.where(rng.random(truth.shape) < 0.9, t4, rng.integers(0, 4, truth.shape)) * pred
    p4 = p4.astype(np.uint8)
    rows = [
        compare("Dice + IoU, binary", lambda: ours_overlap(truth, pred),
                lambda: medpy_overlap(truth, pred), args.repeats),
        compare("Dice + IoU, 3 fg classes", lambda: ours_multiclass(t4, p4),
                lambda: medpy_multiclass(t4, p4), args.repeats),
        compare("hd95 + ASSD, spacing 0.7x1.3", lambda: ours_surface(truth, pred, spacing),
                lambda: medpy_surface(truth, pred, spacing), args.repeats),
    ]
    floor = against_floor(t4, p4, max(args.repeats, 5))
    log.info("%d masks of %dx%d, %d interleaved repeats, median times per batch",
             args.masks, args.size, args.size, args.repeats)
    log.info("| %-28s | %11s | %11s | %14s |", "metric", "segscale", "medpy", "medpy/segscale")
    log.info("|%s|%s|%s|%s|", "-" * 30, "-" * 13, "-" * 13, "-" * 16)
    for row in rows:
        log.info("| %-28s | %8.1f ms | %8.1f ms | %13.1fx |", row["name"], 1000 * row["ours"],
                 1000 * row["medpy"], row["ratio"])
    log.info("")
    log.info("full metric set, 4 classes (per-slice confusion matrices; per-class Dice, IoU, "
             "sensitivity, specificity and every class mean, per slice and pooled):")
    log.info("  segscale full set:                      %8.1f ms", 1000 * floor["full"])
    log.info("  floor, np.bincount(truth*4 + pred):     %8.1f ms   ratio %.2f (goal <= 1.5)",
             1000 * floor["floor"], floor["ratio"])
    log.info("  np.bincount of precomputed codes alone: %8.1f ms   ratio %.2f",
             1000 * floor["bare"], floor["ratio_bare"])
    log.info("metrics_vs_floor: %.2f", floor["ratio"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
