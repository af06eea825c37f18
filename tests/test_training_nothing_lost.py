"""Nothing lost: the training checks leave the model, its grads and flags, and the global RNGs
as they found them, also when the model raises half-way."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from pytest_nnrecipe import (
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_init_loss,
    assert_loss_decreases,
    assert_params_update,
)


class Net(nn.Module):
    calls = 0
    fail_at: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(0.1)
        self.frozen = nn.Linear(16, 16)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        type(self).calls += 1
        if self.fail_at is not None and type(self).calls >= self.fail_at:
            raise RuntimeError("model broke half-way")
        return self.head(self.frozen(self.drop(torch.relu(self.bn(self.lin(x))))))


def state(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [(p.requires_grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
        [m.training for m in model.modules()],
        torch.get_rng_state(),
        random.getstate(),
        np.random.get_state()[1].copy(),
    )


def same(a, b):
    assert a[0].keys() == b[0].keys()
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    for (ra, ga), (rb, gb) in zip(a[1], b[1], strict=True):
        assert ra == rb
        assert (ga is None and gb is None) or torch.equal(ga, gb)
    assert a[2] == b[2]
    assert torch.equal(a[3], b[3]) and a[4] == b[4] and np.array_equal(a[5], b[5])


CHECKS = [
    lambda m, x, y: assert_init_loss(m, x, y, nn.CrossEntropyLoss()),
    lambda m, x, y: assert_can_overfit(m, x, y, nn.CrossEntropyLoss(), max_steps=5, target_loss=0),
    lambda m, x, y: assert_loss_decreases(m, x, y, nn.CrossEntropyLoss(), steps=5),
    lambda m, x, y: assert_beats_input_independent_baseline(
        m, x, y, nn.CrossEntropyLoss(), steps=5
    ),
    lambda m, x, y: assert_params_update(m, x, y, nn.CrossEntropyLoss()),
]
IDS = ["init_loss", "can_overfit", "loss_decreases", "baseline", "params_update"]
#: The forward that raises: after at least one update, where the check makes one.
FAIL_AT = [1, 3, 2, 3, 2]


def prepared_model() -> Net:
    model = Net().eval()
    model.lin.weight.grad = torch.full_like(model.lin.weight, 0.5)
    return model


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_a_check_leaves_model_and_rngs_as_they_were(check):
    model, x, y = prepared_model(), torch.randn(8, 8), torch.arange(8) % 4
    before = state(model)
    try:
        check(model, x, y)
    except AssertionError:
        pass  # the verdict does not matter here, only what is left behind
    same(before, state(model))


@pytest.mark.parametrize(("check", "fail_at"), list(zip(CHECKS, FAIL_AT, strict=True)), ids=IDS)
def test_a_model_that_raises_half_way_leaves_nothing_changed(check, fail_at):
    model, x, y = prepared_model(), torch.randn(8, 8), torch.arange(8) % 4
    Net.calls, Net.fail_at = 0, fail_at
    before = state(model)
    try:
        with pytest.raises(RuntimeError, match="model broke half-way"):
            check(model, x, y)
    finally:
        Net.fail_at = None
    same(before, state(model))


class WritesIntoItsInput(nn.Module):
    """Pixels to [0, 1] in place, as people write it: ``x /= 255``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x /= 255
        return self.head(torch.relu(self.lin(x * 255)))


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_a_model_writing_into_its_input_leaves_the_users_tensor_bitwise_unchanged(check):
    torch.manual_seed(0)
    x, y = torch.rand(8, 8) * 255, torch.arange(8) % 4
    kept = x.clone()
    try:
        check(WritesIntoItsInput(), x, y)
    except AssertionError:
        pass  # only the user's tensors matter here
    assert torch.equal(x, kept)


def test_every_step_sees_the_same_batch_so_an_in_place_model_still_fits_it():
    # Without fresh copies x shrinks by 255 at every step and the run stalls.
    torch.manual_seed(0)
    x, y = torch.randn(8, 8), torch.arange(8) % 4
    kept = x.clone()
    result = assert_can_overfit(WritesIntoItsInput(), x, y, nn.CrossEntropyLoss())
    assert result.steps < 300 and torch.equal(x, kept)


def test_a_loss_writing_into_its_targets_leaves_the_users_targets_unchanged():
    torch.manual_seed(0)
    x, y = torch.randn(8, 8), torch.randn(8, 4)
    kept = y.clone()

    def centred_mse(out, t):
        t -= t.mean()  # in place, on what the check hands it
        return ((out - t) ** 2).mean()

    assert_loss_decreases(WritesIntoItsInput(), x, y, centred_mse)
    assert_init_loss(WritesIntoItsInput(), x, y, centred_mse, rtol=10)
    assert torch.equal(y, kept)
