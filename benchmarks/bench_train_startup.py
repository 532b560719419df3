"""(d) A training run's own start-up: config, stores, Horovod, model build, against the same
steps written by hand (``hvd.init``, open the store, build and compile the model with a
``DistributedOptimizer``), one rank, thesis U-Net width (64 base filters).

Each side runs in fresh child processes, alternating (the first Keras model of a process
pays one-off costs, so both sides are measured cold). The clock starts after
``import tensorflow, horovod.tensorflow.keras`` (reported apart) and stops when the first
training step could start (``fit`` would be called next); the first step itself (graph
tracing) is reported apart too. Printed last: ``startup_ms: <segscale median>`` (goal <= 139,
the Auto-CNNp engine's published overhead).

    .venv-train/bin/python benchmarks/bench_train_startup.py [--repeats 3] [--filters 64]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_train_common import PYTHON, hparams, parser, record, stores, workdir


def child(side: str, train: str, val: str, out: str, args_json: str) -> None:
    """One cold start of ``side`` ("segscale" or "hand"); prints its timings as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    a = json.loads(args_json)
    t0 = time.perf_counter()
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf
    t_import = time.perf_counter() - t0
    marks = {}
    start = time.perf_counter()
    if side == "segscale":
        from segscale.train import run
        from segscale.train.config import RunSpec, parse_hparams
        from segscale.train.launch import SignalFlag

        cfg = parse_hparams(a["hparams"])
        spec = RunSpec(Path(train), Path(val), Path(out), "bench", "unet", "none", 0, None)
        marks["config"] = time.perf_counter() - start
        s = run.set_up(spec, cfg)
        marks["set_up (horovod, devices, stores)"] = time.perf_counter() - start
        r = run.resume(s, spec, cfg)
        marks["resume (model build, compile, broadcast)"] = time.perf_counter() - start
        callbacks, _ = run.make_callbacks(s, cfg, r, SignalFlag())
        ready = time.perf_counter() - start
        s.sampler.stop()
        model, x_shape, batch = r.model, s.image_shape, cfg.batch_size
    else:
        from segscale.data.store import SliceStore
        from segscale.models import build_model
        from segscale.models.losses import dice, get_loss

        hvd.init()
        tf.config.threading.set_intra_op_parallelism_threads(a["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(a["threads"])
        store = SliceStore.open(train)
        tf.keras.utils.set_random_seed(0)
        model = build_model("unet", store.images.shape[1:], store.n_classes,
                            {"depth": a["depth"], "base_filters": a["filters"]})
        model.compile(hvd.DistributedOptimizer(
            tf.keras.optimizers.legacy.SGD(0.01, momentum=0.9)), get_loss("dice_ce"),
            metrics=[dice])
        hvd.callbacks.BroadcastGlobalVariablesCallback(0)  # what the hand-written fit passes
        ready = time.perf_counter() - start
        x_shape, batch = tuple(store.images.shape[1:]), a["batch"]
    import numpy as np

    x = np.zeros((batch, *x_shape), np.float32)
    y = np.zeros((batch, *x_shape[:2]), np.uint8)
    t1 = time.perf_counter()
    model.train_on_batch(x, y)  # the first step: graph tracing and one batch
    first = time.perf_counter() - t1
    sys.stdout.write(json.dumps({"import_s": t_import, "ready_s": ready, "first_step_s": first,
                                 "marks": marks}) + "\n")


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(filters=64, depth=4, size=32, slices=16, batch=4)
    args = p.parse_args()
    a = {**vars(args), "hparams": json.dumps(hparams(args))}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    results: dict[str, list[dict]] = {"segscale": [], "hand": []}
    with workdir() as tmp:
        st = stores(args, Path(tmp))
        for i in range(args.repeats):
            for side in (("segscale", "hand") if i % 2 == 0 else ("hand", "segscale")):
                proc = subprocess.run(
                    [str(PYTHON), __file__, "--child", side, str(st["train"]), str(st["val"]),
                     str(Path(tmp) / f"run{i}{side}"), json.dumps(a)],
                    capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise RuntimeError(f"{side} start-up failed:\n{proc.stderr[-3000:]}")
                results[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))

    def med(side: str, key: str) -> float:
        return 1000 * statistics.median(r[key] for r in results[side])

    ours, hand = med("segscale", "ready_s"), med("hand", "ready_s")
    record("train_startup", {"results": results, "config": a})
    print(f"(d) start-up, U-Net depth {args.depth} x {args.filters} base filters, "
          f"{args.size}x{args.size}, one rank, {args.repeats} cold starts each (medians):")
    print(f"  import tensorflow + horovod (excluded): {med('segscale', 'import_s'):8.0f} ms")
    for name in results["segscale"][0]["marks"]:
        ms = 1000 * statistics.median(r["marks"][name] for r in results["segscale"])
        print(f"    segscale, cumulative after {name}: {ms:8.0f} ms")
    print(f"  segscale to first step:                 {ours:8.0f} ms")
    print(f"  hand-written Horovod Keras to first step: {hand:6.0f} ms   (ratio {ours / hand:.2f})")
    print(f"  first step (graph tracing), reported apart: segscale "
          f"{med('segscale', 'first_step_s'):.0f} ms, hand {med('hand', 'first_step_s'):.0f} ms")
    print(f"startup_ms: {ours:.0f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
        sys.exit(0)
    sys.exit(main())
