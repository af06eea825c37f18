"""How close a training verdict was: the key figure next to its threshold, and a verdict within
the stated band labelled borderline with the steps or batch size that would make it decisive.

Each check runs under the same seed twice in a test (the training is deterministic under it):
once to measure, once with the threshold moved next to what was measured.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from pytest_nnrecipe import (
    BaselineComparison,
    Closeness,
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_init_loss,
    assert_loss_decreases,
)
from pytest_nnrecipe._recipe._key_figures import figure


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


def batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 8, generator=g), torch.arange(n) % 4


class SignOnly(nn.Module):
    """Reads only the sign of its first feature: the input tells two groups apart, not four
    classes, so it closes part of the distance to the floor and stays there."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, :1].sign().expand(-1, 8).contiguous())


class Ignores(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 0)


# --- the sentence ---------------------------------------------------------------------------


def test_a_figure_within_the_band_is_borderline_and_names_what_would_decide_it():
    close = Closeness("share of the distance closed", 0.46, 0.5, True, 0.1, "steps=400", True)
    assert close.borderline and not close.passed
    assert str(close) == (
        "share of the distance closed 46% (at least 50%): borderline, 4 points from the "
        "threshold (within 10 points), another seed could flip it; steps=400 would make it "
        "decisive"
    )


def test_a_figure_outside_the_band_is_clear():
    close = Closeness("best loss", 0.9, 0.05, False, 0.05, "max_steps=2000")
    assert not close.borderline and not close.passed
    assert str(close) == (
        "best loss 0.9 (at most 0.05): clear, 0.85 from the threshold (borderline within 0.05)"
    )


# --- assert_beats_input_independent_baseline ------------------------------------------------


def test_the_baseline_result_gives_the_closed_share_next_to_the_margin():
    x, y = batch()
    result = assert_beats_input_independent_baseline(mlp(), x, y, nn.CrossEntropyLoss(), steps=60)
    close = result.closeness
    assert close is not None and close.threshold == pytest.approx(0.5) and close.value > 0.6
    assert not close.borderline
    expected = 1 - (result.final - result.floor) / (result.baseline_final - result.floor)
    assert close.value == pytest.approx(expected)


def test_a_baseline_failure_just_under_the_margin_is_labelled_borderline_with_more_steps():
    x, y = batch()
    loss = nn.CrossEntropyLoss()
    # margin: the share of the distance that may remain (the real run closes 1 - margin)
    measured = assert_beats_input_independent_baseline(SignOnly(), x, y, loss, steps=60, margin=0.9)
    closed = measured.closeness.value
    assert 0.1 < closed < 0.9  # the sign tells half of what the labels need
    with pytest.raises(AssertionError) as failed:
        assert_beats_input_independent_baseline(
            SignOnly(), x, y, loss, steps=60, margin=1 - closed - 0.05
        )
    message = str(failed.value)
    assert f"share of the distance closed {closed:.0%} (at least {closed + 0.05:.0%})" in message
    assert "borderline, 5 points from the threshold (within 10 points)" in message
    assert "steps=240 would make it decisive" in message


def test_a_model_that_ignores_its_input_fails_the_baseline_clearly():
    x, y = batch()
    with pytest.raises(AssertionError, match=r"closed -?\d+% \(at least 50%\): clear"):
        assert_beats_input_independent_baseline(Ignores(), x, y, nn.CrossEntropyLoss(), steps=40)


# --- assert_can_overfit ---------------------------------------------------------------------


def test_an_overfit_that_needed_almost_every_step_passes_as_borderline():
    x, y = batch()
    loss = nn.CrossEntropyLoss()
    needed = assert_can_overfit(mlp(), x, y, loss).steps
    result = assert_can_overfit(mlp(), x, y, loss, max_steps=needed + 1)
    close = result.closeness
    assert close is not None and close.passed and close.borderline
    assert (close.figure, close.value, close.threshold) == (
        "steps to the target",
        needed,
        needed + 1,
    )
    assert close.decisive == f"max_steps={4 * (needed + 1)}"
    roomy = assert_can_overfit(mlp(), x, y, loss, max_steps=4 * needed).closeness
    assert roomy is not None and not roomy.borderline


def test_an_overfit_stopped_just_short_of_the_target_is_labelled_borderline():
    x, y = batch()
    loss = nn.CrossEntropyLoss()
    needed = assert_can_overfit(mlp(), x, y, loss).steps
    with pytest.raises(AssertionError) as failed:
        assert_can_overfit(mlp(), x, y, loss, max_steps=needed - 1)
    message = str(failed.value)
    assert re.search(r"best loss [\d.]+ \(at most [\d.]+\): borderline", message)
    assert f"max_steps={4 * (needed - 1)} would make it decisive" in message


