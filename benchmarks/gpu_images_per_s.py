"""U-Net training throughput on one GPU: ``segscale.train`` vs a hand-written TensorFlow loop.

Both train the same U-Net (thesis width by default: depth 4, 64 base filters, 256 x 256
slices, batch 7, SGD with momentum, dice_ce loss) on the same generated slices, one rank,
under the same dtype policy. segscale's number is its ``history.csv`` ``images_per_s``
(training part of each epoch); the hand-written loop is a ``tf.function`` train step over
an in-memory ``tf.data`` pipeline, timed per epoch up to its last step's loss on the host.
Each is the median over the epochs after the first (tracing, XLA compilation, warm-up).

Prints both, the device, and last ``gpu_images_per_s_ratio: <segscale / hand-written>
(<device name>)``; writes ``benchmarks/out/gpu_images_per_s.json``. ``--cpu-dry-run``: a
tiny model on the CPU, to check the plumbing (the ratio then says nothing about GPUs).
Run with the training environment's python (``scripts/gpu-check.sh`` does).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench_train_common import hparams, parser, record, run_toolkit, steady, stores, workdir


def device_name(tf) -> str:
    """The first GPU's model (``NVIDIA H100 80GB HBM3``), else ``CPU``."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def hand_written(store_dir: Path, args) -> float:
    """Images/s of a plain ``tf.function`` training loop (median over epochs after the first)."""
    import numpy as np
    import tensorflow as tf

    from segscale.data.store import SliceStore
    from segscale.models import build_model
    from segscale.models.losses import get_loss

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.mixed_precision.set_global_policy(args.precision)
    store = SliceStore.open(store_dir)
    steps = len(store) // args.batch
    x = np.asarray(store.images[:steps * args.batch], np.float32)
    y = np.asarray(store.labels[:steps * args.batch])
    tf.keras.utils.set_random_seed(0)
    model = build_model("unet", x.shape[1:], store.n_classes,
                        {"depth": args.depth, "base_filters": args.filters})
    loss_fn = get_loss("dice_ce")
    opt = tf.keras.optimizers.legacy.SGD(0.01, momentum=0.9)
    mixed = args.precision == "mixed_float16"
    if mixed:
        opt = tf.keras.mixed_precision.LossScaleOptimizer(opt)
    data = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0)
            .batch(args.batch, drop_remainder=True).prefetch(2))

    @tf.function(jit_compile=args.xla or None)
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
            scaled = opt.get_scaled_loss(loss) if mixed else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        if mixed:
            grads = opt.get_unscaled_gradients(grads)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rates = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for xb, yb in data:
            loss = train_step(xb, yb)
        float(loss)  # wait for the last step
        rates.append(steps * args.batch / (time.perf_counter() - t0))
    return float(np.median(rates[1:] or rates))


def main() -> int:
    p = parser(__doc__)
    p.set_defaults(size=256, depth=4, filters=64, batch=7, slices=448, epochs=4, threads=0)
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_float16"))
    p.add_argument("--xla", action="store_true", help="XLA-compile both training steps")
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="tiny model on the CPU: checks the plumbing, measures nothing")
    args = p.parse_args()
    if args.cpu_dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # both sides, the toolkit's child included
        args.size, args.depth, args.filters, args.batch = 32, 2, 4, 4
        args.slices, args.epochs, args.threads = 32, 2, 1
    import tensorflow as tf

    device = device_name(tf)
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        hist = run_toolkit(st, Path(tmp) / "run",
                           hparams(args, precision=args.precision, xla=args.xla))
        toolkit = steady(hist, "images_per_s")
        plain = hand_written(st["train"], args)
    ratio = toolkit / plain
    result = {"device": device, "segscale_images_per_s": toolkit,
              "hand_written_images_per_s": plain, "gpu_images_per_s_ratio": ratio,
              "config": vars(args)}
    record("gpu_images_per_s", result)
    print(f"U-Net depth {args.depth} x {args.filters} filters, {args.size}x{args.size}, batch "
          f"{args.batch}, {args.precision}{', xla' if args.xla else ''}, on {device}: "
          f"segscale {toolkit:.1f} images/s, hand-written tf.function loop {plain:.1f} images/s")
    print(json.dumps(result))
    print(f"gpu_images_per_s_ratio: {ratio:.3f} ({device})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
