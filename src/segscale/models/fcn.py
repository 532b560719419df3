"""FCN-8s on a VGG-16 backbone (Long et al. 2015; the thesis's 16-layer variant).

16 convolutions: VGG-16's 13 (blocks of 2, 2, 3, 3, 3, named as in
``keras.applications.VGG16`` so its weights load by name), fc6/fc7 as convolutions (7x7,
1x1) and the 1x1 classifier; upsampling by transposed convolutions initialised bilinearly,
with the pool4 and pool3 skips of FCN-8s (each scored by a 1x1 convolution). Any H x W >= 32
is accepted: the input is zero-padded to the next multiple of 32 (layer ``input_pad``) and
the logits cropped back (``output_crop``), see :func:`segscale.models.sizes.fcn_padding`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from segscale.models.sizes import fcn_padding

__all__ = ["bilinear_kernel", "build_fcn", "fcn_padding", "load_vgg16_weights",
           "vgg_conv_names"]

log = logging.getLogger(__name__)
layers = tf.keras.layers

VGG_BLOCKS = (2, 2, 3, 3, 3)
VGG_WIDTHS = (1, 2, 4, 8, 8)


def vgg_conv_names() -> list[str]:
    """The 13 VGG-16 convolution layer names, in order."""
    return [f"block{b + 1}_conv{i + 1}" for b, n in enumerate(VGG_BLOCKS) for i in range(n)]


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """A (size, size, channels, channels) kernel upsampling each channel bilinearly."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    kernel = np.zeros((size, size, channels, channels), dtype=np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = filt
    return kernel


def build_fcn(input_shape: tuple[int, int, int], n_classes: int, base_filters: int = 64,
              fc_filters: int = 4096, dropout: float = 0.5, vgg16_weights: str | None = None,
              name: str = "fcn") -> tf.keras.Model:
    """FCN-8s; ``base_filters=64, fc_filters=4096`` is the VGG-16 geometry.

    Args:
        input_shape: (H, W, C), H and W >= 32. Sizes not divisible by 32 (five poolings)
            are zero-padded symmetrically inside the model to the next multiple (layer
            ``input_pad``) and the logits cropped back (``output_crop``), so the output is
            (H, W, n_classes); divisible sizes get neither layer.
        n_classes: softmax outputs per pixel (>= 2).
        base_filters: width of block 1; blocks 2-5 have 2, 4, 8, 8 times as many.
        fc_filters: width of fc6/fc7 (convolutionalised fully connected layers).
        dropout: after fc6 and fc7, as in FCN.
        vgg16_weights: optional Keras HDF5 weights file of VGG-16 (e.g. the ImageNet
            ``..._notop.h5``); the 13 convolutions are loaded by name. Needs base_filters 64.

    Raises:
        ValueError: bad sizes (a side below 32), or a weights file that does not match (see
            :func:`load_vgg16_weights`).
    """
    h, w, _ = input_shape
    if n_classes < 2 or base_filters < 1 or fc_filters < 1 or not 0 <= dropout < 1:
        raise ValueError(f"fcn: need n_classes >= 2, base_filters/fc_filters >= 1, dropout "
                         f"in [0, 1); got {n_classes}, {base_filters}, {fc_filters}, {dropout}")
    pad = fcn_padding(h, w)
    padded = pad != ((0, 0), (0, 0))
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x, pools = inputs, []
    if padded:
        x = layers.ZeroPadding2D(pad, name="input_pad")(x)
    for b, (n, mult) in enumerate(zip(VGG_BLOCKS, VGG_WIDTHS, strict=True), start=1):
        for i in range(1, n + 1):
            x = layers.Conv2D(base_filters * mult, 3, padding="same", activation="relu",
                              name=f"block{b}_conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        pools.append(x)
    x = layers.Conv2D(fc_filters, 7, padding="same", activation="relu", name="fc6")(x)
    if dropout:
        x = layers.Dropout(dropout, name="drop6")(x)
    x = layers.Conv2D(fc_filters, 1, activation="relu", name="fc7")(x)
    if dropout:
        x = layers.Dropout(dropout, name="drop7")(x)
    x = layers.Conv2D(n_classes, 1, kernel_initializer="zeros", name="score_fr")(x)
    ups = []  # (layer, kernel size): initialised as bilinear upsampling below

    def upsample(x, kernel: int, stride: int, name: str):
        up = layers.Conv2DTranspose(n_classes, kernel, strides=stride, padding="same",
                                    use_bias=False, name=name)
        ups.append((up, kernel))
        return up(x)

    # FCN-8s: x2 and fuse pool4's scores, x2 and fuse pool3's, then x8 to the input size.
    for pool, level, up_name in ((pools[3], "pool4", "upscore2"),
                                 (pools[2], "pool3", "upscore_pool4")):
        x = upsample(x, 4, 2, up_name)
        skip = layers.Conv2D(n_classes, 1, kernel_initializer="zeros",
                             name=f"score_{level}")(pool)
        x = layers.Add(name=f"fuse_{level}")([x, skip])
    x = upsample(x, 16, 8, "upscore8")
    if padded:
        x = layers.Cropping2D(pad, name="output_crop")(x)
    outputs = layers.Softmax(dtype="float32", name="softmax")(x)
    model = tf.keras.Model(inputs, outputs, name=name)
    for layer, size in ups:  # set after building: no custom initializer to serialise
        layer.set_weights([bilinear_kernel(size, n_classes)])
    if vgg16_weights:
        load_vgg16_weights(model, vgg16_weights)
    return model


def _decode(names) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_vgg16_weights(model: tf.keras.Model, path: str | Path) -> None:
    """Copy the 13 VGG-16 convolutions from a Keras HDF5 file into ``model`` by layer name.

    Reads both weights-only files (``save_weights``) and full-model files
    (``model_weights`` group). When the first convolution's input channels differ (MRI
    slices are not RGB), its kernel is summed over the file's channels and shared equally
    by the model's, so a grey image replicated to RGB gives the same response.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a VGG layer is missing from the file, or shapes do not match.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hparams.model.vgg16_weights: {path} not found")
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        available = set(_decode(root.attrs.get("layer_names", list(root.keys()))))
        for lname in vgg_conv_names():
            if lname not in available:
                raise ValueError(f"{path}: layer {lname} missing (is this a VGG-16 file?)")
            group = root[lname]
            wnames = _decode(group.attrs["weight_names"])
            kernel, bias = (np.asarray(group[n]) for n in wnames)
            layer = model.get_layer(lname)
            want = tuple(layer.kernel.shape)
            if lname == "block1_conv1" and kernel.shape[2] != want[2]:
                summed = kernel.sum(axis=2, keepdims=True) / want[2]
                kernel = np.repeat(summed, want[2], axis=2)
            if kernel.shape != want or bias.shape != tuple(layer.bias.shape):
                raise ValueError(f"{path}: {lname} has kernel {kernel.shape}, model needs "
                                 f"{want} (base_filters must match the file)")
            layer.set_weights([kernel, bias])
    log.info("loaded VGG-16 convolutions from %s", path)
