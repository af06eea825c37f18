"""The loss graph is checked before any training, by every training check: a loss rebuilt from
Python numbers, a detached loss, a forward under no_grad, a non-scalar loss and a NaN at step
0 each get their own message naming the step; sound losses pass; nothing is lost."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_nnrecipe import (
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_deterministic,
    assert_init_loss,
    assert_loss_decreases,
    assert_params_update,
)

# The float() case: PyTorch itself warns about it, as it should.
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")

X = torch.randn(8, 8)
Y = torch.arange(8) % 4

CHECKS = [
    assert_can_overfit,
    assert_init_loss,
    assert_loss_decreases,
    assert_params_update,
    assert_beats_input_independent_baseline,
    assert_deterministic,
]


def net():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def loss_from_item(out, targets):
    return torch.tensor(F.cross_entropy(out, targets).item())


def loss_from_item_requiring_grad(out, targets):
    return torch.tensor(F.cross_entropy(out, targets).item(), requires_grad=True)


def loss_of_detached_output(out, targets):
    return F.cross_entropy(out.detach(), targets)


def loss_from_float(out, targets):
    return torch.tensor(float(F.cross_entropy(out, targets)))


def loss_of_data(out, targets):
    return F.cross_entropy(out.data, targets)


def loss_plus_own_leaf(out, targets):
    return F.cross_entropy(out.detach(), targets) + 0.0 * torch.ones((), requires_grad=True)


class ForwardUnderNoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, x):
        with torch.no_grad():
            return self.lin(x)


def check_id(check):
    return check.__name__


@pytest.mark.parametrize("check", CHECKS, ids=check_id)
def test_every_training_check_names_a_loss_rebuilt_from_item_and_its_line(check):
    with pytest.raises(AssertionError) as info:
        check(net(), X, Y, loss_from_item)
    text = str(info.value)
    assert f"{check.__name__} failed: loss_fn returned a tensor with no graph" in text
    assert "Step: loss_fn" in text
    assert "loss_fn calls .item() on a tensor that requires grad" in text
    assert "test_training_loss_graph.py:" in text  # the user's line


@pytest.mark.parametrize(
    ("loss_fn", "pattern"),
    [
        (loss_from_item_requiring_grad, r"a leaf tensor \(.*requires_grad=True.*calls \.item\(\)"),
        (loss_of_detached_output, r"a tensor with no graph.*calls \.detach\(\)"),
        (loss_from_float, r"a tensor with no graph.*calls float\(\)"),
        (loss_of_data, r"a tensor with no graph.*calls \.data"),
        (loss_plus_own_leaf, r"a loss .* whose graph reaches none of the model's 4 trainable"),
    ],
    ids=["item-requires-grad", "detach", "float", "data", "own-leaf"],
)
def test_each_way_of_cutting_the_loss_graph_gets_its_own_message(loss_fn, pattern):
    with pytest.raises(AssertionError, match=f"(?s){pattern}"):
        assert_can_overfit(net(), X, Y, loss_fn)


def test_a_forward_under_no_grad_is_named_as_the_step_that_cut_the_graph():
    with pytest.raises(AssertionError, match=r"(?s)output carries no gradient.*Step: the model"):
        assert_params_update(ForwardUnderNoGrad(), X, Y, nn.CrossEntropyLoss())


def test_a_loss_left_per_sample_names_the_missing_reduction():
    with pytest.raises(ValueError, match=r"shape \(8,\), not a scalar \(one loss per sample"):
        assert_loss_decreases(net(), X, Y, lambda o, t: F.cross_entropy(o, t, reduction="none"))


def test_a_mean_over_the_batch_only_is_named():
    with pytest.raises(ValueError, match=r"shape \(4,\), not a scalar \(a mean over the batch"):
        assert_can_overfit(net(), X, Y.float()[:, None].expand(8, 4), lambda o, t: (o - t).mean(0))


def test_a_nan_at_step_0_fails_before_any_update():
    with pytest.raises(AssertionError, match="the loss at step 0 is nan before any update"):
        assert_init_loss(net(), X, Y, lambda o, t: F.cross_entropy(o, t) * float("nan"))


def test_sound_losses_and_partly_frozen_models_pass():
    frozen = net()
    frozen[0].requires_grad_(False)
    assert_loss_decreases(frozen, X, Y, nn.CrossEntropyLoss())
    assert_init_loss(net(), X, Y, lambda o, t: F.cross_entropy(o, t))


def test_the_graph_check_loses_nothing():
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    with pytest.raises(AssertionError):
        assert_init_loss(model, X, Y, loss_from_item)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(state, torch.get_rng_state())
    assert model.training
