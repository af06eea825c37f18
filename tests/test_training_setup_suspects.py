"""Failures name the setup that explains them: frozen layers, constant init, large targets,
a head that does not fit the loss, a broadcasting custom loss, a slow or diverged baseline."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pytest_nnrecipe import (
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_init_loss,
    assert_loss_decreases,
    assert_params_update,
)


def mlp(out: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, out))


def classes() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(32, 8), torch.randint(0, 3, (32,))


class SoftmaxHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(-1)  # the bug: NLLLoss wants log_softmax


def test_softmax_before_nll_loss_is_named_as_the_head_not_as_leaking_labels():
    x, y = classes()
    with pytest.raises(AssertionError) as info:
        assert_init_loss(SoftmaxHead(), x, y, nn.NLLLoss())
    text = str(info.value)
    assert "below 0, the lowest loss any valid prediction can reach" in text
    assert "expects log-probabilities" in text
    assert "head and the loss do not fit together" in text
    assert "labels leaking" not in text


def test_a_frozen_final_layer_is_named_when_the_batch_cannot_be_fit():
    torch.manual_seed(0)
    x, y = classes()
    model = mlp()
    model[2].requires_grad_(False)
    with pytest.raises(
        AssertionError, match=r"(?s)did not fit.*2 of 4 parameters are frozen.*2\.weight, 2\.bias"
    ):
        assert_can_overfit(model, x, y, nn.CrossEntropyLoss(), max_steps=100)


def test_weights_initialised_to_one_constant_are_named_as_symmetry():
    x, y = classes()
    model = mlp()
    for p in model.parameters():
        nn.init.constant_(p, 0.1)
    with pytest.raises(AssertionError) as info:
        assert_params_update(model, x, y, nn.CrossEntropyLoss())
    text = str(info.value)
    assert "0.weight" in text and "gradient is zero" in text
    assert "weights initialised to one constant: 0.weight (all 0.1), 2.weight (all 0.1)" in text
    assert "symmetry" in text


def test_large_regression_targets_are_named_when_the_loss_barely_moves():
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    y = (x @ torch.randn(8, 3)) * torch.tensor([0.01, 1.0, 1000.0])
    with pytest.raises(
        AssertionError, match=r"(?s)did not decrease.*the targets are large.*Standardise"
    ):
        assert_loss_decreases(mlp(3), x, y, nn.MSELoss())


def test_a_well_scaled_regression_failure_does_not_blame_the_targets():
    x = torch.randn(32, 8)
    y = x @ torch.randn(8, 3)
    with pytest.raises(AssertionError) as info:
        assert_loss_decreases(
            mlp(3), x, y, nn.MSELoss(), optimizer=lambda p: torch.optim.SGD(p, lr=0.0)
        )
    assert "targets are large" not in str(info.value)


def test_a_custom_loss_that_broadcasts_b1_against_b_is_refused():
    x = torch.randn(32, 8)
    y = x[:, 0]  # (B,) while the model returns (B, 1)
    with pytest.raises(
        ValueError, match=r"broadcasts the model's output of shape \(32, 1\).*\(32,\)"
    ):
        assert_loss_decreases(mlp(1), x, y, lambda out, t: F.mse_loss(out, t))


def test_a_custom_loss_keeps_its_other_warnings():
    x, y = classes()

    def loss(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        import warnings

        warnings.warn("a note from the loss", UserWarning, stacklevel=1)
        return F.cross_entropy(out, t)

    with pytest.warns(UserWarning, match="a note from the loss"):
        assert_loss_decreases(mlp(), x, y, loss)


class SigmoidHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))  # the bug: BCEWithLogitsLoss applies it again


def test_a_baseline_failure_of_a_model_that_uses_its_input_names_the_head_not_the_input():
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    y = (x[:, :1] > 0).float()
    with pytest.raises(AssertionError) as info:
        assert_beats_input_independent_baseline(SigmoidHead(), x, y, nn.BCEWithLogitsLoss())
    text = str(info.value)
    assert "double sigmoid" in text
    assert "does use its input" in text
    assert "does not use its input" not in text


def test_a_diverged_baseline_run_blames_the_learning_rate():
    x, y = classes()
    with pytest.raises(AssertionError) as info:
        assert_beats_input_independent_baseline(
            mlp(), x, y, nn.CrossEntropyLoss(), optimizer=lambda p: torch.optim.SGD(p, lr=1e4)
        )
    text = str(info.value)
    assert "training diverged" in text and "learning rate is too high" in text


def test_results_keep_their_curves_out_of_their_repr():
    from pytest_nnrecipe import assert_lr_schedule

    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    result = assert_lr_schedule(opt, sched, 1000)
    assert len(result.lrs) == 1000
    assert "lrs" not in repr(result) and len(repr(result)) < 200
    x, y = classes()
    decrease = assert_loss_decreases(mlp(), x, y, nn.CrossEntropyLoss())
    assert "losses" not in repr(decrease) and "relative_decrease" in repr(decrease)


class TokensAndLabels(nn.Module):
    """Takes its labels as an input too (like Hugging Face's ``labels=``) and ignores them."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 16)
        self.head = nn.Linear(16, 16)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(input_ids)).transpose(1, 2)


