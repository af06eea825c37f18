"""Verify decreasing training loss, and the input-independent baseline: a model trained on its
real inputs must do clearly better than the same model trained on zeroed inputs.
"""

from __future__ import annotations

import pytest
import torch
from models_training import Classifier, classification_batch
from torch import nn


def test_a_few_steps_lower_the_loss(assert_loss_decreases):
    x, y = classification_batch()
    assert_loss_decreases(Classifier(), x, y, nn.CrossEntropyLoss())


def test_a_learning_rate_of_zero_does_nothing(assert_loss_decreases):
    x, y = classification_batch()
    with pytest.raises(AssertionError, match=r"did not decrease by 5% in 20 steps"):
        assert_loss_decreases(
            Classifier(),
            x,
            y,
            nn.CrossEntropyLoss(),
            optimizer=lambda params: torch.optim.SGD(params, lr=0.0),
        )


def test_the_model_beats_its_input_independent_baseline(assert_beats_input_independent_baseline):
    x, y = classification_batch()
    assert_beats_input_independent_baseline(Classifier(), x, y, nn.CrossEntropyLoss())


def test_a_model_that_multiplies_its_input_by_zero_learns_nothing_from_it(
    assert_beats_input_independent_baseline,
):
    x, y = classification_batch()
    with pytest.raises(AssertionError, match=r"(?s)zeroed inputs.*does not use its input"):
        assert_beats_input_independent_baseline(
            Classifier(input_scale=0.0), x, y, nn.CrossEntropyLoss()
        )
