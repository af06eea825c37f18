"""The recipe's "fix random seed": from the same seed, two forwards and two short training
runs must agree bit for bit; when they do not, the message names where they part and why.
"""

from __future__ import annotations

import pytest
import torch
from models_determinism import (
    CallCounter,
    ClockNoise,
    DropoutNet,
    ScatterPool,
    Wrapped,
    batch,
)
from torch import nn


def test_a_model_with_dropout_is_reproducible(assert_deterministic, nn_device):
    x, y = batch(nn_device)
    result = assert_deterministic(DropoutNet(), x, y, nn.CrossEntropyLoss())
    assert result.steps == 3 and len(result.losses) == 4


def test_a_generator_seeded_from_the_clock_is_caught(assert_deterministic, nn_device):
    x, _ = batch(nn_device)
    with pytest.raises(
        AssertionError,
        match=r"(?s)output of `middle` \(ClockNoise\).*"
        r"`middle.gen` \(torch.Generator, initial seed \d+\) advanced",
    ):
        assert_deterministic(Wrapped(ClockNoise()), x)


def test_a_module_that_counts_its_calls_is_caught(assert_deterministic, nn_device):
    x, y = batch(nn_device)
    with pytest.raises(
        AssertionError,
        match=r"(?s)state carried from call to call in `middle` \(CallCounter\): during one "
        r"forward its attribute calls: \d+ -> \d+",
    ):
        assert_deterministic(Wrapped(CallCounter()), x, y, nn.CrossEntropyLoss())


@pytest.mark.nn_gpu
def test_a_scatter_add_with_atomics_is_caught_on_cuda(assert_deterministic, nn_device):
    if torch.are_deterministic_algorithms_enabled():
        pytest.skip("--nn-deterministic makes index_add deterministic: nothing to catch")
    x, y = batch(nn_device)
    with pytest.raises(
        AssertionError,
        match=r"(?s)aten.index_add.*non-deterministic kernels: with "
        r"torch.use_deterministic_algorithms\(True\) the runs agree.*--nn-deterministic",
    ):
        assert_deterministic(ScatterPool(), x, y, nn.CrossEntropyLoss())
