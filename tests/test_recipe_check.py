"""``check_recipe``: every step in the recipe's order, each on a fresh model, one table."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from pytest_nnrecipe import _context, check_recipe, specs

SPEC = specs.classification(features=6, classes=3, batch=6)


def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


class BatchMean(nn.Module):
    """Normalises over the batch (every sample reads the others)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - x.mean(0, keepdim=True))


class Blind(nn.Module):
    """Multiplies its input by zero: it cannot learn anything from it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 0)


class Bigram(nn.Module):
    """A token model; ``peek=True`` adds the next position's embedding (reads the future)."""

    def __init__(self, vocab: int = 16, *, peek: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.head = nn.Linear(16, vocab)
        self.peek = peek

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        if self.peek:
            h = h + torch.roll(h, -1, dims=1)
        return self.head(h)


def test_a_good_model_passes_every_step_that_applies_with_a_table() -> None:
    result = check_recipe(make_mlp, **SPEC)
    assert result.passed
    assert [s.verdict for s in result.steps] == ["passed", "skipped"] + ["passed"] * 7 + [
        "skipped"
    ] * 3
    assert result["inputs_used"].figure == "1 of 1 inputs used"
    assert result["optimizer"].message.startswith("no optimizer= factory given")
    assert re.fullmatch(r"\d+ tensors identical over 3 steps", result["deterministic"].figure)
    assert re.search(r"init loss 1\.\d\d vs 1\.10 expected", result["init_loss"].figure)
    assert result["params_update"].figure == "4 of 4 parameters learn"
    assert re.fullmatch(r"overfit in \d+ steps \(loss .* <= .*\)", result["overfit"].figure)
    assert result["batch_mixing"].figure == "0 of 30 pairs mix"
    assert result["causal"].message == "no time_dim= given (not a sequence model)"
    assert result["assert_can_overfit"].result.steps == len(result["overfit"].result.losses) - 1
    lines = str(result).splitlines()
    assert lines[0].startswith("check_recipe: 8 passed, 4 skipped on Sequential in ")
    assert lines[1].split() == ["step", "check", "verdict", "time", "key", "figure"]
    assert [line.split()[0] for line in lines[2:]] == [str(i) for i in range(1, 13)]


def test_a_model_that_mixes_the_batch_fails_and_the_message_shows_every_step() -> None:
    with pytest.raises(AssertionError) as raised:
        check_recipe(BatchMean, **SPEC)
    message = str(raised.value)
    assert message.startswith("check_recipe failed: 1 of 8 steps did not pass: batch_mixing")
    table = message[message.index("  step ") :].split("\n\n")[0].splitlines()
    assert [row.split()[0] for row in table[1:]] == [str(i) for i in range(1, 13)]
    for step in (
        "inputs_used",
        "deterministic",
        "init_loss",
        "params_update",
        "loss_decreases",
        "baseline",
        "overfit",
    ):
        assert re.search(rf"{step}\s+passed", message), step
    assert re.search(r"batch_mixing\s+failed\s+\S+\s+30 of 30 pairs mix, e\.g\. sample", message)
    # The failing step's own full message, with its picture, follows the table.
    assert "--- step batch_mixing (assert_no_batch_mixing): failed" in message
    assert "assert_no_batch_mixing failed: output of sample" in message
    assert "Mixing pairs (output sample i, input sample j != i): 30 of 30" in message


def test_a_model_that_ignores_its_input_fails_every_step_that_needs_the_input() -> None:
    with pytest.raises(AssertionError) as raised:
        check_recipe(Blind, **SPEC, checks=["params_update", "baseline", "overfit"])
    message = str(raised.value)
    assert "2 of 3 steps did not pass: baseline (failed), overfit (failed)" in message
    # net.weight gets no gradient and cannot change the output: redundant (x * 0 makes it so),
    # a note; the steps that need the input fail.
    assert re.search(
        r"params_update\s+passed\s+\S+\s+1 of 2 parameters learn, 1 redundant", message
    )
    assert "assert_beats_input_independent_baseline failed:" in message
    assert "assert_can_overfit failed: the model did not fit one batch" in message
    assert re.search(r"init_loss\s+skipped\s+-\s+not selected by checks=", message)


def test_a_non_causal_token_model_fails_causality_naming_the_positions() -> None:
    lm = specs.language_model(vocab_size=16, seq_len=6)
    assert check_recipe(Bigram, **lm, checks="causal")["causal"].figure == "0 of 15 pairs leak"
    with pytest.raises(
        AssertionError, match=r"causal\s+failed.*5 of 15 pairs leak, e\.g\. step 0 <- 1"
    ):
        check_recipe(lambda: Bigram(peek=True), **lm, checks=["init_loss", "causal"])


def test_checks_selects_steps_in_the_recipes_order_and_lists_the_others() -> None:
    result = check_recipe(make_mlp, **SPEC, checks=["assert_no_batch_mixing", "init_loss"])
    assert [s.name for s in result.steps if s.verdict == "passed"] == ["init_loss", "batch_mixing"]
    skipped = {s.name: s.message for s in result.steps if s.verdict == "skipped"}
    assert skipped["overfit"] == "not selected by checks="
    assert skipped["lr_schedule"] == "not selected by checks="


def test_the_optimizer_step_checks_the_factorys_optimizer_on_the_fresh_model() -> None:
    stale = make_mlp()  # a factory that closes over another model: a classic slip
    result = check_recipe(
        make_mlp,
        **SPEC,
        checks="optimizer",
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
    )
    assert result["optimizer"].figure == "4 of 4 trainable parameters held"
    with pytest.raises(AssertionError, match=r"optimizer\s+failed\s+\S+\s+4 missing, 4 stale"):
        check_recipe(
            make_mlp,
            **SPEC,
            checks="optimizer",
            optimizer=lambda params: torch.optim.SGD(stale.parameters(), lr=0.1),
        )


def test_every_step_builds_its_own_model_under_the_same_seed() -> None:
    made: list[nn.Module] = []

    def factory() -> nn.Module:
        made.append(make_mlp())
        return made[-1]

    check_recipe(factory, **SPEC)
    assert len(made) == 8 and len({id(m) for m in made}) == 8
    first = made[0].state_dict()  # the training steps train copies: the weights are at init
    for model in made[1:]:
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, first[key], rtol=0, atol=0)


