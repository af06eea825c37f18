"""assert_can_overfit: fits one batch fast, stops at the target, explains what it could not fit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_can_overfit
from pytest_nnrecipe._context import RunContext, activate


def mlp(n_out: int = 4, *, head: nn.Module | None = None) -> nn.Sequential:
    layers = [nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, n_out)]
    return nn.Sequential(*layers, *([head] if head is not None else []))


def batch(n: int = 8, classes: int = 4):
    return torch.randn(n, 8), torch.arange(n) % classes


def test_it_stops_as_soon_as_the_target_is_met():
    x, y = batch()
    result = assert_can_overfit(mlp(), x, y, nn.CrossEntropyLoss())
    assert result.final_loss <= result.target_loss < result.losses[-2]
    assert result.steps == len(result.losses) - 1 <= 200


def test_label_smoothing_raises_the_target_to_the_targets_entropy():
    x, y = batch()
    result = assert_can_overfit(mlp(), x, y, nn.CrossEntropyLoss(label_smoothing=0.2))
    eps, n = 0.2, 4
    hi, lo = 1 - eps + eps / n, eps / n
    floor = -(hi * torch.tensor(hi).log() + (n - 1) * lo * torch.tensor(lo).log())
    assert float(floor) < result.target_loss < float(floor) + 0.05


def test_a_double_softmax_fails_with_the_curve_and_labels_next_to_predictions():
    x, y = batch()
    with pytest.raises(AssertionError) as info:
        assert_can_overfit(mlp(head=nn.Softmax(-1)), x, y, nn.CrossEntropyLoss(), max_steps=150)
    text = str(info.value)
    assert "double softmax" in text
    assert "loss over" in text and "gradient norm over" in text
    assert "initial" in text and "best" in text and "final" in text
    assert text.count("sample ") == 8 and "p(label)" in text


def test_a_relu_head_on_negative_targets_is_named():
    x, y = torch.randn(8, 8), torch.linspace(-2, 2, 8).unsqueeze(1)
    with pytest.raises(AssertionError, match=r"(?s)every prediction lies in \[0, inf\).*ReLU"):
        assert_can_overfit(mlp(1, head=nn.ReLU()), x, y, nn.MSELoss(), max_steps=150)


def test_parameters_that_never_get_a_gradient_are_listed():
    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(head=nn.Softmax(-1))
            self.spare = nn.Linear(2, 2)

        def forward(self, x):
            return self.net(x)

    x, y = batch()
    with pytest.raises(AssertionError, match=r"never got a gradient \(2\): spare\.weight, spare"):
        assert_can_overfit(Frozen(), x, y, nn.CrossEntropyLoss(), max_steps=30)


def test_a_divergent_learning_rate_is_reported_as_such():
    x, y = batch()
    with pytest.raises(AssertionError, match=r"(?s)the loss became (nan|inf).*too high"):
        assert_can_overfit(
            mlp(),
            x * 1e3,
            y,
            nn.CrossEntropyLoss(),
            optimizer=lambda p: torch.optim.SGD(p, lr=1e6),
        )


def test_a_custom_optimizer_factory_and_target_are_used():
    x, y = batch()
    result = assert_can_overfit(
        mlp(),
        x,
        y,
        nn.CrossEntropyLoss(),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
        target_loss=0.1,
    )
    assert result.target_loss == 0.1 and result.final_loss <= 0.1


def test_an_hf_style_model_output_is_fit_through_its_logits():
    @dataclasses.dataclass
    class Output:
        loss: torch.Tensor | None
        logits: torch.Tensor

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 16)
            self.head = nn.Linear(16, 20)

        def forward(self, input_ids, attention_mask=None):
            return Output(None, self.head(self.embed(input_ids)).transpose(1, 2))

    ids = torch.randint(0, 20, (4, 6))
    inputs = {"input_ids": ids, "attention_mask": torch.ones(4, 6, dtype=torch.long)}
    result = assert_can_overfit(Model(), inputs, ids, nn.CrossEntropyLoss())
    assert result.steps <= 200


def test_it_records_losses_predictions_and_the_batch_that_entered_the_model():
    x, y = batch()
    ctx = RunContext(nodeid="t", seed=3)
    with activate(ctx):
        assert_can_overfit(mlp(), x, y, nn.CrossEntropyLoss())
    (rec,) = ctx.records
    assert rec.check == "assert_can_overfit" and rec.passed
    record = rec
    assert torch.equal(record.batch, x)
    assert len(record.losses) == record.steps + 1
    assert record.predictions[0].shape == (8, 4)
    assert record.prediction_steps[-1] == record.steps


def test_the_same_seed_gives_the_same_run():
    x, y = batch()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 4))
    runs = []
    for _ in range(2):
        with activate(RunContext(nodeid="t", seed=11)):
            runs.append(assert_can_overfit(model, x, y, nn.CrossEntropyLoss()).losses)
    assert runs[0] == runs[1]


def test_it_records_targets_optimizer_mode_and_the_trained_first_conv_layer():
    from pytest_nnrecipe._png._charts import prediction_series

    torch.manual_seed(0)
    x, y = torch.randn(10, 3, 8, 8), torch.arange(10) % 3
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    init = model[0].weight.detach().clone()
    ctx = RunContext(nodeid="t", seed=3)
    with activate(ctx):
        assert_can_overfit(model, x, y, nn.CrossEntropyLoss())
    record = ctx.records[0]
    assert torch.equal(record.targets, y[:8])  # the samples whose predictions are kept
    assert record.mode == "train" and record.optimizer == "Adam(lr=0.01) (default)"
    weight = record.first_layer_weight
    assert weight.shape == (4, 3, 3, 3) and weight.device.type == "cpu"
    assert not torch.equal(weight, init)  # the trained copy's, at the end of training
    assert torch.equal(model[0].weight, init)  # the user's model is untouched
    series, label, _ = prediction_series(record.predictions, record.targets)
    assert label == "p(true class)" and series.shape == (len(record.prediction_steps), 8)
    assert series[-1].min() > 0.9  # fit: every shown sample's true class is likely
