#!/usr/bin/env bash
# The GPU path, checked on a GPU node (issue 11, item 6). From the repository root, after
#   SEGSCALE_TF='tensorflow[and-cuda]==2.15.1' HOROVOD_GPU_OPERATIONS=NCCL bash scripts/setup.sh
# run
#   bash scripts/gpu-check.sh                 # on the GPU node
#   bash scripts/gpu-check.sh --cpu-dry-run   # anywhere: GPU-only checks skipped, rest tiny
# It trains tiny runs through `python -m segscale.train` (2 ranks with horovodrun when the
# node has >= 2 GPUs, else 1) and checks from run.json and resources/rank*.csv:
#   pinning    each rank on its own GPU (run.json rank_devices: host, visible GPU)
#   growth     memory growth on for every rank's GPU (rank_devices: memory_growth=True)
#   nvml       NVML sampling: every rank's resources csv has non-NaN gpu_util, gpu_mem_mb > 0
#   mixed      hparams.precision mixed_float16 trains (same ranks) and run.json records it
#   xla        hparams.xla trains on one rank, XLA compiled it, run.json records it
# then measures U-Net images/s (thesis width) through segscale vs a hand-written TensorFlow
# loop (benchmarks/gpu_images_per_s.py), float32 and mixed_float16. Prints a summary; exits
# non-zero if any check failed. Work files go to a temporary folder (SEGSCALE_GPU_CHECK_KEEP=1
# keeps it); outputs also to benchmarks/out/gpu-check.log.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DRY=0
case "${1:-}" in
  --cpu-dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: bash scripts/gpu-check.sh [--cpu-dry-run]" >&2; exit 2 ;;
