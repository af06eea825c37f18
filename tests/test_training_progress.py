"""assert_loss_decreases and assert_beats_input_independent_baseline."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_beats_input_independent_baseline, assert_loss_decreases


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


def batch():
    return torch.randn(8, 8), torch.arange(8) % 4


def test_a_correct_model_lowers_its_loss():
    x, y = batch()
    result = assert_loss_decreases(mlp(), x, y, nn.CrossEntropyLoss())
    assert result.final < result.initial and result.relative_decrease >= 0.05


def test_gradient_ascent_is_reported_as_the_loss_going_up():
    x, y = batch()
    with pytest.raises(AssertionError, match=r"(?s)did not decrease.*the loss went up"):
        assert_loss_decreases(
            mlp(),
            x,
            y,
            nn.CrossEntropyLoss(),
            optimizer=lambda p: torch.optim.SGD(p, lr=0.1, maximize=True),
        )


def test_a_learning_rate_of_zero_fails_with_both_curves():
    x, y = batch()
    with pytest.raises(AssertionError, match=r"(?s)[+-]0\.0%\).*loss over 21 steps.*gradient norm"):
        assert_loss_decreases(
            mlp(), x, y, nn.CrossEntropyLoss(), optimizer=lambda p: torch.optim.SGD(p, lr=0)
        )


def test_a_model_that_reads_its_input_beats_the_zeroed_baseline():
    x, y = batch()
    result = assert_beats_input_independent_baseline(mlp(), x, y, nn.CrossEntropyLoss(), steps=60)
    assert result.final < 0.5 * result.baseline_final


class Ignores(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        return self.net(x * 0)


def test_a_model_that_ignores_its_input_fails_with_both_curves():
    x, y = batch()
    with pytest.raises(AssertionError) as info:
        assert_beats_input_independent_baseline(Ignores(), x, y, nn.CrossEntropyLoss(), steps=40)
    text = str(info.value)
    assert "does not use its input" in text
    # Both curves on one scale: a header with the shared range, then one row per run.
    lines = text.splitlines()
    head = next(k for k, line in enumerate(lines) if "one shared scale" in line)
    assert lines[head].startswith("loss over 41 steps, one shared scale")
    assert lines[head + 1].split()[:2] == ["real", "inputs"]
    assert lines[head + 2].split()[:2] == ["zeroed", "inputs"]
    assert lines[head + 3].split()[0] == "target"


def test_the_baseline_records_both_runs_with_the_targets_and_the_optimizer():
    from pytest_nnrecipe._context import RunContext, activate

    x, y = batch()
    ctx = RunContext(nodeid="t", seed=0)
    with activate(ctx):
        assert_beats_input_independent_baseline(mlp(), x, y, nn.CrossEntropyLoss(), steps=30)
    record = ctx.records[0]
    assert len(record.losses) == len(record.baseline_losses) == 31
    assert torch.equal(record.targets, y) and record.mode == "train"
    assert record.optimizer == "Adam(lr=0.01) (default)"
    assert record.first_layer_weight is None  # no conv layer


class TokenModel(nn.Module):
    def __init__(self, *, use_ids: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        self.head = nn.Linear(16, 4)
        self.use_ids = use_ids

    def forward(self, input_ids, attention_mask):
        ids = input_ids if self.use_ids else torch.zeros_like(input_ids)
        h = (self.embed(ids) * attention_mask.unsqueeze(-1)).sum(1) / attention_mask.sum(1, True)
        return self.head(h)


def test_token_ids_are_zeroed_and_zero_selects_the_inputs():
    ids = torch.randint(1, 16, (8, 5))
    mask = torch.ones(8, 5, dtype=torch.long)
    y = torch.arange(8) % 4
    inputs = {"input_ids": ids, "attention_mask": mask}
    assert_beats_input_independent_baseline(
        TokenModel(), inputs, y, nn.CrossEntropyLoss(), steps=60, zero=["input_ids"]
    )
    with pytest.raises(AssertionError, match=r"zeroed inputs \(inputs\['input_ids'\]\)"):
        assert_beats_input_independent_baseline(
            TokenModel(use_ids=False),
            inputs,
            y,
            nn.CrossEntropyLoss(),
            steps=40,
            zero="input_ids",
        )


class LengthModel(nn.Module):
    """Reads the attention mask only: the mean of learned position vectors over the real
    positions, so it tells sequences of different lengths apart."""

    def __init__(self) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(6, 16))
        self.head = nn.Linear(16, 4)

    def forward(self, input_ids, attention_mask):
        real = attention_mask.unsqueeze(-1).float()
        return self.head((self.position * real).sum(1) / real.sum(1))


def test_zero_maps_inputs_to_constants_so_a_mask_can_mark_every_position_real():
    mask = (torch.arange(6) < torch.tensor([3, 4, 5, 6])[:, None]).long()  # lengths 3..6
    inputs = {"input_ids": torch.randint(1, 16, (4, 6)), "attention_mask": mask}
    y = torch.arange(4)  # one label per length: the mask alone gives the answer
    # The mask kept, the baseline reads the lengths as well as the real run does...
    with pytest.raises(AssertionError, match=r"zeroed inputs \(inputs\['input_ids'\]\)"):
        assert_beats_input_independent_baseline(
            LengthModel(), inputs, y, nn.CrossEntropyLoss(), steps=60, zero=["input_ids"]
        )
    # ... every position real, it sees one input for all samples and the real run wins.
    blank = {"input_ids": 0, "attention_mask": 1}
    result = assert_beats_input_independent_baseline(
        LengthModel(), inputs, y, nn.CrossEntropyLoss(), steps=60, zero=blank
    )
    assert result.baseline_final == pytest.approx(math.log(4), abs=0.02)  # a constant's best
    assert torch.equal(inputs["attention_mask"], mask)  # the user's mask is left as it was
    with pytest.raises(
        AssertionError,
        match=r"zeroed inputs \(inputs\['attention_mask'\] set to 1, inputs\['input_ids'\]\)",
    ):
        assert_beats_input_independent_baseline(
            TokenModel(use_ids=False), inputs, y, nn.CrossEntropyLoss(), steps=40, zero=blank
        )


def test_zeroing_an_integer_mask_that_breaks_the_model_asks_for_zero():
    ids = torch.randint(1, 16, (8, 5))
    inputs = {"input_ids": ids, "attention_mask": torch.ones(8, 5, dtype=torch.long)}
    with pytest.raises(ValueError, match=r"cannot run on all-zero inputs.*zero=\['input_ids'\]"):
        assert_beats_input_independent_baseline(
            TokenModel(), inputs, torch.arange(8) % 4, nn.CrossEntropyLoss(), steps=5
        )
