"""Planted shape bugs that a hand-picked shape hides and Hypothesis finds, shrunk to the
smallest shape that shows them.

A test written with one batch of shape (4, 8, 16) passes both buggy functions below. Drawn
shapes break them within a few examples, and the report names the smallest failing shape.
Each bug is next to its fix, and the fix passes the same property.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings

from pytest_nnrecipe import strategies as nst


def seeded(shape: tuple[int, ...]) -> torch.Tensor:
    """Values do not matter for a shape bug: seeded noise, so shrinking works on the shape."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


# --- 1. breaks only for odd lengths -------------------------------------------------------


def halve_time(x: torch.Tensor, *, pad_odd: bool = True) -> torch.Tensor:
    """(B, T, F) -> (B, ceil(T / 2), F): average each pair of neighbouring steps. Without
    ``pad_odd`` (the bug) an odd T cannot be split into pairs."""
    b, t, f = x.shape
    if pad_odd and t % 2:
        x = torch.cat([x, x[:, -1:]], dim=1)  # repeat the last step
        t += 1
    return x.reshape(b, t // 2, 2, f).mean(dim=2)


@given(shape=nst.sequence_shapes())
def test_halving_time_gives_half_the_steps_rounded_up(shape):
    b, t, f = shape
    assert halve_time(seeded(shape)).shape == (b, math.ceil(t / 2), f)


def test_hypothesis_finds_the_odd_length_and_shrinks_it_to_one_step():
    tried = []

    @given(shape=nst.sequence_shapes())
    def halving_without_padding_works(shape):
        tried.append(shape)
        halve_time(seeded(shape), pad_odd=False)

    with pytest.raises(RuntimeError, match="is invalid for input of size"):
        halving_without_padding_works()
    assert tried[-1] == (2, 1, 1)  # the shrunk example, replayed last: the smallest odd length


# --- 2. works only when batch == channels -------------------------------------------------


def center_channels(x: torch.Tensor, *, keepdim: bool = True) -> torch.Tensor:
    """Subtract each channel's mean over batch and pixels from an NCHW batch. Without
    ``keepdim`` (the bug) the means are put back as (C, 1, 1, 1), which broadcasts along the
    batch: it only runs when batch == channels (or one channel), and is then wrong."""
    if keepdim:
        return x - x.mean(dim=(0, 2, 3), keepdim=True)
    return x - x.mean(dim=(0, 2, 3))[:, None, None, None]


@given(shape=nst.image_shapes())
def test_centred_channels_have_zero_mean(shape):
    means = center_channels(seeded(shape)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(means, torch.zeros(shape[1]), atol=1e-5, rtol=0)


def test_hypothesis_finds_that_the_channel_means_broadcast_along_the_batch():
    tried = []

    # Two symptoms (a crash when batch != channels, wrong means when equal): report only the
    # smallest example instead of one per symptom.
    @settings(report_multiple_bugs=False)
    @given(shape=nst.image_shapes())
    def centred_channels_have_zero_mean(shape):
        tried.append(shape)
        means = center_channels(seeded(shape), keepdim=False).mean(dim=(0, 2, 3))
        torch.testing.assert_close(means, torch.zeros(shape[1]), atol=1e-5, rtol=0)

    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        centred_channels_have_zero_mean()
    # The smallest shape that shows it: two channels (one channel is right by luck), and
    # batch == channels, where the wrong broadcast runs and gives wrong means.
    assert tried[-1] == (2, 2, 1, 1)
