"""Check the resource sampler's GPU readings (NVML) on a real GPU, without TensorFlow.

    python scripts/gpu-sampler-check.py [--seconds 8] [--interval 0.2] [--out DIR]

Samples GPU 0 (``segscale.train.sampler.ResourceSampler``, as every training rank does) first
idle, then while matrix products keep the GPU busy (PyTorch, else TensorFlow, else CuPy:
whichever is installed), and checks what the run's ``resources/rank{k}.csv`` would hold:
utilisation and device memory rise under load and are numbers, not NaN; NVML's index of a
rank follows ``CUDA_VISIBLE_DEVICES``. Writes ``idle.csv``, ``busy.csv`` and ``summary.json``
to ``--out``. Exit 0 when every check holds, 1 otherwise, 2 without a GPU or NVML.
scripts/gpu-check.sh covers the rest of the GPU path (it needs the training environment).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from segscale.train.sampler import ResourceSampler, physical_gpu_index, write_rows  # noqa: E402


def busy_loop(seconds: float) -> str:
    """Keep GPU 0 busy for ``seconds`` with whatever array library is installed."""
    deadline = time.monotonic() + seconds
    try:
        import torch

        a = torch.randn(8192, 8192, device="cuda")
        while time.monotonic() < deadline:
            a = (a @ a).clamp_(-1, 1)
            torch.cuda.synchronize()
        return f"torch {torch.__version__}"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        with tf.device("/GPU:0"):
            a = tf.random.normal([8192, 8192])
            while time.monotonic() < deadline:
                a = tf.clip_by_value(a @ a, -1, 1)
                float(a[0, 0])
        return f"tensorflow {tf.__version__}"
    except ImportError:
        pass
    import cupy

    a = cupy.random.randn(8192, 8192, dtype=cupy.float32)
    while time.monotonic() < deadline:
        a = cupy.clip(a @ a, -1, 1)
        cupy.cuda.Device().synchronize()
    return f"cupy {cupy.__version__}"


def sample(seconds: float, interval: float, work=None) -> tuple[list[dict], str | None]:
    """The sampler's rows over ``seconds`` of ``work`` (None: idle), and what did the work."""
    library = None
    with ResourceSampler(interval, gpu_index=0) as sampler:
        if work is None:
            time.sleep(seconds)
        else:
            library = work(seconds)
    return sampler.rows, library


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--out", type=Path, default=Path("gpu-sampler-check"))
    args = p.parse_args(argv)
    try:
        import pynvml

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        driver = pynvml.nvmlSystemGetDriverVersion()
    except Exception as err:  # noqa: BLE001 - the reason is the message
        print(f"gpu-sampler-check: no GPU through NVML: {err}", file=sys.stderr)
        return 2
    idle, _ = sample(2.0, args.interval)
    t0 = time.monotonic()
    busy, library = sample(args.seconds, args.interval, busy_loop)
    args.out.mkdir(parents=True, exist_ok=True)
    write_rows(args.out / "idle.csv", idle)
    write_rows(args.out / "busy.csv", busy)

    def peak(rows, key):
        values = [r[key] for r in rows if not math.isnan(r[key])]
        return max(values) if values else math.nan

    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = "3,1"
    mapping = [physical_gpu_index(0), physical_gpu_index(1)]
    if saved is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES")
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = saved
    summary = {
        "gpu": name if isinstance(name, str) else name.decode(), "driver": str(driver),
        "samples_idle": len(idle), "samples_busy": len(busy),
        "busy_seconds": round(time.monotonic() - t0, 2), "library": library,
        "gpu_util_peak_idle": peak(idle, "gpu_util"), "gpu_util_peak_busy": peak(busy, "gpu_util"),
        "gpu_mem_mb_peak_idle": peak(idle, "gpu_mem_mb"),
        "gpu_mem_mb_peak_busy": peak(busy, "gpu_mem_mb"),
        "nvml_index_for_cuda_visible_3_1": mapping,
    }
    checks = {
        "every sample has GPU readings": all(not math.isnan(r["gpu_util"])
                                             and not math.isnan(r["gpu_mem_mb"])
                                             for r in idle + busy),
        "utilisation rises under load (>= 50 %)": summary["gpu_util_peak_busy"] >= 50,
        "device memory rises under load (+256 MiB)":
            summary["gpu_mem_mb_peak_busy"] >= summary["gpu_mem_mb_peak_idle"] + 256,
        "NVML index follows CUDA_VISIBLE_DEVICES": mapping == [3, 1],
    }
    summary["checks"] = checks
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    failed = [name for name, ok in checks.items() if not ok]
    print("gpu-sampler-check: " + ("all checks hold" if not failed
                                    else "FAILED: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
