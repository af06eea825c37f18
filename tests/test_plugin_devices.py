"""--nn-gpu: usability at start, one GPU per xdist worker, nn_gpu skips, CPU threads per worker."""

from __future__ import annotations

import os
import re

import pytest

from pytest_nnrecipe import _devices

# --- the GPU-pinning rule as a pure function ----------------------------------------------

PLACEMENTS = [
    # (worker id, caller's CUDA_VISIBLE_DEVICES, device count, cuda started) -> Placement
    pytest.param(None, None, 2, False, _devices.Placement("cuda:0"), id="no-xdist"),
    pytest.param("master", "3", 1, False, _devices.Placement("cuda:0"), id="xdist-controller"),
    pytest.param("gw0", None, 2, False, _devices.Placement("cuda:0", "0"), id="gw0-of-2"),
    pytest.param("gw1", None, 2, False, _devices.Placement("cuda:0", "1"), id="gw1-of-2"),
    pytest.param("gw5", None, 4, False, _devices.Placement("cuda:0", "1"), id="gw5-wraps-mod-4"),
    pytest.param("gw1", None, 1, False, _devices.Placement("cuda:0", "0"), id="gw1-shares-one"),
    pytest.param("gw1", "2,5", 2, False, _devices.Placement("cuda:0", "5"), id="caller-list"),
    pytest.param("gw2", "2, 5", 2, False, _devices.Placement("cuda:0", "2"), id="caller-list-mod"),
    pytest.param(
        "gw1",
        "GPU-aaa,GPU-bbb",
        2,
        False,
        _devices.Placement("cuda:0", "GPU-bbb"),
        id="caller-uuids",
    ),
    pytest.param("gw3", None, 2, True, _devices.Placement("cuda:1"), id="cuda-already-started"),
    pytest.param("gw1", "7", 2, False, _devices.Placement("cuda:1"), id="list-shorter-than-count"),
]


@pytest.mark.parametrize(("worker", "visible", "count", "started", "expected"), PLACEMENTS)
def test_each_xdist_worker_takes_visible_device_worker_index_mod_count(
    worker: str | None,
    visible: str | None,
    count: int,
    started: bool,
    expected: _devices.Placement,
) -> None:
    assert _devices.place(worker, visible, count, cuda_started=started) == expected


def test_placement_without_devices_is_refused() -> None:
    with pytest.raises(ValueError, match=r"count=0"):
        _devices.place("gw0", None, 0)


@pytest.mark.parametrize(
    ("worker", "number"),
    [("gw0", 0), ("gw12", 12), ("master", None), (None, None), ("gwx", None), ("xgw1", None)],
)
def test_worker_numbers_come_from_xdist_worker_ids(worker: str | None, number: int | None) -> None:
    assert _devices.worker_number(worker) == number


@pytest.mark.parametrize(
    ("cpus", "workers", "threads"),
    [(16, 2, 8), (16, 3, 5), (2, 2, 1), (2, 4, 1), (1, 1, 1), (None, 2, 1), (8, 0, 8)],
)
def test_each_worker_gets_its_share_of_the_cpus(
    cpus: int | None, workers: int, threads: int
) -> None:
    assert _devices.threads_per_worker(cpus, workers) == threads


UNUSABLE = [
    pytest.param(
        _devices.CudaProbe("2.13.0+cpu", False, None, 0),
        None,
        r"torch 2\.13\.0\+cpu has no CUDA support",
        id="cpu-build",
    ),
    pytest.param(
        _devices.CudaProbe("2.13.0+cu126", True, "12.6", 0),
        "",
        r"no CUDA device visible: CUDA_VISIBLE_DEVICES=''",
        id="hidden-by-env",
    ),
    pytest.param(
        _devices.CudaProbe("2.11.0+cu126", True, "12.6", 0),
        None,
        r"no CUDA device found \(torch 2\.11\.0\+cu126, CUDA 12\.6; .*nvidia-smi",
        id="no-driver",
    ),
]


@pytest.mark.parametrize(("probe", "visible", "why"), UNUSABLE)
def test_it_says_why_cuda_is_unusable_and_what_to_do(
    probe: _devices.CudaProbe, visible: str | None, why: str
) -> None:
    message = _devices.why_unusable(probe, visible)
    assert message is not None
    assert message.startswith("--nn-gpu: ")
    assert re.search(why, message), message
    assert "Drop --nn-gpu" in message and "CUDA_VISIBLE_DEVICES" in message


def test_one_visible_device_is_usable() -> None:
    assert _devices.why_unusable(_devices.CudaProbe("2.13.0+cu126", True, "12.6", 1), None) is None


# --- through pytest -----------------------------------------------------------------------


