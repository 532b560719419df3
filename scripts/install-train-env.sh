#!/usr/bin/env bash
# Create or refresh the training environment (.venv-train): TensorFlow 2.15 (Keras 2) and
# Horovod 0.28.1 built from source with TensorFlow, Gloo and (where OpenMPI is installed) MPI.
# Pins: requirements/train.txt (and what it includes), shared with envs/train.yaml; TensorFlow
# and Horovod are the two set here.
# Idempotent: pinned packages are reinstalled only when the pins change, Horovod is built only
# when `import horovod.tensorflow` fails, segscale is installed (editable, --no-deps) only when
# it is not importable. A second run takes a few seconds.
#
# Environment:
#   PYTHON              interpreter for a new venv (default python3; TF 2.15 needs 3.9-3.11)
#   SEGSCALE_TRAIN_VENV venv directory (default .venv-train)
#   SEGSCALE_TF         TensorFlow requirement (default tensorflow-cpu==2.15.1; on GPU nodes
#                       use 'tensorflow[and-cuda]==2.15.1' and set HOROVOD_GPU_OPERATIONS=NCCL
#                       with NCCL installed, before the first build)
# Needs (apt): cmake g++ make python3-dev python3-venv; openmpi-bin libopenmpi-dev for MPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=${SEGSCALE_TRAIN_VENV:-.venv-train}
TF_REQ=${SEGSCALE_TF:-tensorflow-cpu==2.15.1}
HOROVOD_VERSION=0.28.1
REQUIREMENTS=requirements/train.txt
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "install-train-env: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# shellcheck source=scripts/lib/requirements.sh
source scripts/lib/requirements.sh
# The stamp covers TF_REQ and the content of requirements/train.txt and the files it includes.
stamp="$VENV/.segscale-train-pins"
want="$(printf '%s\n' "$TF_REQ"; requirements_closure "$REQUIREMENTS")"
if ! printf '%s\n' "$want" | cmp -s - "$stamp" 2>/dev/null; then
  echo "install-train-env: installing pinned packages"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  "$PY" -m pip install -q "$TF_REQ" -r "$REQUIREMENTS"
  printf '%s\n' "$want" > "$stamp"
fi

if ! TF_CPP_MIN_LOG_LEVEL=2 "$PY" -c "import horovod.tensorflow" >/dev/null 2>&1; then
  echo "install-train-env: building Horovod $HOROVOD_VERSION from source (a few minutes)"
  # Not horovod[tensorflow]: its extra would pull the newest TensorFlow over the pinned one.
  mpi_flag=HOROVOD_WITHOUT_MPI=1
  if command -v mpicxx >/dev/null 2>&1 || command -v mpicc >/dev/null 2>&1; then
    mpi_flag=HOROVOD_WITH_MPI=1
  fi
  env HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 "$mpi_flag" \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    "$PY" -m pip install --no-build-isolation --no-deps --no-cache-dir \
    "horovod==$HOROVOD_VERSION"
  "$PY" -c "import horovod.tensorflow" || {
    echo "install-train-env: Horovod built but does not import with TensorFlow" >&2
    exit 1
  }
fi

if ! "$PY" - <<'PYEOF' >/dev/null 2>&1
import pathlib, segscale
assert pathlib.Path(segscale.__file__).resolve().is_relative_to(pathlib.Path("src").resolve())
PYEOF
then
  echo "install-train-env: installing segscale (editable) into $VENV"
  "$PY" -m pip install -q --no-deps -e .
fi

TF_CPP_MIN_LOG_LEVEL=2 "$PY" -c "
import horovod, horovod.tensorflow as h, tensorflow as tf
print(f'install-train-env: ready ($VENV): TensorFlow {tf.__version__}, Horovod',
      f'{horovod.__version__} (gloo {h.gloo_built()}, mpi {h.mpi_built()})')"
