"""Overfit one batch: a copy of the model, trained on a few samples, must reach the lowest
achievable loss. Bugs between the output and the loss make that impossible, and the message
names the symptom next to the loss curve and each sample's label and prediction.
"""

from __future__ import annotations

import pytest
from models_training import (
    Classifier,
    Regressor,
    clamped_mse,
    classification_batch,
    regression_batch,
    with_outliers,
)
from torch import nn


def test_a_classifier_memorises_one_batch(assert_can_overfit):
    x, y = classification_batch()
    result = assert_can_overfit(Classifier(), x, y, nn.CrossEntropyLoss())
    assert result.steps <= 200


def test_a_softmax_before_cross_entropy_is_a_double_softmax(assert_can_overfit):
    x, y = classification_batch()
    with pytest.raises(AssertionError, match=r"(?s)did not fit one batch.*double softmax"):
        assert_can_overfit(Classifier(softmax=True), x, y, nn.CrossEntropyLoss())


def test_a_regressor_memorises_one_batch(assert_can_overfit):
    x, y = regression_batch()
    assert assert_can_overfit(Regressor(), x, y, nn.MSELoss()).steps <= 200


def test_a_relu_on_the_regression_head_cannot_reach_negative_targets(assert_can_overfit):
    x, y = regression_batch()
    with pytest.raises(AssertionError, match=r"(?s)targets lie outside it.*\(ReLU/softplus\)"):
        assert_can_overfit(Regressor(relu_head=True), x, y, nn.MSELoss())


def test_clamping_the_loss_silently_ignores_the_outliers(assert_can_overfit):
    x, y = regression_batch()
    y = with_outliers(y)
    with pytest.raises(
        AssertionError, match=r"(?s)gradient died away.*clip the gradients, not the loss"
    ):
        assert_can_overfit(Regressor(), x, y, clamped_mse)


def test_the_plain_loss_fits_the_outliers_too(assert_can_overfit):
    x, y = regression_batch()
    y = with_outliers(y)
    assert assert_can_overfit(Regressor(), x, y, nn.MSELoss()).steps <= 200


def test_dropout_so_high_that_one_batch_cannot_be_fit(assert_can_overfit):
    x, y = classification_batch()
    with pytest.raises(AssertionError, match=r"(?s)dropout stays active.*Dropout\(p=0\.9\)"):
        assert_can_overfit(Classifier(dropout=0.9), x, y, nn.CrossEntropyLoss())


def test_light_dropout_still_fits_one_batch(assert_can_overfit):
    x, y = classification_batch()
    assert assert_can_overfit(Classifier(dropout=0.1), x, y, nn.CrossEntropyLoss()).steps <= 200
