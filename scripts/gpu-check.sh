#!/usr/bin/env bash
# One prepared command for a CUDA machine with no network and no pip install: runs this
# checkout's test suite and examples on the GPU (--nn-gpu, pytest-xdist workers sharing the
# GPUs), then the benchmarks (the structural one on CUDA, the others on the CPUs beside it),
# and ends with one summary line per part. Exits non-zero when a part failed.
#
#   bash scripts/gpu-check.sh            # from anywhere; extra args go to both pytest runs
#
# Workers: one per CPU, at most WORKERS_PER_GPU per GPU (each holds a CUDA context of about
# half a GiB, and the tests are mostly CPU-bound: one H200 serves 16 of them), at least 2.
# Budget on one H200 with 16 CPUs: tests + examples under 4 minutes, benchmarks under 2.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
WORKERS_PER_GPU="${WORKERS_PER_GPU:-16}"
BENCH_SECONDS="${BENCH_SECONDS:-110}"
GPU_FLAG="${GPU_FLAG---nn-gpu}"  # GPU_FLAG= runs the same on the CPU (to try the script)
LOGS="$(mktemp -d)"

echo "== environment"
"$PY" - <<'PY' || exit 1
import importlib.util, platform, sys
print("python", platform.python_version())
missing = [m for m in ("pytest", "torch", "numpy", "hypothesis") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing (no pip install here): {', '.join(missing)}")
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(f"  cuda:{i}", torch.cuda.get_device_name(i))
PY
command -v nvidia-smi >/dev/null && nvidia-smi -L

# Not installed (no pytest11 entry point): load the plugin by name in every pytest process,
# the nested pytester runs of the test suite included. (Installed and named both works too:
# the plugin is registered once.)
if ! "$PY" -c 'import importlib.metadata as m, sys; sys.exit(not any(e.name == "nnrecipe" for e in m.entry_points(group="pytest11")))'; then
    export PYTEST_PLUGINS=pytest_nnrecipe.plugin
    echo "plugin loaded from the checkout: PYTEST_PLUGINS=$PYTEST_PLUGINS"
fi
XDIST=()
if "$PY" -c 'import xdist' 2>/dev/null; then
    WORKERS="$("$PY" - "$WORKERS_PER_GPU" <<'PY'
import os, sys, torch
cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
gpus = max(torch.cuda.device_count(), 1)
print(max(2, min(cpus, gpus * int(sys.argv[1]))))
PY
)"
    XDIST=(-n "$WORKERS")
    echo "pytest-xdist: $WORKERS workers on $("$PY" -c 'import torch; print(torch.cuda.device_count())') GPU(s)"
else
    echo "pytest-xdist not installed: running serially"
fi

declare -A SUMMARY
status=0
suite() {  # suite NAME PATH [args...]: one pytest run, its last line kept for the summary
    local name="$1" path="$2"
    shift 2
    echo
    echo "== $name: pytest $GPU_FLAG ${XDIST[*]} $path $*"
    local start=$SECONDS
    "$PY" -m pytest $GPU_FLAG "${XDIST[@]}" -p no:cacheprovider -ra "$path" "$@" 2>&1 | tee "$LOGS/$name.log"
    local rc=${PIPESTATUS[0]}
    local last
    last="$(grep -E '^=+ .* in [0-9.]+s' "$LOGS/$name.log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')"
    if [ "$rc" -eq 0 ]; then verdict=passed; else verdict="FAILED (exit $rc)"; status=1; fi
    SUMMARY[$name]="$verdict: ${last:-no pytest summary line} [$((SECONDS - start)) s wall]"
}
suite tests tests "$@"
suite examples examples "$@"

echo
echo "== benchmarks (each at most ${BENCH_SECONDS}s; structural on CUDA, the others on the CPUs)"
start=$SECONDS
pids=()
names=()
for bench in benchmarks/bench_*.py; do
    [ -e "$bench" ] || continue
    name="$(basename "$bench" .py)"
    args=()
    [ "$name" = bench_training ] && args=(3)  # 3 seeds: the sweep's counts, in the budget
    OMP_NUM_THREADS=1 timeout "$BENCH_SECONDS" "$PY" "$bench" "${args[@]}" >"$LOGS/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
done
bench_lines=()
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    rc=$?
    name="${names[$i]}"
    echo
    echo "-- $name"
    cat "$LOGS/$name.log"
    if [ "$rc" -eq 124 ]; then
        bench_lines+=("$name: TIMED OUT after ${BENCH_SECONDS}s")
        status=1
    elif [ "$rc" -ne 0 ]; then
        bench_lines+=("$name: FAILED (exit $rc)")
        status=1
    elif [ "$name" = bench_structural ]; then
        line="$(tail -1 "$LOGS/$name.log")"
        case "$line" in *" 0 over target"*) ;; *) status=1 ;; esac
        bench_lines+=("$line")
    else
        bench_lines+=("$name: ran")
    fi
done
joined="$(printf '%s; ' "${bench_lines[@]}")"
SUMMARY[benchmarks]="${joined%; } [$((SECONDS - start)) s wall]"

echo
echo "== summary"
for part in tests examples benchmarks; do
    printf '%-11s %s\n' "$part:" "${SUMMARY[$part]}"
done
if [ "$status" -eq 0 ]; then echo "gpu-check: all passed"; else echo "gpu-check: FAILED"; fi
rm -rf "$LOGS"
exit "$status"
