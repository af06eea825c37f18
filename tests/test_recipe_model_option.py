"""``pytest --nn-model module:factory``: the recipe as generated tests, with no test file."""

from __future__ import annotations

import shlex
import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_nnrecipe import _model_plugin

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A good factory, two broken ones and a token LM, each with its own spec, in one module.
MODELS = """
import torch
from torch import nn
from pytest_nnrecipe import specs

small = specs.classification(features=6, classes=3, batch=6)

@specs.declare(small)
def make_good():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

class BatchMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(6, 3)
    def forward(self, x):  # normalises over the batch: every sample reads the others
        return self.net(x - x.mean(0, keepdim=True))

@specs.declare(small.replace(checks=["init_loss", "batch_mixing"]))
def make_batch_mixer():
    return BatchMean()

class Blind(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(6, 3)
    def forward(self, x):
        return self.net(x * 0)  # the input never reaches the output

@specs.declare({**small, "checks": ["baseline"]})
def make_blind():
    return Blind()

class TokenLM(nn.Module):
    def __init__(self, vocab=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.head = nn.Linear(16, vocab)
    def forward(self, tokens):  # a bigram model: causal by construction
        return self.head(self.embed(tokens))

@specs.declare(lambda: specs.language_model(vocab_size=16, seq_len=6,
                                            checks=["init_loss", "causal"]))
def make_lm():
    return TokenLM()
"""


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny models: one thread per inner pytest process is fastest on a shared CPU."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess: torch's optimisers cannot be imported twice in one process.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_it_generates_one_test_per_step_and_factory_and_catches_the_broken_ones(
    pytester: pytest.Pytester, plugin_args: list[str]
) -> None:
    pytester.makepyfile(my_models=MODELS)
    pytester.makepyfile(test_unrelated="def test_not_run():\n    raise AssertionError")
    args = [f"--nn-model=my_models:{f}" for f in ("make_good", "make_batch_mixer", "make_blind")]
    result = _run(pytester, *args, "--nn-model=my_models.py:make_lm", "-rA", *plugin_args)
    result.assert_outcomes(passed=11, failed=2, skipped=4)  # test_unrelated.py is not collected
    result.stdout.fnmatch_lines_random(
        [
            "PASSED my_models.py::make_good?inputs_used?",
            "SKIPPED [[]1[]] my_models.py*: no optimizer= factory given*",
            "PASSED my_models.py::make_good?deterministic?",
            "PASSED my_models.py::make_good?init_loss?",
            "PASSED my_models.py::make_good?params_update?",
            "PASSED my_models.py::make_good?loss_decreases?",
            "PASSED my_models.py::make_good?baseline?",
            "PASSED my_models.py::make_good?overfit?",
            "PASSED my_models.py::make_good?batch_mixing?",
            "SKIPPED [[]1[]] my_models.py*: no time_dim= given (not a sequence model)",
            "SKIPPED [[]1[]] my_models.py*: no scheduler= factory given",
            "PASSED my_models.py::make_batch_mixer?init_loss?",
            "FAILED my_models.py::make_batch_mixer?batch_mixing? - assert_no_batch_mixing*",
            "FAILED my_models.py::make_blind?baseline? - assert_beats_input_independent*",
            "PASSED my_models.py::make_lm?init_loss?",
            "PASSED my_models.py::make_lm?causal?",
        ]
    )
    out = result.stdout.str()
    # Each failure is the check's own message, with the command that reproduces it.
    assert "assert_no_batch_mixing failed: output of sample" in out
    assert "assert_beats_input_independent_baseline failed: trained on its real inputs" in out
    assert "Reproduce: pytest --nn-model my_models:make_blind -k 'make_blind[baseline]'" in out
    assert "test_not_run" not in out


