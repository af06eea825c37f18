"""--nn-artifacts, --nn-artifacts-all and --nn-report end to end: real pytest runs, in process
(the -n 2 run starts its own workers), of a small suite with a model that mixes its batch, one
that cannot fit, a correct one and a Hypothesis test."""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo  # imported before the inner runs: see _imported_before_the_runs
from PIL import Image

from pytest_nnrecipe._png import _charts, _grids, _matrix, file_stem, write_test_artifacts
from pytest_nnrecipe._records import DependencyRecord, TrainingRecord

SUITE = """
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from pytest_nnrecipe import assert_can_overfit, assert_no_batch_mixing


class PerSample(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return self.lin(x)


class MixesTheBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        h = self.lin(x)
        return h - h.mean(0, keepdim=True)  # statistics over the batch


class IgnoresTheImage(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return self.bias.expand(x.shape[0], 3) + 0 * self.conv(x).sum()


def test_per_sample_model_keeps_samples_apart():
    assert_no_batch_mixing(PerSample(), torch.randn(5, 6))


@given(st.integers(2, 4))
@settings(max_examples=2, database=None)
def test_any_batch_size_keeps_samples_apart(n):
    assert_no_batch_mixing(PerSample(), torch.randn(n, 6))


def test_batch_mean_mixes_samples():
    assert_no_batch_mixing(MixesTheBatch(), torch.randn(5, 6))


def test_a_model_that_ignores_its_images_cannot_overfit():
    x, y = torch.rand(6, 3, 8, 8), torch.arange(6) % 3
    assert_can_overfit(IgnoresTheImage(), x, y, nn.CrossEntropyLoss(), max_steps=30)


def test_mean_is_caught():
    net = nn.Linear(6, 6)
    with pytest.raises(AssertionError, match="statistics over the batch"):
        assert_no_batch_mixing(lambda x: net(x) - net(x).mean(0), torch.randn(5, 6))


@pytest.mark.xfail(reason="a known bug, kept as a test", strict=True)
def test_a_known_mixing_bug():
    assert_no_batch_mixing(MixesTheBatch(), torch.randn(5, 6))
"""

MIXING = "test_models.py::test_batch_mean_mixes_samples"
OVERFIT = "test_models.py::test_a_model_that_ignores_its_images_cannot_overfit"
PASSING = "test_models.py::test_per_sample_model_keeps_samples_apart"
PROPERTY = "test_models.py::test_any_batch_size_keeps_samples_apart"

#: The pictures of the failing checks, with their sizes in pixels.
FAILED_PICTURES = {
    f"{file_stem(MIXING)}-assert_no_batch_mixing-dependencies.png": _matrix.SIZE,
    f"{file_stem(MIXING)}-assert_no_batch_mixing-batch.png": _grids.HEATMAP_SIZE,
    f"{file_stem(OVERFIT)}-assert_can_overfit-loss.png": _charts.LOSS_WITH_DYNAMICS_SIZE,
    f"{file_stem(OVERFIT)}-assert_can_overfit-batch.png": _grids.GRID_SIZE,
    f"{file_stem(OVERFIT)}-assert_can_overfit-first-layer.png": _grids.GRID_SIZE,
}


