"""The structural checks' explanations: where a forbidden dependency starts (localised on
failure only), a likely cause only where the evidence supports one, and the argument hints.

The planted-bug suite (``planted_bugs.BUGS``: 24 kinds of bugs, each in three places of a
stack of blocks) measures both: the named module must be the planted one, and the stated
cause must fit the bug.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from dependency_helpers import caught
from planted_bugs import BUGS, PLACES, outcome
from torch import nn

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing
from pytest_nnrecipe._structural import _driver


def test_the_suite_plants_at_least_twenty_kinds_of_bugs_in_both_checks():
    assert len({b.name for b in BUGS}) >= 20
    assert {b.check for b in BUGS} == {"causal", "batch"}


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_a_planted_bug_is_localised_to_its_module_and_explained(bug):
    for place in PLACES:
        named, fits, message = outcome(bug, place)
        assert named, f"place {place}: the culprit is not named\n{message}"
        assert fits, f"place {place}: the cause does not fit {bug.cause!r}\n{message}"


class ReverseCumsum(nn.Module):
    """Each step sums the steps after it: a pattern no known signature describes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1).cumsum(1).flip(1)


def test_no_cause_is_guessed_when_no_signature_matches():
    model = nn.Sequential(nn.Linear(3, 3), ReverseCumsum())
    message = caught(assert_causal, model, torch.randn(2, 6, 3))
    assert "Where: it starts in 1 (ReverseCumsum), at op flip" in message
    assert "Likely cause: none guessed: no known signature matches what was seen" in message
    assert "attention" not in message and "off by" not in message


def test_a_callable_without_modules_is_localised_to_its_ops():
    message = caught(assert_no_batch_mixing, lambda x: x + x.flip(0), torch.randn(4, 3))
    assert "Where: it starts in the model's forward (outside every module), at op flip" in message
    assert "a flip along the batch" in message


def test_a_callable_names_the_modules_it_reads_by_their_variable():
    norm = nn.LayerNorm([6, 3])
    message = caught(assert_causal, lambda x: norm(x), torch.randn(2, 6, 3))
    assert "Where: it starts in norm (LayerNorm over (6, 3)), at op layer_norm" in message


def test_the_search_runs_only_on_failure(monkeypatch):
    calls = []
    real = _driver.localise
    monkeypatch.setattr(_driver, "localise", lambda search: calls.append(1) or real(search))
    assert_causal(nn.LSTM(3, 4, batch_first=True), torch.randn(2, 5, 3), output=0)
    assert_no_batch_mixing(nn.Linear(3, 3), torch.randn(4, 3))
    assert calls == []
    caught(assert_no_batch_mixing, lambda x: x + x.mean(0), torch.randn(4, 3))
    assert calls == [1]


def test_a_search_that_breaks_never_hides_the_failure(monkeypatch):
    def broken(search):
        raise RuntimeError("boom")

    monkeypatch.setattr(_driver, "localise", broken)
    message = caught(assert_no_batch_mixing, lambda x: x + x.mean(0), torch.randn(4, 3))
    assert "Where: not localised (RuntimeError: boom)" in message
    assert "Likely cause: none guessed" in message


def test_the_message_states_what_the_search_cost():
    message = caught(assert_no_batch_mixing, lambda x: x + x.mean(0), torch.randn(4, 3))
    assert "localised by perturbation: 6 forwards" in message and "run only on failure" in message


class CausalConv(nn.Module):
    """A causal convolution over channels-first (B, C, T) inputs."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (2, 0)))


def test_a_channels_first_model_checked_with_the_default_time_dim_suggests_time_dim_minus_one():
    x = torch.randn(2, 4, 9)
    assert assert_causal(CausalConv(4), x, time_dim=-1).pairs == 36
    message = caught(assert_causal, CausalConv(4), x)
    assert "the check passes with time_dim=-1" in message and "channels-first" in message
    with pytest.raises(ValueError, match=r"channels-first \(B, C, T\).*pass time_dim=-1"):
        assert_causal(CausalConv(5), x)


def test_a_leaking_model_gets_no_time_dim_hint_when_the_other_layout_does_not_fit():
    norm = nn.LayerNorm([6, 3])  # passes along the features too, but it is no convolution
    message = caught(assert_causal, lambda x: norm(x), torch.randn(2, 6, 3))
    assert "time_dim=-1" not in message


def test_a_time_major_model_checked_with_the_default_batch_dim_suggests_batch_dim_one():
    rnn = nn.LSTM(3, 4)  # (T, B, C)
    message = caught(assert_no_batch_mixing, lambda x: rnn(x)[0], torch.randn(6, 2, 3))
    assert "the check passes with batch_dim=1" in message and "time-major" in message
    assert "Where: it starts in rnn (LSTM(batch_first=False, bidirectional=False))" in message
    mixer = nn.Linear(3, 3)
    message = caught(assert_no_batch_mixing, lambda x: mixer(x - x.mean(0)), torch.randn(6, 2, 3))
    assert "batch_dim=1" not in message  # the check would pass with it, but no layout says so


@pytest.mark.parametrize("keepdim", [False, True], ids=["dropped", "kept"])
def test_a_pooled_output_is_called_pooled_not_an_unpadded_convolution(keepdim):
    head = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"looks pooled over time") as info:
        assert_causal(lambda x: head(x.mean(1, keepdim=keepdim)), torch.randn(2, 5, 3))
    assert "convolution" not in str(info.value)