def test_an_overfit_that_stalls_far_above_the_target_is_clear():
    x, y = batch()
    with pytest.raises(AssertionError, match=r"best loss [\d.]+ \(at most [\d.]+\): clear"):
        assert_can_overfit(Ignores(), x, y, nn.CrossEntropyLoss(), max_steps=300)


# --- assert_loss_decreases ------------------------------------------------------------------


def test_a_decrease_just_short_of_min_decrease_is_borderline_with_more_steps():
    x, y = batch()
    loss = nn.CrossEntropyLoss()
    sgd = lambda p: torch.optim.SGD(p, lr=0.01)  # noqa: E731  (a slow, smooth decrease)
    measured = assert_loss_decreases(mlp(), x, y, loss, optimizer=sgd, min_decrease=0.0)
    decrease = measured.relative_decrease
    assert measured.closeness is not None and measured.closeness.value == decrease
    with pytest.raises(AssertionError) as failed:
        assert_loss_decreases(mlp(), x, y, loss, optimizer=sgd, min_decrease=decrease * 1.2)
    message = str(failed.value)
    assert (
        f"relative decrease {decrease:.0%} (at least {decrease * 1.2:.0%}): borderline" in message
    )
    assert "steps=80 would make it decisive" in message


# --- assert_init_loss -----------------------------------------------------------------------


def test_the_init_loss_result_gives_the_loss_next_to_the_highest_that_passes():
    x, y = batch(64)
    result = assert_init_loss(mlp(), x, y, nn.CrossEntropyLoss())
    close = result.closeness
    assert close is not None and close.value == result.loss
    assert close.threshold == pytest.approx(
        result.expected * (1 + result.rtol) + result.noise_allowance
    )
    assert not close.borderline


def test_an_init_loss_within_the_sampling_allowance_of_the_bound_names_a_larger_batch():
    x, y = batch(16)
    model = mlp()
    with torch.no_grad():
        model[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))  # a loss far above log(4)
    loss = nn.CrossEntropyLoss()
    measured = assert_init_loss(model, x, y, loss, rtol=10.0)
    allowance = measured.noise_allowance
    assert allowance > 0
    # the highest passing loss half an allowance above the measured one
    rtol = (measured.loss + allowance / 2 - allowance - measured.expected) / measured.expected
    assert rtol > 0
    result = assert_init_loss(model, x, y, loss, rtol=rtol)
    close = result.closeness
    assert close is not None and close.passed and close.borderline
    # the allowance shrinks as 1 / n: below the distance (half of it) from about twice the batch
    size = re.fullmatch(r"a batch of (\d+) samples", close.decisive or "")
    assert size is not None and 32 <= int(size[1]) <= 33


def test_an_init_loss_given_as_expected_is_borderline_within_a_tenth_of_the_tolerance():
    x, y = batch(64)
    loss = nn.CrossEntropyLoss()
    measured = assert_init_loss(mlp(), x, y, loss)
    with pytest.raises(AssertionError) as failed:
        # the loss sits 1% of expected above the highest that passes; the tolerance is 20%
        assert_init_loss(mlp(), x, y, loss, expected=measured.loss / 1.21, rtol=0.2)
    message = str(failed.value)
    assert re.search(r"loss at init [\d.]+ \(at most [\d.]+\): borderline", message)
    assert "would make it decisive" not in message  # no batch size sharpens a given optimum


# --- the recipe's table ---------------------------------------------------------------------


def test_the_recipe_table_marks_a_borderline_step_and_what_would_decide_it():
    close = Closeness("share of the distance closed", 0.46, 0.5, True, 0.1, "steps=400", True)
    result = BaselineComparison((1.0,), (1.0,), 0.3, 0.5, 0.1, closeness=close)
    assert figure("baseline", result, None) == (
        "loss 0.3 vs 0.5 on zeroed inputs, 46% of the gap closed (50% needed); "
        "borderline, steps=400 to decide"
    )
    clear = BaselineComparison(
        (1.0,),
        (1.0,),
        0.3,
        0.5,
        0.1,
        closeness=Closeness("share of the distance closed", 0.8, 0.5, True, 0.1, "steps=400", True),
    )
    assert "borderline" not in figure("baseline", clear, None)
