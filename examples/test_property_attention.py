"""Generalise a special case: a vectorised multi-head attention against the loop-over-heads
reference it replaced, compared over many generated shapes, not one hand-picked batch.

The recipe's advice: write the simple, loopy version first, vectorise it, and check the two
agree. Hypothesis draws the number of heads, the head size, the batch size and the length;
``torch.testing.assert_close`` compares.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_nnrecipe import strategies as nst


def attention_loop(x: torch.Tensor, w_qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """The reference: one head at a time."""
    d = x.shape[-1]
    size = d // heads
    q, k, v = (x @ w_qkv).split(d, dim=-1)
    outputs = []
    for h in range(heads):
        cols = slice(h * size, (h + 1) * size)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(size)
        outputs.append(scores.softmax(dim=-1) @ v[..., cols])
    return torch.cat(outputs, dim=-1)


def attention_vectorised(
    x: torch.Tensor, w_qkv: torch.Tensor, heads: int, *, split: str = "view"
) -> torch.Tensor:
    """All heads at once. ``split="reshape"`` is the bug: (B, T, D) reshaped straight to
    (B, heads, T, size), which cuts time and heads apart wrongly (right only for 1 head or
    1 step)."""
    b, t, d = x.shape
    size = d // heads
    q, k, v = (x @ w_qkv).split(d, dim=-1)

    def by_head(z: torch.Tensor) -> torch.Tensor:
        if split == "reshape":
            return z.reshape(b, heads, t, size)
        return z.view(b, t, heads, size).transpose(1, 2)

    q, k, v = by_head(q), by_head(k), by_head(v)
    out = (q @ k.transpose(-2, -1) / math.sqrt(size)).softmax(dim=-1) @ v
    return out.transpose(1, 2).reshape(b, t, d)


@st.composite
def attention_inputs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A batch (B, T, heads * size) and a qkv projection (D, 3D)."""
    heads = draw(st.integers(1, 4), label="heads")
    d = heads * draw(st.integers(1, 4), label="head size")
    x = draw(nst.sequence_batches(features=d, max_batch=4, max_length=8, min_value=-2, max_value=2))
    w_qkv = draw(nst.tensors((d, 3 * d), min_value=-1, max_value=1))
    return x, w_qkv, heads


@given(attention_inputs())
def test_vectorised_attention_matches_the_loop_over_heads(inputs):
    x, w_qkv, heads = inputs
    torch.testing.assert_close(
        attention_vectorised(x, w_qkv, heads), attention_loop(x, w_qkv, heads)
    )


@st.composite
def attention_shapes(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Like attention_inputs, but only the shapes are drawn; the values are seeded random
    numbers. When a bug lives in the shapes, shrinking then works on the shapes alone, which
    takes a fraction of the time of shrinking every element."""
    heads = draw(st.integers(1, 4), label="heads")
    shape = draw(nst.sequence_shapes(features=heads * draw(st.integers(1, 4)), max_length=8))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    return x, torch.randn(shape[-1], 3 * shape[-1], generator=g), heads


def test_hypothesis_finds_the_head_split_that_cuts_time_and_heads_apart():
    tried = []

    @given(attention_shapes())
    def vectorised_with_reshape_matches_the_loop(inputs):
        x, w_qkv, heads = inputs
        tried.append((tuple(x.shape), heads))
        torch.testing.assert_close(
            attention_vectorised(x, w_qkv, heads, split="reshape"), attention_loop(x, w_qkv, heads)
        )

    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        vectorised_with_reshape_matches_the_loop()
    # Hypothesis replays the shrunk example last: the smallest case that shows the bug,
    # two heads of size 1 over two steps, in a batch of two.
    assert tried[-1] == ((2, 2, 2), 2)