def test_a_model_instance_is_copied_for_each_step_and_nothing_is_lost() -> None:
    model = BatchMean()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    with pytest.raises(AssertionError, match="batch_mixing"):
        check_recipe(model, **SPEC, checks=["overfit", "batch_mixing"])
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_the_lr_schedule_step_runs_with_a_scheduler_factory() -> None:
    def step_lr(opt: Any) -> Any:  # decays every batch: dead after a few steps
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)

    def cosine(opt: Any) -> Any:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)

    good = check_recipe(make_mlp, **SPEC, checks="lr_schedule", scheduler=cosine, total_steps=1000)
    assert good["lr_schedule"].figure.startswith("lr peak 0.01, ")
    with pytest.raises(
        AssertionError, match=r"lr_schedule\s+failed(?s:.*)falls below 1% of its peak"
    ):
        check_recipe(make_mlp, **SPEC, checks="lr_schedule", scheduler=step_lr, total_steps=1000)


def test_the_recipe_is_recorded_under_the_model_even_when_only_the_schedule_ran() -> None:
    def cosine(opt: Any) -> Any:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)

    with _context.activate(_context.RunContext()) as ctx:
        check_recipe(make_mlp, **SPEC, checks="lr_schedule", scheduler=cosine, total_steps=1000)
    recipe = [r for r in ctx.records if r.check == "check_recipe"]
    assert [r.model for r in recipe] == ["make_mlp"]  # the factory, not the scheduler


def test_a_model_that_raises_is_an_error_row_and_the_cause_of_the_failure() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(5, 3)  # the batch has 6 features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    with pytest.raises(AssertionError) as raised:
        check_recipe(Broken, **SPEC, checks=["init_loss", "batch_mixing"])
    message = str(raised.value)
    assert "2 of 2 steps did not pass: init_loss (error), batch_mixing (error)" in message
    assert re.search(r"init_loss\s+error\s+\S+\s+RuntimeError: mat1 and mat2", message)
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_msg_replaces_the_headline_and_keeps_the_table() -> None:
    with pytest.raises(
        AssertionError, match=r"(?s)^check_recipe failed: my CNN\n.*batch_mixing\s+failed"
    ):
        check_recipe(BatchMean, **SPEC, checks="batch_mixing", msg="my CNN")


def test_the_nn_recipe_fixture_runs_on_the_tests_device(nn_recipe: Any, nn_device: Any) -> None:
    result = nn_recipe(make_mlp, **SPEC, checks="batch_mixing")
    assert result["batch_mixing"].passed and nn_device.type in ("cpu", "cuda")


def _cosine(opt: Any) -> Any:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)


