"""Correct models pass the structural checks ("use backprop to chart dependencies").

The fixtures ``assert_no_batch_mixing`` and ``assert_causal`` run the checks on the test's
device (``--nn-gpu``) under the test's seed; the plain functions from ``pytest_nnrecipe``
work the same outside pytest.
"""

from __future__ import annotations

import torch
from models_structural import (
    CNN,
    MLP,
    CausalConvNet,
    CausalTransformer,
    DictOutputModel,
    LSTMLanguageModel,
    SequenceEncoder,
    tokens,
)

from pytest_nnrecipe import assert_causal


def test_an_mlp_keeps_samples_apart(assert_no_batch_mixing):
    result = assert_no_batch_mixing(MLP(), torch.randn(8, 8))
    # every sample depends on itself and on no other sample (checked for all 56 pairs)
    assert result.matrix.diagonal().all() and result.pairs == 8 * 7


def test_a_cnn_with_batchnorm_keeps_samples_apart_in_eval_mode(assert_no_batch_mixing):
    result = assert_no_batch_mixing(CNN(), torch.randn(6, 3, 8, 8))
    assert result.mode == "eval"


def test_a_time_major_rnn_behind_permute_keeps_samples_apart(assert_no_batch_mixing):
    assert_no_batch_mixing(SequenceEncoder(), torch.randn(4, 6, 8))
    assert_no_batch_mixing(SequenceEncoder(vocab=20), tokens())  # token ids: perturb (cpu) or grad


def test_a_conv_net_with_left_padding_is_causal():
    # (batch, channels, time): say where time is
    result = assert_causal(CausalConvNet(), torch.randn(3, 4, 16), time_dim=-1)
    assert result.pairs == 16 * 15 // 2


def test_a_transformer_encoder_with_a_causal_mask_is_causal(assert_causal):
    assert_causal(CausalTransformer(), torch.randn(2, 10, 16))
    assert_causal(CausalTransformer(vocab=20), tokens(steps=10))


def test_a_transformer_is_causal_under_every_attention_backend(assert_causal):
    result = assert_causal(CausalTransformer(), torch.randn(2, 6, 16), sdpa_backends="all")
    assert result.backends["math"] == "causal"


def test_an_lstm_language_model_is_causal_and_keeps_samples_apart(
    assert_causal, assert_no_batch_mixing
):
    model = LSTMLanguageModel()
    assert_causal(model, tokens())
    assert_no_batch_mixing(model, tokens())


def test_token_ids_can_be_checked_by_gradient_at_the_embedding(assert_causal):
    result = assert_causal(LSTMLanguageModel(), tokens(), method="grad")
    assert result.method == "grad"


def test_a_model_returning_a_dict_is_checked_on_its_logits(assert_causal, assert_no_batch_mixing):
    batch = {"input_ids": tokens()}  # a dict of inputs is passed as keyword arguments
    assert_causal(DictOutputModel(), batch)
    assert_no_batch_mixing(DictOutputModel(), batch, output="loss_per_token")
