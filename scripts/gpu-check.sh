#!/usr/bin/env bash
# One prepared command for a CUDA machine with no network and no pip install: runs this
# checkout's test suite and examples on the GPU (--nn-gpu, one xdist worker per GPU when
# pytest-xdist is there), then the benchmarks. Prints everything; exits non-zero on failure.
#
#   bash scripts/gpu-check.sh            # from anywhere; extra args go to both pytest runs
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"

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
    XDIST=(-n "$("$PY" -c 'import torch; print(max(2, torch.cuda.device_count()))')")
else
    echo "pytest-xdist not installed: running serially"
fi

status=0
run() {
    echo
    echo "== $*"
    "$@" || status=1
}
run "$PY" -m pytest --nn-gpu "${XDIST[@]}" -p no:cacheprovider -ra tests "$@"
run "$PY" -m pytest --nn-gpu "${XDIST[@]}" -p no:cacheprovider -ra examples "$@"
for bench in benchmarks/bench_*.py; do
    [ -e "$bench" ] && run "$PY" "$bench"
done
echo
if [ "$status" -eq 0 ]; then echo "gpu-check: all passed"; else echo "gpu-check: FAILED"; fi
exit "$status"
