"""Three checks that cost one forward (and backward) at most, before any training: every
input is used, your optimizer holds exactly the parameters that should learn, the loss can
train the model. Each catches a silent bug that training would only show as a worse model.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from models_pre_training import (
    MaskDroppingClassifier,
    SentenceClassifier,
    padded_batch,
)
from torch import nn


def test_a_correct_classifier_uses_every_input(assert_inputs_used, nn_device):
    batch, _ = padded_batch(nn_device)
    result = assert_inputs_used(SentenceClassifier().to(nn_device), batch)
    assert result.inputs == ("input_ids", "attention_mask", "token_type_ids")


def test_a_wrapper_that_drops_the_attention_mask_is_caught(assert_inputs_used, nn_device):
    batch, _ = padded_batch(nn_device)
    with pytest.raises(
        AssertionError,
        match=r"(?s)attention_mask does not influence the output.*"
        r"attention_mask is never read: not passed on to the encoder\?",
    ):
        assert_inputs_used(MaskDroppingClassifier().to(nn_device), batch)


def test_an_optimizer_built_after_the_head_swap_holds_every_parameter(assert_optimizer_covers):
    model = SentenceClassifier()
    model.bert.classifier = nn.Linear(32, 5)  # a new head for 5 classes...
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)  # ...then the optimizer
    assert assert_optimizer_covers(model, optimizer).trainable == len(list(model.parameters()))


def test_an_optimizer_built_before_the_head_swap_is_caught(assert_optimizer_covers):
    model = SentenceClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.bert.classifier = nn.Linear(32, 5)  # the new head never gets into the optimizer
    with pytest.raises(
        AssertionError,
        match=r"(?s)bert\.classifier\.weight, bert\.classifier\.bias.*"
        r"built before module 'bert\.classifier' was replaced",
    ):
        assert_optimizer_covers(model, optimizer)


def loss_from_item(logits, labels):
    """The bug: the loss goes through a Python float (for logging, say) and comes back as a
    new tensor with no graph."""
    value = F.cross_entropy(logits, labels).item()
    return torch.tensor(value, device=logits.device)


def test_a_loss_rebuilt_from_item_is_caught_before_any_training(assert_can_overfit, nn_device):
    batch, labels = padded_batch(nn_device)
    with pytest.raises(
        AssertionError,
        match=r"(?s)loss_fn returned a tensor with no graph.*loss_fn calls \.item\(\) on a "
        r"tensor that requires grad, at .*test_pre_training_checks\.py",
    ):
        assert_can_overfit(SentenceClassifier().to(nn_device), batch, labels, loss_from_item)
