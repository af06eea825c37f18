"""The structural checks leave every example model exactly as they found it, also when the
model raises half-way: values, modes, requires_grad, .grad and the global RNG states."""

from __future__ import annotations

import contextlib
import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing

_spec = importlib.util.spec_from_file_location(
    "models_structural", Path(__file__).parents[1] / "examples" / "models_structural.py"
)
M = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(M)

FLOATS = torch.randn(3, 6, 8)
TOKENS = torch.randint(0, 20, (3, 6))
# (id, model factory, inputs, causal time_dim or None when only batch mixing applies)
MODELS = [
    ("mlp", lambda: M.MLP(), torch.randn(3, 8), None),
    ("cnn", lambda: M.CNN(), torch.randn(3, 3, 6, 6), None),
    ("norm-by-hand", lambda: M.BatchNormByHand(), torch.randn(3, 8), None),
    ("encoder", lambda: M.SequenceEncoder(), FLOATS, 1),
    ("encoder-view", lambda: M.SequenceEncoder(reorder="view"), FLOATS, 1),
    ("encoder-tokens-view", lambda: M.SequenceEncoder(20, reorder="view"), TOKENS, 1),
    ("conv", lambda: M.CausalConvNet(), torch.randn(3, 4, 6), 2),
    ("conv-symmetric", lambda: M.CausalConvNet(padding="symmetric"), torch.randn(3, 4, 6), 2),
    ("transformer", lambda: M.CausalTransformer(), torch.randn(3, 6, 16), 1),
    ("transformer-tokens", lambda: M.CausalTransformer(20), TOKENS, 1),
    ("transformer-no-mask", lambda: M.CausalTransformer(mask="none"), torch.randn(3, 6, 16), 1),
    ("transformer-off-by-one", lambda: M.CausalTransformer(20, mask="off_by_one"), TOKENS, 1),
    ("lstm", lambda: M.LSTMLanguageModel(), TOKENS, 1),
    ("lstm-bidirectional", lambda: M.LSTMLanguageModel(bidirectional=True), TOKENS, 1),
    ("dict-output", lambda: M.DictOutputModel(), {"input_ids": TOKENS}, 1),
]


def snapshot(model: nn.Module) -> dict:
    return {
        "params": {
            k: (p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.clone())
            for k, p in model.named_parameters()
        },
        "buffers": {k: b.clone() for k, b in model.named_buffers()},
        "training": {k: m.training for k, m in model.named_modules()},
        "rng": (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()),
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["params"].keys() == after["params"].keys()
    for k, (value, requires_grad, grad) in before["params"].items():
        value2, requires_grad2, grad2 = after["params"][k]
        assert torch.equal(value, value2), k
        assert requires_grad == requires_grad2, k
        assert (grad is None) == (grad2 is None), k
        if grad is not None:
            assert torch.equal(grad, grad2), k
    for k, b in before["buffers"].items():
        assert torch.equal(b, after["buffers"][k]), k
    assert torch.equal(before["rng"][0], after["rng"][0])
    assert before["rng"][1] == after["rng"][1]
    assert np.array_equal(before["rng"][2], after["rng"][2])


def prepared(factory) -> nn.Module:
    """A model in a lived-in state: train mode, some grads set, one parameter frozen."""
    model = factory()
    model.train()
    params = list(model.parameters())
    params[0].grad = torch.full_like(params[0], 0.25)
    params[-1].requires_grad_(False)
    return model


def calls(model, inputs, time_dim):
    yield lambda: assert_no_batch_mixing(model, inputs, method="perturb")
    yield lambda: assert_no_batch_mixing(model, inputs, train=True)
    if time_dim is not None:
        yield lambda: assert_causal(model, inputs, time_dim=time_dim)
        yield lambda: assert_causal(model, inputs, time_dim=time_dim, method="perturb", train=True)


@pytest.mark.parametrize(
    ("factory", "inputs", "time_dim"), [m[1:] for m in MODELS], ids=[m[0] for m in MODELS]
)
def test_every_example_model_is_left_as_it_was(factory, inputs, time_dim):
    model = prepared(factory)
    before = snapshot(model)
    for call in calls(model, inputs, time_dim):
        with contextlib.suppress(AssertionError):
            call()
        assert_same(before, snapshot(model))


class Flaky(nn.Module):
    """Wraps a model and raises on its n-th call (after BatchNorm statistics moved)."""

    def __init__(self, inner: nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        out = self.inner(*args, **kwargs)
        if self.calls >= self.n:
            raise RuntimeError("boom")
        return out


def run_to_the_end_or_boom(call) -> str:
    try:
        call()
    except RuntimeError as e:
        assert str(e) == "boom"
        return "boom"
    except AssertionError:
        return "failed"
    return "passed"


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("method", ["grad", "perturb"])
def test_a_model_that_raises_mid_check_is_left_as_it_was(n, method):
    images, ids = torch.randn(5, 3, 6, 6), torch.randint(0, 20, (3, 6))
    model = Flaky(prepared(lambda: M.CNN()), n)
    before = snapshot(model)
    outcome = run_to_the_end_or_boom(
        lambda: assert_no_batch_mixing(model, images, method=method, train=True)
    )
    assert outcome == "boom" or n > 1
    assert_same(before, snapshot(model))
    model = Flaky(prepared(lambda: M.CausalTransformer(20)), n)
    before = snapshot(model)
    outcome = run_to_the_end_or_boom(lambda: assert_causal(model, ids, method=method, max_batch=2))
    # perturb: 5 cuts in passes of 2 copies, at least 3 calls; grad: one forward for all cuts
    assert outcome == ("boom" if method == "perturb" or n == 1 else "passed")
    assert_same(before, snapshot(model))
    assert torch.backends.mha.get_fastpath_enabled()  # switched off for perturbation only


class WritesIntoItsInput(nn.Module):
    """A model that scales its input in place: legal, if rude."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2.0)
        return self.proj(x).cumsum(1)


@pytest.mark.parametrize("method", ["grad", "perturb"])
@pytest.mark.parametrize("check", ["batch", "causal"])
def test_a_model_writing_into_its_input_neither_changes_it_nor_fails(check, method):
    x = torch.randn(4, 5, 8)
    before = x.clone()
    if check == "batch":
        assert_no_batch_mixing(WritesIntoItsInput(), x, method=method)
    else:
        assert_causal(WritesIntoItsInput(), x, method=method)
    assert torch.equal(x, before)
