"""scripts/gpu-sampler-check.py without a GPU: a clear refusal, exit 2, nothing written (its
checks ran on an H200: docs/training.md, "GPU path")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_without_a_gpu_it_says_so_and_exits_2(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu-sampler-check.py"),
                           "--seconds", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("gpu-sampler-check: no GPU through NVML: ")
    assert not out.exists()