def test_it_stops_at_start_when_nn_gpu_finds_no_usable_device(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, plugin_args: list[str]
) -> None:
    # An empty CUDA_VISIBLE_DEVICES hides every GPU, so this holds on a CUDA machine too.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pytester.makepyfile("def test_never_runs(): raise AssertionError('ran')")
    result = pytester.runpytest_subprocess("--nn-gpu", *plugin_args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = next(line for line in result.stderr.lines if line.startswith("ERROR:"))
    assert error.startswith("ERROR: --nn-gpu: ")
    # CPU build of torch, or a CUDA build with every device hidden:
    assert ("has no CUDA support" in error) or (
        "no CUDA device visible: CUDA_VISIBLE_DEVICES=''" in error
    )
    result.stderr.fnmatch_lines(["*Drop --nn-gpu to run on the CPU*"])
    result.stdout.no_fnmatch_line("*ran*")


def test_it_skips_gpu_tests_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.nn_gpu
        def test_on_gpu():
            raise AssertionError("must not run without --nn-gpu")

        @pytest.mark.nn_gpu
        class TestGpuClass:
            def test_in_class(self):
                raise AssertionError("must not run without --nn-gpu")

        def test_on_cpu():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    reason = "SKIPPED [[]1[]] *: nn_gpu test: needs CUDA, run with --nn-gpu"
    result.stdout.fnmatch_lines([reason, reason])


THREADS_CONFTEST = """
import os

if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
    import torch  # gw0: torch imported before the plugin's configure; gw1: by the test
"""

THREADS_TEST = """
import os
import torch

def test_threads(request):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    (request.config.rootpath / f"threads-{worker}.txt").write_text(str(torch.get_num_threads()))
"""


@pytest.mark.parametrize("omp", [None, "2"], ids=["cap", "user-set-omp-threads"])
def test_each_xdist_worker_caps_torch_threads_to_its_share_of_cpus(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, omp: str | None
) -> None:
    # not inherited from this run's own xdist worker, if any
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)
    if omp is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    pytester.makeconftest(THREADS_CONFTEST)
    pytester.makepyfile(THREADS_TEST)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each")
    result.assert_outcomes(passed=2)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # torch clamps OMP_NUM_THREADS to the CPUs it sees; the cap alone would give cpus // 2.
    expected = min(int(omp), cpus or 1) if omp is not None else max(1, (cpus or 1) // 2)
    seen = {p.name: int(p.read_text()) for p in pytester.path.glob("threads-*.txt")}
    assert seen == {"threads-gw0.txt": expected, "threads-gw1.txt": expected}


def test_a_conftest_that_chose_fewer_torch_threads_keeps_them_under_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest("import torch\ntorch.set_num_threads(1)\n")
    pytester.makepyfile(THREADS_TEST)
    # one worker: its share is every CPU, more than the 1 thread the conftest asked for
    result = pytester.runpytest_subprocess("-n", "1")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "threads-gw0.txt").read_text() == "1"


# --- on a CUDA machine (scripts/gpu-check.sh runs these with --nn-gpu) --------------------

# Without xdist both files run in one process: the second test finds CUDA started by the first
# (by design), so what counts is whether CUDA had started before the first test of a process.
GPU_TEST = """
import os
import sys
import torch

def test_device(nn_device, request):
    started_before = torch.cuda.is_initialized()
    first = not hasattr(sys, "nn_gpu_test_ran")
    sys.nn_gpu_test_ran = True
    x = torch.ones(3, device=nn_device)
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    (request.config.rootpath / f"gpu-{worker}-{request.node.path.stem}.txt").write_text(
        f"{nn_device}|{os.environ.get('CUDA_VISIBLE_DEVICES')}|{started_before}|"
        f"{x.device}|{torch.cuda.current_device()}|{first}"
    )
"""


@pytest.mark.nn_gpu
def test_it_runs_on_the_gpu_pinned_per_worker_without_starting_cuda_early(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, plugin_args: list[str]
) -> None:
    import torch

    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    pytester.makepyfile(test_a=GPU_TEST, test_b=GPU_TEST)
    result = pytester.runpytest_subprocess("--nn-gpu", *plugin_args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["nnrecipe: torch *, device cuda*, base seed 0 *--nn-gpu)"])
    reports = sorted(pytester.path.glob("gpu-*.txt"))
    firsts = [p.read_text().endswith("|True") for p in reports]
    assert len(reports) == 2 and sum(firsts) == (2 if plugin_args[-1:] == ["2"] else 1), (
        reports
    )  # per process
    for path in reports:
        device, env, started, tensor_device, current, first = path.read_text().split("|")
        if first == "True":
            assert started == "False", f"CUDA started before any test touched it: {path.name}"
        assert device == tensor_device == "cuda:0" and current == "0"
        if plugin_args[-1:] == ["2"]:  # two workers (no xdist, and -n 0, run in this process)
            worker = int(path.name.split("-")[1].removeprefix("gw"))
            entries = visible.split(",") if visible else [str(i) for i in range(count)]
            assert env == entries[worker % count].strip(), path.name
        else:
            assert env == str(visible)
