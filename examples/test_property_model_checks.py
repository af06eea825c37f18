"""Structural checks over generated batch sizes and lengths: a causal model must keep samples
apart and never look ahead for every shape, not only for the one a hand-written test picked.

Two ways to call a check inside a ``@given`` test:

- the plain function, ``pytest_nnrecipe.assert_causal(model, x)``: nothing more to do;
- the fixture, ``def test_x(assert_causal, batch)``: Hypothesis warns that a function-scoped
  fixture is shared by all the examples of the test (health check ``function_scoped_fixture``).
  The check fixtures hold no state between calls (each call binds the device and seed and
  restores everything), so sharing is safe: suppress the health check for that test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from torch import nn

import pytest_nnrecipe as nr
from pytest_nnrecipe import strategies as nst


class CausalConvLM(nn.Module):
    """Token ids (B, T) or features (B, T, d) -> (B, T, d): two 1-D convolutions over time,
    padded on the left so step t sees steps <= t. ``lookahead=True`` is the bug: padding on
    both sides, so each step also sees the next one."""

    def __init__(self, vocab: int | None = None, d: int = 4, lookahead: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d) if vocab else None
        self.convs = nn.ModuleList(nn.Conv1d(d, d, 3) for _ in range(2))
        self.pad = (1, 1) if lookahead else (2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (self.embed(x) if self.embed is not None else x).transpose(1, 2)  # (B, d, T)
        for conv in self.convs:
            h = torch.tanh(conv(F.pad(h, self.pad)))
        return h.transpose(1, 2)


def make_model(**kwargs) -> CausalConvLM:
    """The same weights in every example (so a failure replays exactly), global RNG untouched."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return CausalConvLM(**kwargs)


@settings(max_examples=10)  # each example runs two checks: a few shapes are plenty
@given(x=nst.sequence_batches(features=4, max_batch=4, min_length=2, max_length=10))
def test_the_model_keeps_samples_apart_and_is_causal_for_every_shape(x):
    model = make_model(d=4)
    nr.assert_no_batch_mixing(model, x)
    nr.assert_causal(model, x)


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=nst.token_batches(vocab_size=20, max_batch=4, min_length=2, max_length=10))
def test_the_check_fixtures_work_inside_given_tests(assert_no_batch_mixing, assert_causal, batch):
    model = make_model(vocab=20, d=4)
    assert_no_batch_mixing(model, batch)
    assert_causal(model, batch)


def test_hypothesis_finds_the_lookahead_and_shrinks_it_to_two_steps():
    model = make_model(d=4, lookahead=True)
    tried = []

    # Only the shape is drawn (values: seeded noise), so shrinking works on the shape alone.
    @given(shape=nst.sequence_shapes(features=4, max_batch=4, min_length=1, max_length=10))
    def lookahead_model_is_causal(shape):
        tried.append(shape)
        if shape[1] < 2:
            return  # one step cannot leak (and assert_causal rejects it)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        nr.assert_causal(model, x)

    with pytest.raises(AssertionError, match=r"output at step \d+ depends on input at step"):
        lookahead_model_is_causal()
    assert tried[-1] == (2, 2, 4)  # the shrunk example, replayed last: two steps suffice
