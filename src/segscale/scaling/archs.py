"""Parameter counts and FLOPs of the built-in architectures, without TensorFlow.

Each builder (``segscale.models.unet``, ``segscale.models.fcn``) is enumerated here layer by
layer as (name, kernel area, input channels, output channels, bias, output size factor,
batch norm). Summing ``k*k*c_in*c_out (+ c_out)`` gives the parameter count; Horovod
allreduces the *trainable* ones (batch norm's moving mean and variance are not
gradients). ``count_params()`` of the real Keras models must equal :func:`param_counts`
(``tests/horovod/test_scaling_tf.py``).

FLOPs count multiply-adds as 2 operations for convolutions and transposed convolutions
(``2 * k*k * c_in * c_out`` per output pixel of a convolution, per *input* pixel of a
transposed one); pooling, activations, batch norm and the softmax are left out. A training
step is about 3x the forward FLOPs (forward, and the two products of the backward pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UNET_DEFAULTS = {"depth": 4, "base_filters": 64, "batch_norm": False}
FCN_DEFAULTS = {"base_filters": 64, "fc_filters": 4096}
VGG_BLOCKS = (2, 2, 3, 3, 3)
VGG_WIDTHS = (1, 2, 4, 8, 8)
FCN_POOLINGS = 5
TRAIN_FLOPS_PER_FORWARD = 3


@dataclass(frozen=True)
class Layer:
    """A convolution-like layer. ``scale``: its FLOP-counting grid is H x W / scale**2 of
    the (padded) input; ``transposed``: FLOPs counted per input pixel."""

    name: str
    k: int
    c_in: int
    c_out: int
    bias: bool
    scale: int
    batch_norm: bool = False
    transposed: bool = False

    @property
    def weights(self) -> int:
        return self.k * self.k * self.c_in * self.c_out + (self.c_out if self.bias else 0)


def unet_layers(in_channels: int, n_classes: int, depth: int = 4, base_filters: int = 64,
                batch_norm: bool = False, **_ignored) -> list[Layer]:
    """The layers of ``build_unet`` (3x3 conv blocks, 2x2 transposed convs, 1x1 classifier)."""
    out, c = [], int(in_channels)

    def block(name, c_in, f, scale):
        for i in (1, 2):
            out.append(Layer(f"{name}_conv{i}", 3, c_in if i == 1 else f, f, not batch_norm,
                             scale, batch_norm))

    for level in range(depth):
        f = base_filters * 2**level
        block(f"down{level}", c, f, 2**level)
        c = f
    f = base_filters * 2**depth
    block("bottom", c, f, 2**depth)
    c = f
    for level in reversed(range(depth)):
        f = base_filters * 2**level
        out.append(Layer(f"up{level}_upconv", 2, c, f, True, 2 ** (level + 1),
                         transposed=True))
        block(f"up{level}", 2 * f, f, 2**level)
        c = f
    out.append(Layer("classifier", 1, c, n_classes, True, 1))
    return out


def fcn_layers(in_channels: int, n_classes: int, base_filters: int = 64,
               fc_filters: int = 4096, **_ignored) -> list[Layer]:
    """The layers of ``build_fcn`` (FCN-8s on VGG-16; fc6 7x7, fc7 1x1; bias-free
    bilinear upsamplings; 1x1 scorings of pool4 and pool3)."""
    out, c = [], int(in_channels)
    for b, (n, mult) in enumerate(zip(VGG_BLOCKS, VGG_WIDTHS), start=1):
        f = base_filters * mult
        for i in range(1, n + 1):
            out.append(Layer(f"block{b}_conv{i}", 3, c, f, True, 2 ** (b - 1)))
            c = f
    k = n_classes
    out += [Layer("fc6", 7, c, fc_filters, True, 32),
            Layer("fc7", 1, fc_filters, fc_filters, True, 32),
            Layer("score_fr", 1, fc_filters, k, True, 32),
            Layer("upscore2", 4, k, k, False, 32, transposed=True),
            Layer("score_pool4", 1, base_filters * 8, k, True, 16),
            Layer("upscore_pool4", 4, k, k, False, 16, transposed=True),
            Layer("score_pool3", 1, base_filters * 4, k, True, 8),
            Layer("upscore8", 16, k, k, False, 8, transposed=True)]
    return out


def layers(arch: str, in_channels: int, n_classes: int,
           options: Mapping[str, Any] | None = None) -> list[Layer]:
    """The layer list of built-in ``arch`` ('unet' or 'fcn') with its model options."""
    options = dict(options or {})
    if arch == "unet":
        return unet_layers(in_channels, n_classes, **{**UNET_DEFAULTS, **options})
    if arch == "fcn":
        return fcn_layers(in_channels, n_classes, **{**FCN_DEFAULTS, **options})
    raise ValueError(f"no closed-form size for architecture {arch!r} (built-ins: unet, fcn); "
                     "give its parameter count in the cluster's workload instead")


def param_counts(arch: str, in_channels: int, n_classes: int,
                 options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """``{"total", "trainable"}``: Keras's ``count_params()`` and the gradient's size."""
    ls = layers(arch, in_channels, n_classes, options)
    trainable = sum(layer.weights for layer in ls)
    bn = sum(layer.c_out for layer in ls if layer.batch_norm)
    return {"total": trainable + 4 * bn, "trainable": trainable + 2 * bn}


def padded_size(arch: str, h: int, w: int, options: Mapping[str, Any] | None = None
                ) -> tuple[int, int]:
    """H x W inside the network: the next multiples of 2**poolings."""
    options = dict(options or {})
    poolings = FCN_POOLINGS if arch == "fcn" else options.get("depth", UNET_DEFAULTS["depth"])
    m = 2**poolings
    return -(-h // m) * m, -(-w // m) * m


def forward_flops(arch: str, in_channels: int, n_classes: int, size: tuple[int, int],
                  options: Mapping[str, Any] | None = None) -> float:
    """Forward FLOPs of one H x W image (convolutions only, 2 per multiply-add)."""
    h, w = padded_size(arch, int(size[0]), int(size[1]), options)
    total = 0.0
    for layer in layers(arch, in_channels, n_classes, options):
        pixels = (h // layer.scale) * (w // layer.scale)
        total += 2.0 * layer.k * layer.k * layer.c_in * layer.c_out * pixels
    return total