esac
PY=${SEGSCALE_TRAIN_PYTHON:-.venv-train/bin/python}
BIN=$(cd "$(dirname "$PY")" && pwd)
export PATH="$BIN:$PATH" TF_CPP_MIN_LOG_LEVEL=2 OMPI_MCA_mpi_yield_when_idle=1
[ "$DRY" = 1 ] && export CUDA_VISIBLE_DEVICES=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/segscale-gpu-check.XXXXXX")
[ "${SEGSCALE_GPU_CHECK_KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
mkdir -p benchmarks/out
LOG=benchmarks/out/gpu-check.log
: > "$LOG"

summary=()
failed=0
note() { printf '%s\n' "$*" | tee -a "$LOG"; }
result() {  # name PASS|FAIL|SKIP detail
  summary+=("$(printf '%-14s %-5s %s' "$1" "$2" "$3")")
  note "[$2] $1: $3"
  [ "$2" = FAIL ] && failed=1
  return 0
}

if [ ! -x "$PY" ]; then
  echo "gpu-check: no training environment at $PY (run scripts/setup.sh)" >&2
  exit 2
fi

# ---- the GPUs -----------------------------------------------------------------------------
n_gpus=0
if [ "$DRY" = 1 ]; then
  note "gpu-check: CPU dry run (CUDA_VISIBLE_DEVICES=''): GPU-only checks are skipped"
  ranks=2
else
  if ! nvidia-smi -L | tee -a "$LOG"; then
    result gpus FAIL "nvidia-smi -L failed: no NVIDIA driver or GPU"
    printf '%s\n' "${summary[@]}"
    exit 1
  fi
  n_gpus=$(nvidia-smi -L | grep -c '^GPU ')
  tf_gpus=$("$PY" -c "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>>"$LOG" | tail -1)
  if [ "${tf_gpus:-0}" -ge 1 ] 2>/dev/null; then
    result gpus PASS "nvidia-smi lists $n_gpus, TensorFlow sees $tf_gpus"
  else
    result gpus FAIL "nvidia-smi lists $n_gpus, TensorFlow sees ${tf_gpus:-none} (CPU-only TensorFlow? set SEGSCALE_TF='tensorflow[and-cuda]==2.15.1')"
  fi
  ranks=$(( n_gpus >= 2 ? 2 : 1 ))
fi

# ---- tiny stores and runs ------------------------------------------------------------------
"$PY" - "$WORK" <<'EOF' >>"$LOG" 2>&1 || { result stores FAIL "could not write the demo stores"; }
import sys
from pathlib import Path
from segscale.data.demo import disk_store
root = Path(sys.argv[1])
disk_store(root / "train", 64, 32, 0)
disk_store(root / "val", 16, 32, 1)
EOF

TINY='"epochs": 2, "batch_size": 4, "lr": 0.01, "model": {"depth": 2, "base_filters": 8},
      "sample_interval_s": 0.2, "sync_every_steps": 2, "tensorboard": false'
[ "$DRY" = 1 ] && TINY="$TINY, \"threads_per_rank\": 1"

train() {  # name ranks extra-hparams: trains into $WORK/<name>, log in $WORK/<name>.log
  local name=$1 n=$2 extra=$3
  local cmd=("$PY" -m segscale.train --train-store "$WORK/train" --val-store "$WORK/val"
             --out "$WORK/$name" --dataset gpucheck --arch unet --policy none --seed 0
             --hparams "{$TINY$extra}")
  if [ "$n" -gt 1 ]; then
    cmd=("$BIN/horovodrun" -np "$n" -H "localhost:$n" --gloo "${cmd[@]}")
  fi
  note "gpu-check: training $name on $n rank(s)"
  timeout 900 "${cmd[@]}" >"$WORK/$name.log" 2>&1
  local rc=$?
  cat "$WORK/$name.log" >>"$LOG"
  return $rc
}

# inspect <run dir> <what>: prints a detail line, exits 0 (pass), 1 (fail)
inspect() {
  "$PY" - "$@" <<'EOF'
import json, math, re, sys
from pathlib import Path
import pandas as pd
run, what = Path(sys.argv[1]), sys.argv[2]
try:
    m = json.loads((run / "run.json").read_text())
except (OSError, ValueError) as err:
    print(f"no run.json: {err}"); sys.exit(1)
devices = m.get("rank_devices") or []
def done(ok, text):
    print(text); sys.exit(0 if ok else 1)
if what == "ok":
    done(m["status"] == "ok", f"status {m['status']}, {m.get('epochs_completed')} epochs, "
         f"{m['n_ranks']} rank(s), precision {m['hparams'].get('precision')}, "
         f"xla {m['hparams'].get('xla')}" + (f", error {m['error']}" if m.get("error") else ""))
if what == "pinning":
    # the GPU a rank used: host, node and device name without the local rank
    gpus = [re.sub(r" local_rank=\d+", "", d.split(" CUDA_VISIBLE_DEVICES")[0])
            for d in devices]
    ok = (len(devices) == m["n_ranks"] and all("GPU" in d for d in gpus)
          and len(set(gpus)) == len(gpus))
    done(ok, "; ".join(devices) or "no rank_devices in run.json")
if what == "growth":
    done(bool(devices) and all(d.endswith("memory_growth=True") for d in devices),
         "; ".join(devices) or "no rank_devices in run.json")
if what in ("nvml", "resources"):
    parts, ok = [], True
    for rank in range(m["n_ranks"]):
        path = run / "resources" / f"rank{rank}.csv"
        if not path.is_file():
            ok = False; parts.append(f"rank {rank}: no {path.name}"); continue
        df = pd.read_csv(path)
        util, mem = df["gpu_util"].dropna(), df["gpu_mem_mb"].dropna()
        parts.append(f"rank {rank}: {len(df)} samples, gpu_util max "
                     f"{util.max() if len(util) else math.nan}, gpu_mem_mb max "
                     f"{mem.max() if len(mem) else math.nan}")
        if what == "nvml":
            ok = ok and len(util) > 0 and len(mem) > 0 and mem.max() > 0
        else:
            ok = ok and len(df) > 0 and {"gpu_util", "gpu_mem_mb"} <= set(df.columns)
    done(ok, "; ".join(parts))
if what == "mixed":
    done(m["status"] == "ok" and m["hparams"]["precision"] == "mixed_float16",
         f"status {m['status']}, hparams.precision {m['hparams']['precision']}, "
         f"{m['n_ranks']} rank(s)")
if what == "xla":
    compiled = "Compiled cluster using XLA" in Path(f"{run}.log").read_text(errors="replace")
    done(m["status"] == "ok" and m["hparams"]["xla"] is True and compiled,
         f"status {m['status']}, hparams.xla {m['hparams']['xla']}, XLA compiled: {compiled}")
done(False, f"unknown check {what}")
EOF
}

check() {  # name run-dir what [gpu-only]
  local name=$1 dir=$2 what=$3 gpu_only=${4:-}
  if [ -n "$gpu_only" ] && [ "$DRY" = 1 ]; then
    result "$name" SKIP "GPU only (CPU dry run)"
    return
  fi
  local detail
  if detail=$(inspect "$dir" "$what" 2>>"$LOG"); then
    result "$name" PASS "$detail"
  else
    result "$name" FAIL "$detail"
  fi
}

if train base "$ranks" ""; then
  check train "$WORK/base" ok
else
  result train FAIL "segscale.train exited non-zero (see $LOG)"
fi
check pinning "$WORK/base" pinning gpu
check growth "$WORK/base" growth gpu
if [ "$DRY" = 1 ]; then
  check samples "$WORK/base" resources  # the sampler's plumbing; NVML needs a GPU
fi
check nvml "$WORK/base" nvml gpu

train mixed "$ranks" ', "precision": "mixed_float16"'
check mixed "$WORK/mixed" mixed
train xla 1 ', "xla": true'
check xla "$WORK/xla" xla

# ---- throughput: segscale vs a hand-written tf.function loop -------------------------------
bench_args=()
[ "$DRY" = 1 ] && bench_args=(--cpu-dry-run)
for precision in float32 mixed_float16; do
  note "gpu-check: U-Net images/s, $precision"
  out=$(timeout 1800 "$PY" benchmarks/gpu_images_per_s.py "${bench_args[@]}" \
        --precision "$precision" 2>>"$LOG")
  rc=$?
  printf '%s\n' "$out" >>"$LOG"
  last=$(printf '%s\n' "$out" | tail -1)
  if [ $rc -eq 0 ] && [[ $last == gpu_images_per_s_ratio:* ]]; then
    result "bench-${precision%%_*}" PASS "$(printf '%s\n' "$out" | head -1); ${last}"
  else
    result "bench-${precision%%_*}" FAIL "benchmarks/gpu_images_per_s.py exited $rc (see $LOG)"
  fi
done

echo
echo "gpu-check summary ($([ "$DRY" = 1 ] && echo "CPU dry run" || echo "$n_gpus GPU(s)"), $ranks rank(s)):"
printf '%s\n' "${summary[@]}"
[ "$DRY" = 0 ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if [ $failed -ne 0 ]; then
  echo "gpu-check: FAILED (full output: $LOG)"
  exit 1
fi
echo "gpu-check: all checks passed (full output: $LOG)"
