"""How the gradient method spends its backward passes: one forward for every product, the
products batched into backwards sized by memory and kept batched only where that is cheaper
per product than one at a time; the same verdicts whichever way they run."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from dependency_helpers import caught
from torch import nn

from pytest_nnrecipe import _dependency, assert_causal, assert_no_batch_mixing

MiB = 2**20


@pytest.mark.parametrize(
    ("rows", "saved", "largest", "per_row", "free", "chunk"),
    [
        pytest.param(8, 300 * MiB, 30 * MiB, 10 * MiB, None, 6, id="twice-the-graph"),
        pytest.param(8, 300 * MiB, 30 * MiB, 10 * MiB, 250 * MiB, 1, id="free-memory-bounds"),
        pytest.param(8, 1 * MiB, 1 * MiB, 1 * MiB, None, 8, id="small-models-batch-freely"),
        pytest.param(64, 1 * MiB, 1 * MiB, 1 * MiB, None, 16, id="up-to-64-mib"),
        pytest.param(3, 300 * MiB, 1 * MiB, 1 * MiB, None, 3, id="no-more-than-rows"),
        pytest.param(500, 300 * MiB, 1, 1, None, 64, id="at-most-max-chunk"),
        pytest.param(8, 0, 100 * MiB, 0, 1, 1, id="at-least-one"),
    ],
)
def test_products_per_backward_stay_within_twice_the_graph_and_half_the_free_memory(
    rows, saved, largest, per_row, free, chunk
):
    got = _dependency.products_per_backward(
        rows, saved=saved, largest=largest, per_row=per_row, free=free
    )
    assert got == chunk


class Counting:
    """Counts backward calls by kind while letting them run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batched = self.single = 0
        real = torch.autograd.grad

        def grad(*args, **kwargs):
            if kwargs.get("is_grads_batched"):
                self.batched += 1
            else:
                self.single += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", grad)


class Mixer(nn.Module):
    """(B, T, C): a causal running mean; ``leak`` lets sample 1 read sample 0 and step 2 read
    step 5."""

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.leak = leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x).cumsum(1)
        if self.leak:
            h = h + torch.zeros_like(h).index_put((torch.tensor([1]),), h[0:1])
            h = h + torch.zeros_like(h).index_put(
                (torch.arange(len(h)), torch.tensor([2])), h[:, 5]
            )
        return h


@pytest.mark.parametrize("faster", ["batched", "one-at-a-time"])
def test_products_stay_batched_only_where_that_is_cheaper(monkeypatch, faster):
    monkeypatch.setattr(_dependency, "_FASTEST", {})
    monkeypatch.setattr(_dependency, "products_per_backward", lambda rows, **_: min(rows, 2))
    clock = iter([1.0, 0.5 if faster == "batched" else 50.0])  # one product, then a batch of 2
    monkeypatch.setattr(_dependency.Graph, "_clocked", lambda self, work: (work(), next(clock))[1])
    calls = Counting(monkeypatch)
    x = torch.randn(12, 8, 3)
    assert_no_batch_mixing(Mixer(leak=False), x, method="grad")  # 6 code bits: 6 products
    if faster == "batched":  # timed: [0] alone, [1, 2]; then [3, 4] batched and [5] alone
        assert (calls.single, calls.batched) == (2, 2)
    else:  # timed: [0] alone, [1, 2]; then 3, 4, 5 one at a time
        assert (calls.single, calls.batched) == (4, 1)
    calls.single = calls.batched = 0
    assert_no_batch_mixing(Mixer(leak=False), x, method="grad")  # the same shapes: no timing
    assert (calls.single, calls.batched) == ((0, 3) if faster == "batched" else (6, 0))


@pytest.mark.parametrize("batched", [False, True], ids=["one-at-a-time", "batched"])
def test_the_verdicts_are_the_same_however_the_products_run(monkeypatch, batched):
    monkeypatch.setattr(_dependency, "batched_products", lambda device: batched)
    monkeypatch.setattr(_dependency, "MAX_CHUNK", 3)  # several backwards, a short last one
    x = torch.randn(4, 8, 3)
    mixing = caught(assert_no_batch_mixing, Mixer(leak=True), x, method="grad")
    assert "1 of 12" in mixing and "output of sample 1 depends on input of sample 0" in mixing
    causal = caught(assert_causal, Mixer(leak=True), x, method="grad")
    assert re.search(r"output at step 2 depends on input at step [345]\.", causal)
    assert "Leaking pairs (output step t, later input step t'): 3 of 28" in causal  # 2 <- 3,4,5
    result = assert_causal(Mixer(leak=False), x, method="grad")
    np.testing.assert_array_equal(result.matrix, np.zeros((8, 8), dtype=bool))


def test_one_forward_serves_every_cut(monkeypatch):
    calls = []
    lin = nn.Linear(3, 3)

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape)
        return lin(x).cumsum(1)

    result = assert_causal(model, torch.randn(2, 33, 3), method="grad")  # 32 cuts, 2 per product
    assert result.pairs == 33 * 32 // 2 and calls == [torch.Size([2, 33, 3])]