def test_it_runs_the_generated_tests_next_to_named_test_paths(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(my_models=MODELS)
    pytester.makepyfile(test_unrelated="def test_runs():\n    pass")
    lm = ["--nn-model=my_models:make_lm", "--nn-model=my_models.py:make_lm"]  # one factory
    result = _run(pytester, "test_unrelated.py", *lm, "-k", "runs or lm")
    result.assert_outcomes(passed=3)


def test_a_failing_step_reproduces_with_the_printed_command(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(my_models=MODELS)
    first = _run(pytester, "--nn-model=my_models:make_batch_mixer", "--nn-seed=5")
    first.assert_outcomes(passed=1, failed=1)
    line = next(s for s in first.outlines if "Reproduce: pytest" in s).split("Reproduce: pytest")
    again = _run(pytester, *shlex.split(line[1]))
    again.assert_outcomes(failed=1)  # only that step, same seed, same failure
    assert "output of sample" in again.stdout.str()


def test_the_readme_command_runs_the_example_module(pytester: pytest.Pytester) -> None:
    shutil.copy(EXAMPLES / "recipe_models.py", pytester.path / "recipe_models.py")
    fast = "init_loss or params_update or batch_mixing or causal or lr_schedule"
    result = _run(
        pytester,
        "--nn-model=recipe_models:make_cnn",
        "--nn-model=recipe_models.py:make_lm",
        "-k",
        fast,
    )
    result.assert_outcomes(passed=8, skipped=2)  # the CNN is no sequence model, has no schedule


# --- usage errors, in-process: resolving a --nn-model value never runs a test --------------

BAD_MODULE = """
import torch
from pytest_nnrecipe import specs

def no_spec():
    return torch.nn.Linear(2, 2)

def wrong_spec():
    return torch.nn.Linear(2, 2)
wrong_spec.nnrecipe_spec = 42

def incomplete_spec():
    return torch.nn.Linear(2, 2)
incomplete_spec.nnrecipe_spec = {"inputs": torch.zeros(4, 2)}

@specs.declare(specs.classification(features=2, classes=2, checks=["overfitting"]))
def bad_checks():
    return torch.nn.Linear(2, 2)

@specs.declare(specs.classification(features=2, classes=2))
def not_a_module():
    return 3

@specs.declare(specs.classification(features=2, classes=2))
def needs_args(width):
    return torch.nn.Linear(2, width)

NOT_CALLABLE = 3
"""

ERRORS = [
    ("no-colon", "bad_models", r"expected MODULE:FACTORY"),
    ("module-not-found", "no_such_module:make", r"no module named 'no_such_module'"),
    ("file-not-found", "missing/models.py:make", r"no Python file .*missing/models\.py"),
    (
        "module-raises-on-import",
        "raising_models:make",
        r"importing raising_models raised RuntimeError: boom",
    ),
    ("factory-not-found", "bad_models:make_nothing", r"bad_models has no 'make_nothing'"),
    ("factory-not-callable", "bad_models:NOT_CALLABLE", r"is a int, not a factory"),
    ("factory-needs-arguments", "bad_models:needs_args", r"needs arguments \(width\)"),
    ("missing-spec", "bad_models:no_spec", r"no_spec has no recipe spec.*specs\.declare"),
    (
        "spec-of-wrong-type",
        "bad_models:wrong_spec",
        r"not usable: expected a .*RecipeSpec.*got int",
    ),
    ("spec-dict-incomplete", "bad_models:incomplete_spec", r"missing: \['targets', 'loss_fn'\]"),
    ("spec-bad-checks", "bad_models:bad_checks", r"unknown 'overfitting'.*valid steps.*overfit"),
    (
        "factory-returns-non-module",
        "bad_models:not_a_module",
        r"not_a_module\(\) returned int, not a torch\.nn\.Module",
    ),
]


@pytest.mark.parametrize(("value", "problem"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_a_wrong_nn_model_is_a_usage_error_naming_it(
    pytestconfig: pytest.Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    problem: str,
) -> None:
    (tmp_path / "bad_models.py").write_text(textwrap.dedent(BAD_MODULE))
    (tmp_path / "raising_models.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    config = _Config(tmp_path)
    try:
        with pytest.raises(pytest.UsageError, match=rf"^--nn-model {value}: (?s:.*){problem}"):
            _model_plugin.resolve(value, config)  # type: ignore[arg-type]
    finally:
        for name in ("bad_models", "raising_models"):
            monkeypatch.delitem(__import__("sys").modules, name, raising=False)


class _Config:
    """What resolve() reads of a pytest config: the invocation dir and the rootdir."""

    def __init__(self, path: Path) -> None:
        self.rootpath = path
        self.invocation_params = type("P", (), {"dir": path})()


def test_the_usage_error_stops_the_session_on_stderr(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(my_models=MODELS)
    result = _run(pytester, "--nn-model=my_models:make_missing", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--nn-model my_models:make_missing: module my_models has no 'make_missing'*make_good*"]
    )
