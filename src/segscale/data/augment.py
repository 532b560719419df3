"""Random affine augmentation (rotation, zoom, translation) applied identically to an
image and its label: linear interpolation for the image, nearest neighbour for the label,
so no label value is invented and the pair stays aligned.

By default each augmented image is drawn as thesis table 2.1 says: a rotation in
[-45, 45] degrees, a zoom in [0.8, 1.2], and a translation along ONE axis (x or y, drawn with
equal probability) by a distance in [0, 25.6 px] at 512 px, scaled with the image side
(``shift`` x side: 3.2 px at 64). ``augment.translation: both_axes`` and
``augment.shift_sign: both`` are named departures from it (``both_axes`` + ``both`` is the
pre-table-2.1 behaviour of this package: an independent shift in [-bound, bound] per axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segscale import cli
from segscale.data.params import AugmentParams


@dataclass(frozen=True)
class Affine2D:
    """One draw: rotation in degrees, isotropic zoom factor, shift in pixels (rows, cols)."""

    rotation: float = 0.0
    zoom: float = 1.0
    shift_rows: float = 0.0
    shift_cols: float = 0.0


def shift_bounds(params: AugmentParams, size: tuple[int, int]) -> tuple[float, float]:
    """Max translation in pixels along (rows = y, cols = x) at image ``size`` (height, width):
    ``shift`` times the side along that axis (0.05 x 512 = 25.6 px, 0.05 x 64 = 3.2 px)."""
    return params.shift * size[0], params.shift * size[1]


def effective_settings(params: AugmentParams, size: tuple[int, int]) -> dict:
    """The ranges the draws use at this image size, in degrees, zoom factors and pixels
    (recorded in the augmented store's manifest)."""
    bound_rows, bound_cols = shift_bounds(params, size)
    low = 0.0 if params.shift_sign == "positive" else -1.0
    return {"size": [int(size[0]), int(size[1])],
            "rotation_deg": [-float(params.rotation), float(params.rotation)],
            "zoom": [float(params.zoom[0]), float(params.zoom[1])],
            "translation": params.translation, "shift_sign": params.shift_sign,
            "shift_px_x": [low * bound_cols, bound_cols],
            "shift_px_y": [low * bound_rows, bound_rows],
            "axis_probability": ({"x": 0.5, "y": 0.5} if params.translation == "one_axis"
                                 else {"x_and_y": 1.0})}


def draw(rng: np.random.Generator, params: AugmentParams, size: tuple[int, int]) -> Affine2D:
    """Sample a transform uniformly within the configured ranges.

    Draw order: rotation, zoom, then for ``one_axis`` the axis (``rng.integers(2)``: 0 = y
    (rows), 1 = x (cols)) and the distance along it; for ``both_axes`` the row then the column
    shift (the pre-table-2.1 draw, reproduced exactly with ``shift_sign: both``). The distance
    is uniform in [0, bound] (``positive``) or [-bound, bound] (``both``), bound =
    :func:`shift_bounds`.
    """
    rotation = float(rng.uniform(-params.rotation, params.rotation))
    zoom = float(rng.uniform(*params.zoom))
    low = 0.0 if params.shift_sign == "positive" else -params.shift
    if params.translation == "both_axes":
        return Affine2D(rotation, zoom,
                        shift_rows=float(rng.uniform(low, params.shift) * size[0]),
                        shift_cols=float(rng.uniform(low, params.shift) * size[1]))
    axis = int(rng.integers(2))
    distance = float(rng.uniform(low, params.shift) * size[axis])
    if axis == 0:
        return Affine2D(rotation, zoom, shift_rows=distance, shift_cols=0.0)
    return Affine2D(rotation, zoom, shift_rows=0.0, shift_cols=distance)


def _output_to_input(t: Affine2D, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset mapping output pixel coordinates to input ones (about the centre)."""
    theta = np.deg2rad(t.rotation)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = rot / t.zoom  # inverse of "zoom then rotate" is rotate back then unzoom
    centre = (np.asarray(shape, float) - 1) / 2
    offset = centre - matrix @ (centre + np.array([t.shift_rows, t.shift_cols]))
    return matrix, offset


def apply(image: np.ndarray, label: np.ndarray, t: Affine2D) -> tuple[np.ndarray, np.ndarray]:
    """Transform a (h, w, c) image and (h, w) label with the same affine.

    Pixels brought in from outside the image are 0 (background, and zero intensity, which is
    "outside the body" after nonzero-mask normalisation).

    Returns:
        (image float32, label uint8) of the input shapes.
    """
    matrix, offset = _output_to_input(t, label.shape)
    out_img = np.stack([ndimage.affine_transform(image[..., c].astype(np.float32), matrix,
                                                 offset, order=1, mode="constant", cval=0.0)
                        for c in range(image.shape[-1])], axis=-1)
    out_lab = ndimage.affine_transform(label, matrix, offset, order=0, mode="constant", cval=0)
    return out_img, out_lab.astype(np.uint8)


def augmented_rows(n_original: int, target: int) -> np.ndarray:
    """Which original row each augmented image derives from: cycle through them in order.

    Returns an empty array when ``target <= n_original`` (augmentation off).
    """
    extra = max(0, target - n_original)
    return np.arange(extra) % max(n_original, 1)


def _augment_chunk(store_dir: str, rows: np.ndarray, first: int, params: AugmentParams):
    """Worker: augment ``rows`` of the store; draw ``i`` uses seed (params.seed, first + i)."""
    from segscale.data.store import SliceStore

    store = SliceStore.open(store_dir)
    size = store.labels.shape[1:]
    images, labels, draws = [], [], []
    for i, row in enumerate(rows):
        t = draw(np.random.default_rng([params.seed, first + i]), params, size)
        img, lab = apply(np.asarray(store.images[row], np.float32), store.labels[row], t)
        images.append(img)
        labels.append(lab)
        draws.append(t)
    return np.stack(images), np.stack(labels), draws


def build_augmented(store_dir: str, out: str, params: AugmentParams, threads: int = 1,
                    chunk: int = 256) -> dict:
    """Write ``out``: the originals of ``store_dir`` followed by augmented copies up to
    ``params.target`` images. Deterministic for a seed, whatever ``threads`` is."""
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd
    from tqdm import tqdm

    from segscale.data.store import SliceStore, SliceStoreWriter
    from segscale.provenance import describe_environment

    src = SliceStore.open(store_dir)
    n = len(src)
    origin = augmented_rows(n, params.target)
    writer = SliceStoreWriter(out, n + len(origin), src.labels.shape[1:], src.images.shape[3],
                              str(src.images.dtype))
    identity = {"rotation": 0.0, "zoom": 1.0, "shift_rows": 0.0,
                "shift_cols": 0.0, "augmented": False}
    index = [dict(row, source_row=i, **identity) for i, row in
             enumerate(src.index.to_dict("records"))]
    try:
        for start in range(0, n, chunk):
            writer.write(start, src.images[start:start + chunk], src.labels[start:start + chunk])
        pixel_counts = np.bincount(np.asarray(src.labels).ravel(), minlength=src.n_classes)
        starts = range(0, len(origin), chunk)
        with ProcessPoolExecutor(max(1, threads)) as pool:
            results = pool.map(_augment_chunk, [str(store_dir)] * len(starts),
                               [origin[s:s + chunk] for s in starts], list(starts),
                               [params] * len(starts))
            for s, (imgs, labs, draws) in tqdm(zip(starts, results), total=len(starts),
                                               desc="augment", unit="chunk"):
                writer.write(n + s, imgs, labs)
                pixel_counts += np.bincount(labs.ravel(), minlength=src.n_classes)
                for k, t in enumerate(draws):
                    row = int(origin[s + k])
                    index.append(dict(src.index.iloc[row].to_dict(), source_row=row,
                                      rotation=t.rotation, zoom=t.zoom, shift_rows=t.shift_rows,
                                      shift_cols=t.shift_cols, augmented=True))
        manifest = dict(src.manifest, split="train-augmented", count=n + len(origin),
                        n_original=n, n_augmented=len(origin), source_store=str(store_dir),
                        augment=dict(params.__dict__, zoom=list(params.zoom)),
                        augment_effective=effective_settings(params, src.labels.shape[1:]),
                        class_pixel_counts=pixel_counts.tolist(),
                        environment=describe_environment())
        writer.commit(pd.DataFrame(index), manifest)
    except BaseException:
        writer.abort()
        raise
    return manifest


def build_parser():
    parser = cli.parser("segscale.data.augment", __doc__)
    parser.add_argument("--name", required=True, help="dataset name in the config")
    parser.add_argument("--params", required=True, help="the dataset's config section as JSON")
    parser.add_argument("--store", required=True, help="the train store to augment")
    parser.add_argument("--out", required=True, help="augmented store directory to write")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m segscale.data.augment --name N --params JSON --store DIR --out DIR``."""
    import json
    import logging

    from segscale.data.params import DatasetParams
    from segscale.logs import configure

    args = build_parser().parse_args(argv)
    configure()
    log = logging.getLogger(__name__)
    try:
        params = DatasetParams.from_mapping(args.name, json.loads(args.params)).augment
        manifest = build_augmented(args.store, args.out, params, args.threads)
    except (ValueError, FileNotFoundError) as err:
        log.error("cannot augment %s: %s", args.store, err)
        return 1
    log.info("%s: %d originals + %d augmented", args.out, manifest["n_original"],
             manifest["n_augmented"])
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