@pytest.fixture(autouse=True, scope="module")
def _imported_before_the_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The inner runs are in process, and pytester drops every module a run imports first: a
    second import of torch's lazily loaded modules (``torch._dynamo``, imported by the first
    ``optimizer.step()``, above) or of matplotlib's breaks them. So draw every kind of picture
    the suite makes once, here, before any run."""
    eye = torch.eye(4, dtype=torch.bool)
    records = [
        DependencyRecord(
            check="assert_no_batch_mixing",
            model="M",
            passed=False,
            matrix=eye,
            allowed=eye,
            method="grad",
            mode="eval",
        ),
        TrainingRecord(
            check="assert_can_overfit",
            model="M",
            passed=False,
            losses=[1.0, 0.5],
            steps=1,
            target=0.1,
            predictions=[torch.zeros(4, 3), torch.ones(4, 3)],
            prediction_steps=[0, 1],
            batch=torch.rand(4, 3, 8, 8),
            targets=torch.tensor([0, 1, 2, 0]),
            first_layer_weight=torch.randn(4, 3, 3, 3),
        ),
        TrainingRecord(
            check="assert_can_overfit",
            model="M",
            passed=False,
            losses=[],
            steps=0,
            batch=torch.rand(4, 6),
        ),
    ]
    assert len(write_test_artifacts("warm-up", records, tmp_path_factory.mktemp("warm-up"))) == 5


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the suite in process (torch is imported already; -n 2 starts its own workers)."""
    pytester.makepyfile(test_models=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=3, failed=2, xfailed=1)
    return result


def _pngs(directory: Path) -> dict[str, tuple[int, int]]:
    """File name -> size of every PNG in ``directory``, each opened and decoded in full."""
    sizes = {}
    for path in sorted(directory.glob("*")):
        with Image.open(path) as im:
            assert im.format == "PNG", path
            im.load()
            sizes[path.name] = im.size
    return sizes


def _report(result: pytest.RunResult) -> list[str]:
    """The lines of the recipe coverage table."""
    lines = result.stdout.lines
    start = next(k for k, line in enumerate(lines) if "nnrecipe: recipe coverage" in line)
    end = next(k for k in range(start + 1, len(lines)) if lines[k].startswith("====="))
    return lines[start + 1 : end]


def test_failing_checks_get_pngs_named_in_their_report_section_and_a_report_that_xdist_repeats(
    pytester: pytest.Pytester,
) -> None:
    serial = _run(pytester, "--nn-artifacts", "serial", "--nn-report")
    assert _pngs(pytester.path / "serial") == FAILED_PICTURES
    for name in FAILED_PICTURES:
        assert f"  picture: serial/{name}" in serial.stdout.lines
    serial.stdout.fnmatch_lines(
        [
            "*- nnrecipe -*",
            "seed=* (base seed 0), device=cpu",
            f"reproduce: pytest {MIXING} --nn-seed=0",
            "assert_no_batch_mixing on MixesTheBatch: FAILED (method=grad, mode=eval)",
            "  picture: *-assert_no_batch_mixing-dependencies.png",
            "*- nnrecipe -*",
            f"reproduce: pytest {OVERFIT} --nn-seed=0",
            "assert_can_overfit on IgnoresTheImage: FAILED (mode=train, "
            "optimizer=Adam(lr=0.01) (default), steps=30, target=*)",
            "  picture: *-assert_can_overfit-loss.png",
        ]
    )
    report = _report(serial)
    assert re.fullmatch(
        r"Recipe coverage: \d+ check calls in 6 tests on 4 models; 2 failed, 2 caught bugs\.",
        report[0],
    )
    # a check failing inside pytest.raises or an xfail test is a caught bug, not a failure
    mixes = report.index(next(line for line in report if line.startswith("MixesTheBatch ")))
    assert report[mixes].split()[1:] == ["ran", "passed", "caught", "failed"]
    assert report[mixes + 1].split() == ["assert_no_batch_mixing", "2", "0", "1", "1", "FAILED"]
    assert "Linear (lambda in test_mean_is_caught)" in "\n".join(report)  # not <locals>.<lambda>
    assert "assert_can_overfit 1 0 0 1 FAILED" in [" ".join(line.split()) for line in report]
    for row in [
        "Visualize just before the net * all  5 pictures in serial",
        "Overfit one batch * 1  1 FAILED",
        "Use backprop to chart dependencies * 5  1 FAILED (2 tests caught a bug)",
        "Generalize a special case * 1  Hypothesis tests ran",
    ]:
        assert any(fnmatch.fnmatchcase(line, row) for line in report), (row, report)
    assert all(len(line) <= 80 and "\x1b" not in line for line in report)

    parallel = _run(pytester, "--nn-artifacts", "parallel", "--nn-report", "-n", "2")
    assert _pngs(pytester.path / "parallel") == FAILED_PICTURES
    for name in FAILED_PICTURES:
        assert f"  picture: parallel/{name}" in parallel.stdout.lines
    assert _as_if_serial(_report(parallel)) == _as_if_serial(report)


