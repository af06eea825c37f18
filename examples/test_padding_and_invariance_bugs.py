"""Padding and invariance bugs that still let a model train, each caught with where it shows
and, for padding, the likely cause read from the evidence."""

from __future__ import annotations

import pytest
import torch
from models_invariance import (
    CircularConv,
    DeepSets,
    FlattenByHand,
    TextClassifier,
    padded_tokens,
    tiny_bert,
)


def test_mean_pooling_over_padding_is_caught(assert_padding_ignored):
    with pytest.raises(
        AssertionError, match=r"(?s)pooled output of sample \d.*padded position.*a pooling over"
    ):
        assert_padding_ignored(TextClassifier(bug="pool over padding"), padded_tokens())


def test_a_mask_not_passed_to_attention_is_caught(assert_padding_ignored):
    with pytest.raises(AssertionError, match="a layer before the pooling reads padded positions"):
        assert_padding_ignored(TextClassifier(bug="mask not passed"), padded_tokens())


def test_an_inverted_mask_is_caught(assert_padding_ignored):
    with pytest.raises(AssertionError, match="a mask with the wrong polarity"):
        assert_padding_ignored(TextClassifier(bug="inverted mask"), padded_tokens())


def test_bert_left_padded_pools_a_pad_token(assert_padding_ignored):
    pytest.importorskip("transformers")
    with pytest.raises(AssertionError, match=r"a pooling that reads one position, 0"):
        assert_padding_ignored(tiny_bert(), padded_tokens(left=True))


def test_pooling_over_padding_changes_with_more_padding(assert_padding_invariant):
    with pytest.raises(AssertionError, match=r"more padded position\(s\) on the right"):
        assert_padding_invariant(TextClassifier(bug="pool over padding"), padded_tokens())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_set_model_that_reads_positions_is_caught(assert_permutation_invariant, dtype):
    with pytest.raises(AssertionError, match=r"permutation along dim=1.*x the threshold"):
        assert_permutation_invariant(
            DeepSets(positions=True).to(dtype), torch.randn(4, 8, 3).to(dtype), dim=1
        )


def test_zero_padded_convolutions_are_not_shift_equivariant(assert_equivariant):
    def shift(t):
        return t.roll(5, -1)

    with pytest.raises(AssertionError, match=r"Largest difference: .* at index"):
        assert_equivariant(CircularConv("zeros"), torch.randn(3, 2, 16), shift, shift)


def test_flattening_by_memory_order_breaks_under_channels_last(assert_layout_invariant):
    with pytest.raises(AssertionError, match=r"channels_last copy of the inputs"):
        assert_layout_invariant(FlattenByHand(), torch.randn(2, 3, 6, 6))