def test_zeroing_one_of_two_names_for_the_same_tensor_zeroes_only_that_one():
    ids = torch.randint(0, 16, (4, 6))
    # the same tensor object under two names: zero= must still reach input_ids; before,
    # both runs saw the real tokens and ended level.
    batch = {"input_ids": ids, "labels": ids}
    result = assert_beats_input_independent_baseline(
        TokensAndLabels(), batch, ids, nn.CrossEntropyLoss(), zero=["input_ids"]
    )
    assert result.final < 0.5 * result.baseline_final


class NoBiasLM(nn.Module):
    """A language-model head built with ``bias=False`` (GPT-2's, LLaMA's)."""

    def __init__(self, vocab: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.lm_head = nn.Linear(8, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.embed(ids))


def test_a_head_without_a_bias_says_so_and_offers_a_bias_or_a_uniform_start():
    torch.manual_seed(0)
    ids = torch.randint(0, 16, (16, 8))
    nxt = torch.where(torch.rand(16, 8) < 0.8, 0, torch.randint(0, 16, (16, 8)))  # token 0: 80%
    lm_loss = lambda o, t: F.cross_entropy(o.reshape(-1, 16), t.reshape(-1))  # noqa: E731
    with pytest.raises(AssertionError) as info:
        assert_init_loss(NoBiasLM(), ids, nxt, lm_loss)
    text = str(info.value)
    assert "Fix: the final layer lm_head (Linear(8, 16, bias=False)) has no bias" in text
    assert "add one initialised to the log prior (bias=True, then bias = " in text
    assert 'or pass expected="uniform" if a uniform start' in text
    assert "Likely cause: the final layer lm_head has no bias" in text
    assert assert_init_loss(NoBiasLM(), ids, nxt, lm_loss, expected="uniform").rtol == 0.25


def test_a_class_absent_from_a_small_batch_gets_a_smoothed_prior_not_a_bias_of_minus_27():
    torch.manual_seed(0)
    x, y = torch.randn(24, 8), torch.tensor([0] * 20 + [1] * 4)  # classes 2 never occurs
    model = mlp(3)
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.zero_()
    with pytest.raises(AssertionError) as info:
        assert_init_loss(model, x, y, nn.CrossEntropyLoss())
    text = str(info.value)
    assert "-27" not in text and "-2.76e+01" not in text
    prior = (torch.tensor([20.0, 4.0, 0.0]) + 0.5) / (24 + 1.5)
    shown = ", ".join(f"{v:.4g}" for v in prior.log().tolist())
    assert f"bias = log p = [{shown}]" in text and "smoothed as (count + 1/2) / (n + C/2)" in text


def test_float16_parameters_with_an_eps_float16_cannot_hold_are_named_not_the_lr():
    torch.manual_seed(0)
    x, y = torch.randn(16, 8).half(), torch.arange(16) % 3
    adam = lambda params: torch.optim.Adam(params, lr=1e-2)  # noqa: E731  eps=1e-8
    with pytest.raises(AssertionError) as info:
        assert_can_overfit(mlp().half(), x, y, nn.CrossEntropyLoss(), optimizer=adam)
    text = str(info.value)
    assert "the loss became nan at step 1" in text
    assert "are float16 and Adam's eps=1e-08 is below float16's resolution" in text
    assert "torch.autocast(dtype=torch.float16)" in text and "eps >= 1e-4" in text
    assert "learning rate is too high" not in text
    with pytest.raises(AssertionError, match=r"(?s)went to nan.*float16's resolution"):
        assert_loss_decreases(mlp().half(), x, y, nn.CrossEntropyLoss(), optimizer=adam)
    # The default optimiser picks an eps that float16 holds.
    assert_loss_decreases(mlp().half(), x, y, nn.CrossEntropyLoss())