def _as_if_serial(report: list[str]) -> list[str]:
    return [line.replace("parallel", "serial") for line in report]


def test_nothing_is_written_and_no_report_is_printed_without_the_options(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester)
    assert not list(pytester.path.rglob("*.png"))
    assert not any("recipe coverage" in line for line in result.stdout.lines)
    result.stdout.fnmatch_lines(
        [
            "assert_no_batch_mixing on MixesTheBatch: FAILED (method=grad, mode=eval)",
            "pictures: none written (run with --nn-artifacts DIR to get them)",
        ]
    )


def test_all_checks_get_pictures_with_nn_artifacts_all(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--nn-artifacts", "out", "--nn-artifacts-all")
    written = _pngs(pytester.path / "out")
    assert written.items() >= FAILED_PICTURES.items()
    assert written[f"{file_stem(PASSING)}-assert_no_batch_mixing-dependencies.png"] == _matrix.SIZE
    assert written[f"{file_stem(PASSING)}-assert_no_batch_mixing-batch.png"] == (
        _grids.HEATMAP_SIZE
    )
    assert any(name.startswith(file_stem(PROPERTY)) for name in written)
    result.stdout.fnmatch_lines([f"nnrecipe: {len(written)} pictures written to out"])


def test_without_matplotlib_it_says_once_how_to_install_it_and_keeps_the_text_pictures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    result = _run(pytester, "--nn-artifacts", "out")
    assert not (pytester.path / "out").exists() or not list((pytester.path / "out").iterdir())
    hint = (
        "install pytest-nnrecipe[plot] (matplotlib) for PNG pictures; "
        "text pictures are in the messages"
    )
    summary = [line for line in result.stdout.lines if "no PNG pictures" in line]
    assert len(summary) == 1
    assert summary[0].startswith(f"nnrecipe: no PNG pictures: {hint} (")
    result.stdout.fnmatch_lines(
        [
            "E * legend: # forbidden dependency*",
            f"pictures: none written: {hint.replace('[', '[[]')}*",
            "E * loss over 31 steps*",
            f"pictures: none written: {hint.replace('[', '[[]')}*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "ini", "error"),
    [
        pytest.param(
            ["--nn-artifacts-all"],
            None,
            "ERROR: --nn-artifacts-all (or ini nn_artifacts_all) needs a directory for the "
            "pictures: add --nn-artifacts DIR (or ini nn_artifacts = DIR).",
            id="all-without-a-directory",
        ),
        pytest.param(
            [],
            "nn_artifacts_all = true",
            "ERROR: --nn-artifacts-all (or ini nn_artifacts_all) needs*",
            id="ini-all-without-a-directory",
        ),
    ],
)
def test_it_rejects_pictures_of_all_checks_with_nowhere_to_put_them(
    pytester: pytest.Pytester, args: list[str], ini: str | None, error: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never_runs(): raise AssertionError('ran')")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([error])


def test_the_help_lists_the_report_and_artifact_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["neural-network recipe checks (pytest-nnrecipe):", "*--nn-artifacts-all*", "*--nn-report*"]
    )
    result.stdout.fnmatch_lines(["*nn_artifacts_all (bool)*", "*nn_report (bool)*"])


def test_collect_only_prints_no_coverage_report_since_nothing_ran(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_collected(): pass")
    result = pytester.runpytest("--co", "--nn-report")
    result.stdout.fnmatch_lines(["*1 test collected*"])
    assert not any("recipe coverage" in line for line in result.stdout.lines)
    assert not any("not covered" in line.lower() for line in result.stdout.lines)
