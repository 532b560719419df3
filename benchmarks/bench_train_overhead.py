"""(a) Toolkit overhead: one rank through ``segscale.train`` vs a hand-written Horovod Keras
``fit`` of the same model and data.

Same U-Net (thesis width: depth 4, 64 base filters), loss, optimizer (SGD in Horovod's
``DistributedOptimizer``), batch, data and thread count; the baseline holds the store in
memory and calls ``model.fit(x, y)`` with Horovod's broadcast and metric-average callbacks
only (no checkpoints, history, divergence or stop checks). Prints the steady-state time per
step of each; last line ``train_overhead: <toolkit / hand-written>`` (goal <= 1.02).
Run with the training environment's python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_train_common import (
    PYTHON,
    breakdown_text,
    hparams,
    parser,
    record,
    run_toolkit,
    steady,
    stores,
    workdir,
)


def plain_fit(store_dir: str, args_json: str) -> None:
    """Child process: the hand-written baseline; prints its median s/step as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import horovod.tensorflow.keras as hvd
    import numpy as np
    import tensorflow as tf

    from segscale.data.store import SliceStore
    from segscale.models import build_model
    from segscale.models.losses import dice, get_loss

    a = json.loads(args_json)
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(a["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(a["threads"])
    store = SliceStore.open(store_dir)
    usable = len(store) - len(store) % a["batch"]
    x = np.asarray(store.images[:usable], np.float32)
    y = np.asarray(store.labels[:usable])
    tf.keras.utils.set_random_seed(0)
    model = build_model("unet", x.shape[1:], store.n_classes,
                        {"depth": a["depth"], "base_filters": a["filters"]})
    model.compile(hvd.DistributedOptimizer(tf.keras.optimizers.legacy.SGD(0.01, momentum=0.9)),
                  get_loss("dice_ce"), metrics=[dice])

    class Timer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_step = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.steps = time.perf_counter(), 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.t1 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.per_step.append((self.t1 - self.t0) / self.steps)

    timer = Timer()
    model.fit(x, y, batch_size=a["batch"], epochs=a["epochs"], shuffle=True, verbose=0,
              callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                         hvd.callbacks.MetricAverageCallback(), timer])
    steady_steps = timer.per_step[1:] or timer.per_step
    sys.stdout.write(json.dumps({"s_per_step": float(np.median(steady_steps))}) + "\n")


def main() -> int:
    p = parser(__doc__)
    p.set_defaults(filters=64, depth=4, size=32, slices=32, batch=4, epochs=3)
    args = p.parse_args()
    a = vars(args)
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        hist = run_toolkit(st, Path(tmp) / "run", hparams(args))
        toolkit = args.batch / steady(hist, "images_per_s")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([str(PYTHON), __file__, "--child", str(st["train"]),
                               json.dumps(a)], capture_output=True, text=True, env=env,
                              check=True)
        plain = json.loads(proc.stdout.strip().splitlines()[-1])["s_per_step"]
    result = {"toolkit_s_per_step": toolkit, "horovod_keras_s_per_step": plain,
              "ratio_toolkit_over_plain": toolkit / plain, "config": a,
              "toolkit_breakdown": breakdown_text(hist)}
    print(f"where the toolkit's step goes (history.csv): {breakdown_text(hist)}")
    record("train_overhead", result)
    print(f"(a) time per step, U-Net depth {args.depth} x {args.filters} filters, "
          f"{args.size}x{args.size}, batch {args.batch}, {args.threads} thread(s): toolkit "
          f"{1000 * toolkit:.1f} ms, hand-written Horovod Keras fit {1000 * plain:.1f} ms")
    print(f"train_overhead: {toolkit / plain:.3f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        plain_fit(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(main())
