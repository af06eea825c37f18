#!/usr/bin/env bash
# Runs the example suites once per base seed, as a user's CI with another --nn-seed would, and
# prints one line per seed and a count: a verdict that depends on the seed shows up here.
#
#   bash scripts/examples-over-seeds.sh            # seeds 1..20
#   SEEDS=5 FIRST=100 bash scripts/examples-over-seeds.sh -n 2   # seeds 100..104, 2 workers
#
# Extra arguments go to every pytest run. Exits non-zero when a seed failed; each failing
# seed's log is kept and its path printed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
SEEDS="${SEEDS:-20}"
FIRST="${FIRST:-1}"
LOGS="$(mktemp -d)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

green=0
failing=()
for ((k = FIRST; k < FIRST + SEEDS; k++)); do
    log="$LOGS/seed-$k.log"
    if "$PY" -m pytest examples -q -p no:cacheprovider --nn-seed="$k" "$@" >"$log" 2>&1; then
        green=$((green + 1))
        echo "seed $k: passed ($(tail -n 1 "$log" | tr -d '=' | sed 's/^ *//'))"
    else
        failing+=("$k")
        echo "seed $k: FAILED ($(tail -n 1 "$log" | tr -d '=' | sed 's/^ *//')); log: $log"
        grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
    fi
done
echo "examples over seeds $FIRST..$((FIRST + SEEDS - 1)): $green of $SEEDS seeds green" \
    "${failing[*]:+(failing seeds: ${failing[*]})}"
[ "${#failing[@]}" -eq 0 ]
