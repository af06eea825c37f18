"""Correct models pass the padding and invariance checks, for every seed, at inputs x1000 and
in bfloat16: the threshold is the model's own rounding error at that precision, measured."""

from __future__ import annotations

import pytest
import torch
from models_invariance import (
    CircularConv,
    DeepSets,
    SetTagger,
    TextClassifier,
    padded_tokens,
    tiny_bert,
)
from torch import nn

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])


@DTYPES
@pytest.mark.parametrize("left", [False, True], ids=["right padding", "left padding"])
def test_masked_mean_pooling_ignores_padding(assert_padding_ignored, left, dtype):
    result = assert_padding_ignored(TextClassifier().to(dtype), padded_tokens(left=left))
    assert result.pooled and not result.matrix.any()


@DTYPES
def test_masked_mean_pooling_ignores_padding_by_perturbation_too(assert_padding_ignored, dtype):
    assert_padding_ignored(TextClassifier().to(dtype), padded_tokens(), method="perturb")


@DTYPES
@pytest.mark.parametrize("side", ["right", "left"])
def test_masked_mean_pooling_is_padding_invariant(assert_padding_invariant, side, dtype):
    assert_padding_invariant(
        TextClassifier().to(dtype), padded_tokens(left=side == "left"), extra=3, side=side
    )


def test_bert_with_its_attention_mask_ignores_right_padding(
    assert_padding_ignored, assert_padding_invariant
):
    pytest.importorskip("transformers")
    bert, batch = tiny_bert(), padded_tokens()
    assert_padding_ignored(bert, batch)
    assert_padding_ignored(bert, batch, output=lambda out: out.logits, method="perturb")
    assert_padding_invariant(bert, batch, extra=4)


SETTINGS = [(1.0, torch.float32), (1000.0, torch.float32), (1.0, torch.bfloat16)]
IDS = ["float32", "inputs x1000", "bfloat16"]


@pytest.mark.parametrize(("scale", "dtype"), SETTINGS, ids=IDS)
def test_deep_sets_is_permutation_invariant(assert_permutation_invariant, scale, dtype):
    x = (torch.randn(4, 8, 3) * scale).to(dtype)
    result = assert_permutation_invariant(DeepSets().to(dtype), x, dim=1)
    assert result.largest <= result.threshold


@pytest.mark.parametrize(("scale", "dtype"), SETTINGS, ids=IDS)
def test_a_per_element_model_is_permutation_equivariant(
    assert_permutation_equivariant, scale, dtype
):
    x = (torch.randn(4, 8, 3) * scale).to(dtype)
    assert_permutation_equivariant(SetTagger().to(dtype), x, dim=1)


@pytest.mark.parametrize(("scale", "dtype"), SETTINGS, ids=IDS)
def test_a_circular_convolution_is_shift_equivariant(assert_equivariant, scale, dtype):
    x = (torch.randn(3, 2, 16) * scale).to(dtype)

    def shift(t):
        return t.roll(5, -1)

    assert_equivariant(CircularConv().to(dtype), x, shift, shift)


@pytest.mark.parametrize(("scale", "dtype"), SETTINGS, ids=IDS)
def test_a_cnn_is_layout_invariant(assert_layout_invariant, scale, dtype):
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    ).to(dtype)
    x = (torch.randn(2, 3, 6, 6) * scale).to(dtype)
    assert assert_layout_invariant(net, x).variants == ("non-contiguous", "channels_last")


@pytest.mark.parametrize(("scale", "dtype"), SETTINGS, ids=IDS)
def test_bert_on_embeddings_ignores_padding_at_any_scale(assert_padding_ignored, scale, dtype):
    # float content: the gradient reaches it directly. ids= names the content to resample;
    # token_type_ids, of the same length, is held as given.
    pytest.importorskip("transformers")
    bert, batch = tiny_bert().to(dtype), padded_tokens()
    embeds = (torch.randn(*batch["input_ids"].shape, 16) * scale).to(dtype)
    inputs = {
        "inputs_embeds": embeds,
        "attention_mask": batch["attention_mask"],
        "token_type_ids": torch.zeros_like(batch["input_ids"]),
    }
    result = assert_padding_ignored(bert, inputs, ids="inputs_embeds")
    assert result.method == "grad" and result.resampled == ("inputs['inputs_embeds']",)
