#!/usr/bin/env bash
# The test command on a fresh machine: set up, lint the workflow and the package, run pytest
# (unit, data, metrics, real Horovod ranks, snakemake end-to-end, and a local Slurm cluster
# that tests/slurm starts with scripts/local-cluster/slurm-up.sh). Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
snakemake --lint --configfile .test/config/config.yaml
snakefmt --check .
ruff check src tests benchmarks scripts
lint-imports  # the import contracts of pyproject.toml (the package's architecture)
# Every test must run here: a skip (no training env, no Slurm) counts as a failure.
SEGSCALE_NO_SKIP=1 python -m pytest "$@"
