"""(c) Input pipeline vs model: images/s the training input can deliver, alone, against the
images/s the model consumes in training (one rank, same store, batch and threads).

The pipeline is measured twice: the bare generator (memory-mapped store, per-epoch shuffle)
and the same generator behind ``tf.data`` (what ``fit`` iterates). A ratio pipeline/model
well above 1 means training is compute-bound, not input-bound.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench_train_common import hparams, parser, record, run_toolkit, steady, stores, workdir


def pipeline_rates(train_dir: Path, batch: int, threads: int, epochs: int = 3
                   ) -> tuple[float, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from segscale.data.store import SliceStore
    from segscale.train.batches import train_batches

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    store = SliceStore.open(train_dir)
    rows = store.shard(0, 1)
    steps = len(rows) // batch
    total = steps * epochs

    gen = train_batches(store, rows, batch, steps, 0, 0, 0)
    t0 = time.perf_counter()
    for _ in range(total):
        next(gen)
    bare = total * batch / (time.perf_counter() - t0)

    shape = store.images.shape[1:]
    ds = tf.data.Dataset.from_generator(
        lambda: train_batches(store, rows, batch, steps, 0, 0, 0),
        output_signature=(tf.TensorSpec((None, *shape), tf.float32),
                          tf.TensorSpec((None, *shape[:2]), tf.uint8))).prefetch(2)
    it = iter(ds)
    next(it)  # start-up
    t0 = time.perf_counter()
    for _ in range(total):
        next(it)
    wrapped = total * batch / (time.perf_counter() - t0)
    return bare, wrapped


def main() -> int:
    args = parser(__doc__).parse_args()
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        bare, wrapped = pipeline_rates(st["train"], args.batch, args.threads)
        model = steady(run_toolkit(st, Path(tmp) / "run", hparams(args)), "images_per_s")
    record("train_input", {"pipeline_images_per_s": bare, "tfdata_images_per_s": wrapped,
                           "model_images_per_s": model, "ratio_pipeline_over_model":
                           wrapped / model, "config": vars(args)})
    print(f"(c) images/s: input generator {bare:.0f}, through tf.data {wrapped:.0f}, model "
          f"consumes {model:.1f}")
    print(f"input_headroom: {wrapped / model:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
