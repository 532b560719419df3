#!/usr/bin/env bash
# Install everything segscale needs on a fresh Debian 12 machine, idempotently:
#   apt packages (OpenMPI for Horovod, compilers), the workflow venv (.venv: snakemake,
#   data, metrics, figures, tests) and the training venv (.venv-train: TensorFlow + Horovod).
# Two environments because TensorFlow 2.15 needs numpy<2 and wrapt<1.15, which snakemake 9
# cannot share. A second run only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
APT_PACKAGES=(openmpi-bin libopenmpi-dev cmake g++ make git python3-dev python3-venv)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# shellcheck source=scripts/lib/requirements.sh
source scripts/lib/requirements.sh

# The workflow environment; reinstalled only when requirements/workflow.txt or a file it
# includes (plot.txt, data.txt, common.txt) changes.
stamp=.venv/.segscale-requirements
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
want="$(requirements_closure requirements/workflow.txt)"
if ! printf '%s\n' "$want" | cmp -s - "$stamp" 2>/dev/null; then
  echo "setup: installing the workflow environment (.venv)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements/workflow.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  printf '%s\n' "$want" > "$stamp"
fi

# The training environment (TensorFlow + Horovod built from source; ~3 min the first time).
bash scripts/install-train-env.sh

# The user profiles (`snakemake --profile slurm|local`): copies of profiles/<name>/ in
# ~/.config/snakemake, never overwriting one already there (the site's edited copy).
bash scripts/install-profile.sh

echo "setup: ready (workflow: .venv, training: .venv-train)"
