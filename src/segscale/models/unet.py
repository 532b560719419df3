"""U-Net (Ronneberger et al. 2015) for 2D slices, with configurable depth and width."""

from __future__ import annotations

import tensorflow as tf

from segscale.models.sizes import UNET_DEFAULT_DEPTH, unet_padding

layers = tf.keras.layers


def _conv_block(x, filters: int, batch_norm: bool, name: str):
    """Two 3x3 convolutions (same padding, so output size equals input size) with ReLU."""
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                          kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(input_shape: tuple[int, int, int], n_classes: int,
               depth: int = UNET_DEFAULT_DEPTH,
               base_filters: int = 64, batch_norm: bool = False, dropout: float = 0.0,
               name: str = "unet") -> tf.keras.Model:
    """U-Net with ``depth`` poolings; level ``i`` has ``base_filters * 2**i`` filters.

    ``depth=4, base_filters=64`` is the original network. Convolutions use "same" padding,
    so inside the network H and W must be multiples of ``2**depth``: other sizes (each side
    at least ``2**depth``) are zero-padded symmetrically to the next multiple (layer
    ``input_pad``) and the output cropped back (``output_crop``), see
    :func:`segscale.models.sizes.unet_padding`; divisible sizes get neither layer.
    ``dropout`` applies before the bottleneck block, as in the original. Output: per-pixel
    softmax over ``n_classes`` in float32, (H, W, n_classes).

    Raises:
        ValueError: depth < 1, base_filters < 1, n_classes < 2, dropout outside [0, 1), or a
            side smaller than ``2**depth``.
    """
    h, w, _ = input_shape
    if depth < 1 or base_filters < 1 or n_classes < 2 or not 0 <= dropout < 1:
        raise ValueError(f"unet: need depth >= 1, base_filters >= 1, n_classes >= 2, dropout "
                         f"in [0, 1); got {depth}, {base_filters}, {n_classes}, {dropout}")
    pad = unet_padding(h, w, depth)
    padded = pad != ((0, 0), (0, 0))
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x, skips = inputs, []
    if padded:
        x = layers.ZeroPadding2D(pad, name="input_pad")(x)
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    if dropout:
        x = layers.Dropout(dropout, name="drop_bottom")(x)
    x = _conv_block(x, base_filters * 2**depth, batch_norm, "bottom")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, padding="same",
                                   name=f"up{level}_upconv")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
        x = _conv_block(x, base_filters * 2**level, batch_norm, f"up{level}")
    outputs = layers.Conv2D(n_classes, 1, activation="softmax", dtype="float32",
                            name="classifier")(x)
    if padded:
        outputs = layers.Cropping2D(pad, dtype="float32", name="output_crop")(outputs)
    return tf.keras.Model(inputs, outputs, name=name)
