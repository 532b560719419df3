"""Input sizes of the built-in architectures, without TensorFlow.

FCN-8s pools 5 times and U-Net ``depth`` times, so inside the network H and W must be
multiples of ``2**poolings`` (32 for FCN). Any other size is zero-padded symmetrically to the
next multiple inside the model (``input_pad``, a ``ZeroPadding2D``) and the per-pixel output
cropped back to H x W (``output_crop``, a ``Cropping2D``), so the output is always
(H, W, n_classes) and the loss sees only real pixels. A side smaller than one cell of the
coarsest level (``2**poolings`` pixels) is refused: the network would see mostly padding.

The builders use these functions, and the workflow calls them (through
:func:`segscale.models.input_requirements`) before any job starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FCN_POOLINGS = 5
UNET_DEFAULT_DEPTH = 4

# Keyword options of the built-in builders (checked against their signatures by a test in
# the training environment), so unknown options are refused without importing TensorFlow.
BUILTIN_OPTIONS = {
    "unet": frozenset({"depth", "base_filters", "batch_norm", "dropout", "name"}),
    "fcn": frozenset({"base_filters", "fc_filters", "dropout", "vgg16_weights", "name"}),
}

Padding = tuple[tuple[int, int], tuple[int, int]]


def pad_to_multiple(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) zeros that bring ``size`` to the next multiple of ``multiple``; an odd
    total puts the extra pixel after."""
    total = -int(size) % int(multiple)
    return total // 2, total - total // 2


def padding(h: int, w: int, multiple: int, arch: str = "model") -> Padding:
    """``((top, bottom), (left, right))`` bringing H x W to multiples of ``multiple``.

    Raises:
        ValueError: a side smaller than ``multiple`` (one cell of the coarsest level).
    """
    if min(h, w) < multiple:
        raise ValueError(f"{arch}: input {h}x{w} is smaller than {multiple} pixels on a side "
                         f"(one cell after its {multiple.bit_length() - 1} poolings)")
    return pad_to_multiple(h, multiple), pad_to_multiple(w, multiple)


def fcn_padding(h: int, w: int) -> Padding:
    """FCN-8s: ``((top, bottom), (left, right))`` to the next multiple of 32 (240 x 240 ->
    256 x 256 is ``((8, 8), (8, 8))``; 33 -> 64 is ``(15, 16)``).

    Raises:
        ValueError: H or W below 32.
    """
    return padding(h, w, 2**FCN_POOLINGS, "fcn")


def unet_padding(h: int, w: int, depth: int = UNET_DEFAULT_DEPTH) -> Padding:
    """U-Net with ``depth`` poolings: padding to the next multiple of ``2**depth``.

    Raises:
        ValueError: depth not an integer >= 1, or H or W below ``2**depth``.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"unet: depth must be an integer >= 1, got {depth!r}")
    return padding(h, w, 2**depth, "unet")


def builtin_requirements(arch: str, image_shape: tuple[int, ...],
                         options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What built-in ``arch`` does with an (H, W, C) input; see
    :func:`segscale.models.input_requirements`."""
    options = dict(options or {})
    unknown = sorted(set(options) - BUILTIN_OPTIONS[arch])
    if unknown:
        raise ValueError(f"model: unknown option(s) {unknown} for {arch}; accepted: "
                         f"{sorted(BUILTIN_OPTIONS[arch])}")
    if len(image_shape) != 3 or int(image_shape[2]) < 1:
        raise ValueError(f"{arch}: input shape must be (H, W, C) with C >= 1, "
                         f"got {tuple(image_shape)}")
    h, w = int(image_shape[0]), int(image_shape[1])
    if arch == "fcn":
        pad, poolings = fcn_padding(h, w), FCN_POOLINGS
    else:
        poolings = options.get("depth", UNET_DEFAULT_DEPTH)
        pad = unet_padding(h, w, poolings)
    (top, bottom), (left, right) = pad
    return {"arch": arch, "checked": True, "input": [h, w], "multiple": 2**poolings,
            "padded": [h + top + bottom, w + left + right],
            "pad": [[top, bottom], [left, right]], "cropped_back": pad != ((0, 0), (0, 0))}