BAD_ARGUMENTS = [
    (
        "unknown-check",
        dict(checks=["overfitting"]),
        ValueError,
        r"unknown 'overfitting'; valid steps, in the recipe's order: inputs_used, optimizer, deterministic, init_loss, params_update, loss_decreases, baseline, overfit, batch_mixing, causal, padding, lr_schedule",
    ),
    ("no-checks", dict(checks=[]), ValueError, r"checks=\[\]: empty; valid steps"),
    ("checks-not-names", dict(checks=3), TypeError, r"checks=3 must be step names"),
    (
        "not-a-factory",
        dict(make_model=3),
        TypeError,
        r"make_model= must be a zero-argument function",
    ),
    (
        "factory-returns-no-module",
        dict(make_model=lambda: 3, checks="init_loss"),
        AssertionError,
        r"init_loss \(error\)(?s:.*)returned int, not a torch\.nn\.Module",
    ),
    ("time-dim-not-int", dict(time_dim="1"), TypeError, r"time_dim='1' must be an int"),
    (
        "causal-without-time-dim",
        dict(checks=["causal"]),
        ValueError,
        r"selects 'causal' but time_dim= is not given",
    ),
    (
        "schedule-without-scheduler",
        dict(checks=["lr_schedule"]),
        ValueError,
        r"selects 'lr_schedule' but scheduler= is not given",
    ),
    ("scheduler-without-total-steps", dict(scheduler=_cosine), ValueError, r"total_steps= is not"),
    (
        "total-steps-without-scheduler",
        dict(total_steps=100),
        ValueError,
        r"total_steps=100 is only used .* scheduler=",
    ),
    (
        "optimizer-instance",
        dict(optimizer=torch.optim.SGD(make_mlp().parameters(), lr=0.1)),
        TypeError,
        r"optimizer= must be a factory params -> Optimizer",
    ),
    (
        "options-unknown-step",
        dict(options={"overfitt": {}}),
        ValueError,
        r"'overfitt' is not a recipe step",
    ),
    (
        "options-unknown-keyword",
        dict(options={"overfit": {"max_step": 3}}),
        TypeError,
        r"assert_can_overfit takes no keyword 'max_step' here; it takes .*max_steps",
    ),
    (
        "options-reserved-keyword",
        dict(options={"baseline": {"optimizer": None}}),
        TypeError,
        r"takes no keyword 'optimizer' here",
    ),
]


@pytest.mark.parametrize(
    ("changes", "error", "match"), [r[1:] for r in BAD_ARGUMENTS], ids=[r[0] for r in BAD_ARGUMENTS]
)
def test_bad_arguments_raise_naming_the_argument(
    changes: dict[str, Any], error: type[Exception], match: str
) -> None:
    kwargs: dict[str, Any] = {"make_model": make_mlp, **SPEC, **changes}
    with pytest.raises(error, match=match):
        check_recipe(**kwargs)


class SequenceClassifier(nn.Module):
    def __init__(self, vocab: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(32, classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens).mean(1))


BUILDERS = [
    ("classification", lambda: specs.classification(features=6, classes=3), make_mlp),
    (
        "image_classification",
        lambda: specs.image_classification(channels=2, size=(5, 4), classes=3, batch=6),
        lambda: nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 4, 3)
        ),
    ),
    (
        "sequence_classification",
        lambda: specs.sequence_classification(vocab_size=16, seq_len=5, classes=3, batch=6),
        SequenceClassifier,
    ),
    (
        "regression",
        lambda: specs.regression(features=6, outputs=2, batch=8),
        lambda: nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2)),
    ),
]


@pytest.mark.parametrize(
    ("build", "make_model"), [b[1:] for b in BUILDERS], ids=[b[0] for b in BUILDERS]
)
def test_each_builder_makes_a_spec_that_a_fitting_model_passes(build: Any, make_model: Any) -> None:
    spec = build()
    assert spec.inputs.shape[0] == spec.targets.shape[0]
    result = check_recipe(make_model, **spec)
    assert [s.name for s in result.steps if s.passed] == [
        "inputs_used",
        "deterministic",
        "init_loss",
        "params_update",
        "loss_decreases",
        "baseline",
        "overfit",
        "batch_mixing",
    ]
    again = build()  # the builders' data come from their own seeded generator
    assert torch.equal(again.inputs, spec.inputs) and torch.equal(again.targets, spec.targets)


BAD_SPECS = [
    (
        "batch-of-one",
        lambda: specs.classification(features=4, classes=2, batch=1),
        r"batch=1 must be at least 2",
    ),
    (
        "one-class",
        lambda: specs.classification(features=4, classes=1),
        r"classes=1 must be at least 2",
    ),
    ("zero-features", lambda: specs.regression(features=0), r"features=0 must be a positive int"),
    (
        "batch-above-vocab",
        lambda: specs.language_model(vocab_size=4, seq_len=3, batch=5),
        r"batch=5 > vocab_size=4",
    ),
    (
        "loss-not-callable",
        lambda: specs.RecipeSpec(torch.zeros(2, 1), torch.zeros(2), loss_fn=3),
        r"loss_fn=3 must be a callable",
    ),
    ("declare-non-spec", lambda: specs.declare(3), r"declare\(spec\) takes a RecipeSpec"),
]


@pytest.mark.parametrize(
    ("build", "match"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS]
)
def test_bad_spec_arguments_raise_naming_the_argument(build: Any, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        build()
