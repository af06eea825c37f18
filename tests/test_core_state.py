"""The "nothing lost" guard that every check runs inside."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from pytest_nnrecipe import _rng, _state


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    net.train()
    net[3].weight.requires_grad_(False)
    net(torch.randn(5, 4)).sum().backward()  # .grad fields set, BN stats moved
    return net


def _fingerprint(net: nn.Module) -> dict:
    return {
        "params": {k: v.detach().clone() for k, v in net.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in net.named_buffers()},
        "grads": {k: None if v.grad is None else v.grad.clone() for k, v in net.named_parameters()},
        "requires_grad": {k: v.requires_grad for k, v in net.named_parameters()},
        "training": [m.training for m in net.modules()],
        "ids": [id(p) for p in net.parameters()],
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a["ids"] == b["ids"]
    assert a["requires_grad"] == b["requires_grad"]
    assert a["training"] == b["training"]
    for key in ("params", "buffers", "grads"):
        assert a[key].keys() == b[key].keys()
        for name, value in a[key].items():
            other = b[key][name]
            if value is None or other is None:
                assert value is other, (key, name)
            else:
                assert torch.equal(value, other), (key, name)


def _mess_up(net: nn.Module) -> None:
    net.eval()
    net[0].training = True
    for p in net.parameters():
        p.requires_grad_(True)
    net(torch.randn(7, 4)).sum().backward()
    net.train()
    net(torch.randn(7, 4))  # BN running stats move
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net[3].weight.grad = None
    random.random()
    np.random.rand()
    torch.rand(3)


def test_it_restores_values_flags_grads_and_rng_after_the_block() -> None:
    net = _net()
    before, rng_before = _fingerprint(net), _rng.capture()
    with _state.untouched(net):
        _mess_up(net)
    _assert_same(before, _fingerprint(net))
    assert torch.equal(torch.get_rng_state(), rng_before.torch_cpu)
    assert random.getstate() == rng_before.python


def test_it_restores_everything_when_the_block_raises() -> None:
    net = _net()
    before = _fingerprint(net)
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"), _state.untouched(net):
        _mess_up(net)
        raise RuntimeError("boom")
    _assert_same(before, _fingerprint(net))
    assert torch.equal(torch.get_rng_state(), state)


def test_it_ignores_plain_callables_but_still_restores_the_rng() -> None:
    np_state = np.random.get_state()
    with _state.untouched(lambda x: x):
        np.random.rand(10)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_derived_seeds_depend_on_base_and_node_id_only() -> None:
    a = _rng.derive_seed(0, "tests/test_x.py::test_a")
    assert a == _rng.derive_seed(0, "tests/test_x.py::test_a")
    assert a != _rng.derive_seed(1, "tests/test_x.py::test_a")
    assert a != _rng.derive_seed(0, "tests/test_x.py::test_b")
    assert 0 <= a < 2**32
