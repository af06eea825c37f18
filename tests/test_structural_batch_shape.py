"""How the structural checks call the model: only at the batch shape they were given (models
with fixed-size state, a KV cache, an RNN hidden buffer, a ``view(B, ...)`` keep working), on
outputs that carry the batch and the steps (clear errors otherwise), and only comparing calls
when the model answers the same inputs the same way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing


class FixedBatchCache(nn.Module):
    """A running-sum model with a preallocated per-sample state, like a KV cache for B = 3."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.register_buffer("state", torch.zeros(batch, 1, 2))
        self.seen: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add(x.shape[0])
        if x.shape[0] != self.state.shape[0]:
            raise RuntimeError(f"cache holds {self.state.shape[0]} sequences, got {x.shape[0]}")
        return self.state + x.cumsum(1)


@pytest.mark.parametrize("steps", [2, 3, 9], ids=["T=2", "T=3", "T=9"])
@pytest.mark.parametrize("method", ["grad", "perturb"])
def test_the_checks_never_change_the_batch_size(steps, method):
    model = FixedBatchCache(3)
    x = torch.randn(3, steps, 2)
    assert assert_causal(model, x, method=method).pairs == steps * (steps - 1) // 2
    assert_no_batch_mixing(model, x, method=method)
    assert model.seen == {3}


def test_a_leak_in_a_fixed_batch_model_is_still_caught():
    class Leaky(FixedBatchCache):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x).roll(-1, 1)

    model = Leaky(3)
    with pytest.raises(AssertionError, match=r"output at step \d depends on input at step"):
        assert_causal(model, torch.randn(3, 5, 2))
    assert model.seen == {3}


OUTPUTS_WITHOUT_THE_BATCH = [
    pytest.param(lambda x: x.sum(), r"shape \(\)\) .*it is a scalar", id="scalar-loss"),
    pytest.param(lambda x: x.mean(0), r"no dimension has size 4: .*reduce over", id="batch-mean"),
    pytest.param(
        lambda x: x.transpose(0, 1), r"pass output_batch_dim=1 if", id="time-major-output"
    ),
]


@pytest.mark.parametrize(("model", "error"), OUTPUTS_WITHOUT_THE_BATCH)
@pytest.mark.parametrize("check", [assert_no_batch_mixing, assert_causal], ids=["mixing", "causal"])
def test_an_output_without_the_batch_dimension_says_where_it_went(check, model, error):
    with pytest.raises(ValueError, match=error):
        check(model, torch.randn(4, 5, 3))


def test_an_output_with_fewer_steps_says_the_steps_no_longer_line_up():
    conv = nn.Conv1d(3, 3, kernel_size=3)  # unpadded: 5 steps in, 3 out

    def model(x: torch.Tensor) -> torch.Tensor:
        return conv(x.transpose(1, 2)).transpose(1, 2)

    with pytest.raises(ValueError, match=r"dimension 1 has 3 steps, fewer than the inputs' 5"):
        assert_causal(model, torch.randn(2, 5, 3))


class Streaming(nn.Module):
    """Carries its last state into the next call, like a streaming model with a cache."""

    def __init__(self) -> None:
        super().__init__()
        self.state: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.cumsum(1) if self.state is None else x.cumsum(1) + self.state
        self.state = h[:, -1:].detach()
        return h


@pytest.mark.parametrize("check", [assert_no_batch_mixing, assert_causal], ids=["mixing", "causal"])
def test_a_model_that_keeps_state_between_calls_is_not_reported_as_a_leak(check):
    x = torch.randn(3, 5, 2)
    with pytest.raises(ValueError, match=r"model= gives different outputs for the same inputs"):
        check(Streaming(), x, method="perturb")
    # auto: the gradients decide (they see one call), and the result says why perturb did not
    assert "the perturbation that would confirm it failed" in check(Streaming(), x).method
