"""Bugs that still let a model train, each caught by a structural check with its cause named.

Each test shows what the failure message says; run one without ``pytest.raises`` to see the
whole message with its dependency picture.
"""

from __future__ import annotations

import pytest
import torch
from models_structural import (
    CNN,
    BatchNormByHand,
    CausalConvNet,
    CausalTransformer,
    LSTMLanguageModel,
    SequenceEncoder,
    tokens,
)

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing


def test_view_instead_of_permute_mixes_the_batch():
    with pytest.raises(AssertionError, match=r"output of sample \d+ depends on input of sample"):
        assert_no_batch_mixing(SequenceEncoder(reorder="view"), torch.randn(4, 6, 8))


def test_view_instead_of_permute_mixes_the_batch_with_token_ids():
    # token ids: by perturbation on the CPU in float32 (reruns are bitwise identical), by
    # gradient at the output of the embedding that reads them in half precision or on a GPU
    with pytest.raises(AssertionError, match=r"(?s)view.*method=(perturb|grad)"):
        assert_no_batch_mixing(SequenceEncoder(vocab=20, reorder="view"), tokens())


def test_normalising_over_the_batch_mixes_every_pair():
    with pytest.raises(AssertionError, match=r"(?s)Mixing pairs.*: 12 of 12 .*dim 0"):
        assert_no_batch_mixing(BatchNormByHand(), torch.randn(4, 8))


def test_batchnorm_in_train_mode_is_named_as_the_cause(assert_no_batch_mixing):
    with pytest.raises(AssertionError, match=r"(?s)train-mode BatchNorm.*mode=train"):
        assert_no_batch_mixing(CNN(), torch.randn(4, 3, 8, 8), train=True)


def test_attention_without_a_mask_sees_the_future(assert_causal):
    with pytest.raises(
        AssertionError, match=r"(?s)depends on input at step.*without a causal mask"
    ):
        assert_causal(CausalTransformer(mask="none"), torch.randn(2, 8, 16))


def test_a_mask_off_by_one_lets_each_step_see_the_next(assert_causal):
    with pytest.raises(AssertionError, match=r"(?s)Leaking pairs.*: 13 of 28 .*off by one"):
        assert_causal(CausalTransformer(mask="off_by_one"), torch.randn(2, 8, 16))


def test_a_mask_off_by_one_is_caught_with_token_ids(assert_causal):
    with pytest.raises(AssertionError, match=r"(?s)off by one.*method=(perturb|grad)"):
        assert_causal(CausalTransformer(vocab=20, mask="off_by_one"), tokens())


def test_attention_without_a_mask_is_caught_with_token_ids(assert_causal):
    with pytest.raises(AssertionError, match=r"without a causal mask"):
        assert_causal(CausalTransformer(vocab=20, mask="none"), tokens())


def test_a_bidirectional_lstm_is_no_language_model(assert_causal):
    with pytest.raises(AssertionError, match=r"bidirectional LSTM"):
        assert_causal(LSTMLanguageModel(bidirectional=True), tokens())


def test_symmetric_padding_makes_a_conv_net_look_ahead():
    with pytest.raises(
        AssertionError, match=r"(?s)output at step \d+ depends on input at step.*symmetric padding"
    ):
        assert_causal(CausalConvNet(padding="symmetric"), torch.randn(2, 4, 12), time_dim=-1)


def test_symmetric_padding_is_caught_behind_an_embedding_too():
    model = torch.nn.Sequential(
        torch.nn.Embedding(20, 4), Transpose(), CausalConvNet(padding="symmetric")
    )
    with pytest.raises(AssertionError, match=r"look.*ahead"):
        assert_causal(model, tokens(), output_time_dim=-1)


class Transpose(torch.nn.Module):
    """(batch, time, channels) -> (batch, channels, time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)
