"""Batches too small to judge: a batch the best constant already fits is refused, a batch
whose sampling allowance dwarfs the tolerance is called blunt, and the overfit target stays
reachable in the model's dtype."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_can_overfit, assert_init_loss
from pytest_nnrecipe._context import RunContext, activate


def mlp(n_out: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, n_out))


@pytest.mark.parametrize(
    ("x", "y", "loss_fn"),
    [
        (torch.randn(1, 10), torch.tensor([2]), nn.CrossEntropyLoss()),
        (torch.randn(8, 10), torch.full((8,), 3), nn.CrossEntropyLoss()),
        (torch.randn(1, 10), torch.randn(1, 4), nn.MSELoss()),
        (torch.randn(1, 10), torch.tensor([1]), lambda o, t: nn.functional.cross_entropy(o, t)),
    ],
    ids=["one-sample", "one-class", "one-regression-sample", "one-sample-custom-loss"],
)
def test_a_batch_the_best_constant_already_fits_is_refused_naming_the_minimum(x, y, loss_fn):
    minimum = r"(?s)best constant prediction already fits every target.*at least 2 samples with different targets"
    with pytest.raises(ValueError, match=minimum):
        assert_init_loss(mlp(), x, y, loss_fn)
    with pytest.raises(ValueError, match=minimum):
        assert_can_overfit(mlp(), x, y, loss_fn)


def test_one_sequence_of_a_language_model_has_many_targets_and_is_judged():
    lm = nn.Sequential(nn.Embedding(16, 8), nn.Linear(8, 16))
    ids, nxt = torch.arange(12)[None] % 16, torch.arange(1, 13)[None] % 16
    result = assert_init_loss(lm, ids, nxt, nn.CrossEntropyLoss(), output=lambda o: o.mT)
    assert result.expected == pytest.approx(math.log(12))


def test_a_small_batch_says_it_was_blunt_and_which_batch_size_makes_it_sharp():
    # 8 targets over 4 classes: the prior is so noisy that a final layer x10 passes in about a
    # third of seeds (13 of 40 measured); from 24 on it passes in 2 of 40, at 64 in none.
    torch.manual_seed(0)
    x, y = torch.randn(8, 10), torch.randint(0, 4, (8,))
    model = mlp()
    result = assert_init_loss(model, x, y, nn.CrossEntropyLoss())
    assert result.blunt and result.noise_allowance > result.rtol * result.expected
    assert 20 <= result.sharp_batch_size <= 32
    with torch.no_grad():
        model[2].weight.mul_(30)
    with pytest.raises(
        AssertionError,
        match=r"This batch is too small for a sharp check: the sampling allowance \(1[.0-9]*\) is "
        r"larger than the tolerance itself .* from a batch of \d\d samples",
    ):
        assert_init_loss(model, x, y, nn.CrossEntropyLoss())
    ctx = RunContext(nodeid="t", seed=0)
    big_x, big_y = torch.randn(64, 10), torch.arange(64) % 4
    with activate(ctx):
        sharp = assert_init_loss(mlp(), big_x, big_y, nn.CrossEntropyLoss())
    assert not sharp.blunt and sharp.sharp_batch_size is None
    assert ctx.records[0].blunt is False


def test_the_overfit_target_is_never_closer_to_the_floor_than_the_dtype_resolves():
    # 63 of one class, 1 of the other: 2% of the gap is 0.0017, below what float16 resolves.
    x, y = torch.randn(64, 10), torch.tensor([0] * 63 + [1])
    model = mlp(2).half()
    ctx = RunContext(nodeid="t", seed=0)
    with activate(ctx), pytest.raises(AssertionError):
        assert_can_overfit(model, x.half(), y, nn.CrossEntropyLoss(), max_steps=1)
    target = ctx.records[0].target
    assert target >= 4 * torch.finfo(torch.float16).eps * 0.6
    with activate(RunContext(nodeid="t", seed=0)) as ctx32, pytest.raises(AssertionError):
        assert_can_overfit(mlp(2), x, y, nn.CrossEntropyLoss(), max_steps=1)
    best = -(63 / 64 * math.log(63 / 64) + 1 / 64 * math.log(1 / 64))
    assert ctx32.records[0].target == pytest.approx(0.02 * best, rel=1e-6)
