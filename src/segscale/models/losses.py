"""Segmentation losses and the Dice metric on softmax outputs and integer label maps."""

from __future__ import annotations

import tensorflow as tf

SMOOTH = 1e-6


def _one_hot(y_true, y_pred):
    """Labels (B, H, W) or (B, H, W, 1) as one-hot (B, H, W, C) matching ``y_pred``."""
    labels = tf.reshape(tf.cast(y_true, tf.int32), tf.shape(y_pred)[:-1])
    return tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)


def dice(y_true, y_pred):
    """Soft Dice averaged over classes, pixels of the whole batch pooled per class.

    Classes absent from both labels and prediction count as 1 (smoothing), which keeps the
    loss defined; the evaluation stage computes the hard Dice with its own conventions.
    """
    y_pred = tf.cast(y_pred, tf.float32)
    onehot = _one_hot(y_true, y_pred)
    axes = tf.range(tf.rank(y_pred) - 1)
    inter = tf.reduce_sum(onehot * y_pred, axis=axes)
    denom = tf.reduce_sum(onehot, axis=axes) + tf.reduce_sum(y_pred, axis=axes)
    return tf.reduce_mean((2.0 * inter + SMOOTH) / (denom + SMOOTH))


def dice_loss(y_true, y_pred):
    """1 - soft Dice."""
    return 1.0 - dice(y_true, y_pred)


def cross_entropy(y_true, y_pred):
    """Mean per-pixel categorical cross-entropy on integer labels."""
    y_pred = tf.cast(y_pred, tf.float32)
    labels = tf.reshape(tf.cast(y_true, tf.int32), tf.shape(y_pred)[:-1])
    return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, y_pred))


def dice_ce_loss(y_true, y_pred):
    """Cross-entropy + (1 - soft Dice)."""
    return cross_entropy(y_true, y_pred) + dice_loss(y_true, y_pred)


LOSSES = {"dice": dice_loss, "ce": cross_entropy, "dice_ce": dice_ce_loss}


def get_loss(name: str):
    """The loss function for ``hparams.loss``.

    Raises:
        ValueError: unknown name.
    """
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"hparams.loss: unknown {name!r}, expected {sorted(LOSSES)}") from None
