#!/usr/bin/env bash
# Run by snakemake --use-conda inside the freshly created envs/train.yaml environment: build
# Horovod 0.28.1 against its TensorFlow (see the comment in train.yaml for why not in pip).
set -euo pipefail
if python -c "import horovod.tensorflow" >/dev/null 2>&1; then
  exit 0
fi
HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
  python -m pip install --no-build-isolation --no-deps --no-cache-dir horovod==0.28.1
python -c "import horovod.tensorflow"
