#!/usr/bin/env bash
# The main job on a fresh machine: set up, run the whole DAG on the generated demo data
# with the local profile (Horovod ranks as local processes), predict scaling beyond this
# machine (predict_scaling), then build the HTML report of both.
# Extra arguments go to snakemake (e.g. -n for a dry run, --forceall).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
TARGETS=(all predict_scaling)
snakemake --profile profiles/local "${TARGETS[@]}" "$@"
snakemake --profile profiles/local --report results/report.html "${TARGETS[@]}"
echo "demo: figures in results/figures/, tables in results/tables/, report results/report.html"
