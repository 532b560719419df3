#!/usr/bin/env bash
# Run every benchmark, each with its environment's python, and print a summary table.
#
#   bash benchmarks/run.sh [NAME ...]      (from anywhere; NAME e.g. slicing metrics)
#
# Each benchmark compares two things side by side in one run and prints as its last line
# "<name>: <value>". A failing benchmark is reported and the rest still run; the exit status
# is non-zero if any failed. Full outputs go to benchmarks/out/<bench>.log (ignored by git).
set -u
cd "$(dirname "$0")/.."
WF=${SEGSCALE_BENCH_PY:-.venv/bin/python}
TR=${SEGSCALE_BENCH_TRAIN_PY:-.venv-train/bin/python}
mkdir -p benchmarks/out

# bench file | interpreter | goal (op value, or "-")
BENCHES=(
  "slicing|$WF|<= 1.5"
  "metrics|$WF|<= 1.5"
  "dag|$WF|-"
  "train_overhead|$TR|<= 1.02"
  "train_scaling|$TR|>= 0.9"
  "train_startup|$TR|<= 139"
  "train_input|$TR|>= 1"
  "local_parallelism|$TR|-"
)
selected=("$@")
failed=0
rows=()
for entry in "${BENCHES[@]}"; do
  IFS="|" read -r bench py goal <<<"$entry"
  if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" $bench "* ]]; then
    continue
  fi
  log="benchmarks/out/$bench.log"
  echo "=== bench_$bench.py ($py)"
  start=$SECONDS
  (cd benchmarks && "../$py" "bench_$bench.py") >"$log" 2>&1
  rc=$?
  tail -n 12 "$log" | sed 's/^/    /'
  last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
  if [ $rc -ne 0 ] || ! [[ "$last" =~ ^[a-z_0-9]+:\ [-0-9.e+]+$ ]]; then
    failed=$((failed + 1))
    rows+=("$bench|FAILED (exit $rc)|$goal|no|$((SECONDS - start))")
    continue
  fi
  name=${last%%:*}
  value=${last#*: }
  met="-"
  if [ "$goal" != "-" ]; then
    op=${goal%% *}
    target=${goal#* }
    if awk -v v="$value" -v t="$target" -v op="$op" \
        'BEGIN { exit !((op == "<=" && v <= t) || (op == ">=" && v >= t)) }'; then
      met=yes
    else
      met=no
    fi
  fi
  rows+=("$name|$value|$goal|$met|$((SECONDS - start))")
done

echo
printf '| %-18s | %-16s | %-8s | %-4s | %6s |\n' name value goal met "time s"
printf '|%s|%s|%s|%s|%s|\n' "--------------------" "------------------" "----------" \
  "------" "--------"
for row in "${rows[@]}"; do
  IFS="|" read -r name value goal met secs <<<"$row"
  printf '| %-18s | %-16s | %-8s | %-4s | %6s |\n' "$name" "$value" "$goal" "$met" "$secs"
done
if [ $failed -gt 0 ]; then
  echo "$failed benchmark(s) failed; see benchmarks/out/*.log" >&2
  exit 1
fi
