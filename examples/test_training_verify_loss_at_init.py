"""Verify the loss at init, and init well: the loss of the untrained model must be the loss of
the best input-independent prediction (log(C) for balanced classes, the prior's entropy for
imbalanced ones, the targets' variance for MSE). The message says which init fixes it.
"""

from __future__ import annotations

import math

import pytest
import torch
from models_training import (
    Classifier,
    Regressor,
    binary_batch,
    classification_batch,
    init_bias_log_odds,
    init_bias_log_prior,
    init_bias_mean,
    regression_batch,
)
from torch import nn


def test_a_default_initialised_classifier_starts_at_log_n_classes(assert_init_loss):
    x, y = classification_batch(n=64)
    result = assert_init_loss(Classifier(), x, y, nn.CrossEntropyLoss())
    assert result.expected == pytest.approx(math.log(4))


def test_final_layer_weights_scaled_by_20_make_the_logits_too_large(assert_init_loss):
    x, y = classification_batch(n=64)
    model = Classifier()
    with torch.no_grad():
        model.head.weight.mul_(20)
    with pytest.raises(AssertionError, match=r"logits are too large at init: their std"):
        assert_init_loss(model, x, y, nn.CrossEntropyLoss())


def imbalanced_classes(n: int = 100):
    """80% class 0, 15% class 1, 5% class 2."""
    return torch.randn(n, 8), torch.tensor([0] * 80 + [1] * 15 + [2] * 5)[:n]


def test_imbalanced_classes_with_a_zero_bias_start_at_log_n_not_at_the_prior(assert_init_loss):
    x, y = imbalanced_classes()
    model = Classifier(n_classes=3)
    with torch.no_grad():
        model.head.bias.zero_()
    with pytest.raises(AssertionError, match=r"bias = log p = \[-0\.2231, -1\.897, -2\.996\]"):
        assert_init_loss(model, x, y, nn.CrossEntropyLoss())


def test_the_bias_as_the_log_prior_starts_at_the_priors_entropy(assert_init_loss):
    x, y = imbalanced_classes()
    model = Classifier(n_classes=3)
    init_bias_log_prior(model.head, y, 3)
    assert_init_loss(model, x, y, nn.CrossEntropyLoss())


def test_an_imbalanced_binary_task_with_a_zero_bias_starts_too_high(assert_init_loss):
    x, y = binary_batch(positive_rate=0.1)
    model = Classifier(n_classes=1)
    with torch.no_grad():
        model.head.bias.zero_()
    with pytest.raises(AssertionError, match=r"bias = log\(p / \(1 - p\)\) = -2\.\d+"):
        assert_init_loss(model, x, y, nn.BCEWithLogitsLoss())


def test_the_bias_as_the_log_odds_of_the_positive_rate_starts_right(assert_init_loss):
    x, y = binary_batch(positive_rate=0.1)
    model = Classifier(n_classes=1)
    init_bias_log_odds(model.head, y)
    assert_init_loss(model, x, y, nn.BCEWithLogitsLoss())


def test_regression_targets_around_50_with_a_zero_bias_start_far_too_high(assert_init_loss):
    x, y = regression_batch(n=64, mean=50.0)
    model = Regressor()
    with torch.no_grad():
        model.head.bias.zero_()
    with pytest.raises(AssertionError, match=r"bias to the target mean, bias = (49|50|51)\.\d+"):
        assert_init_loss(model, x, y, nn.MSELoss())


def test_the_bias_as_the_target_mean_starts_at_the_targets_variance(assert_init_loss):
    x, y = regression_batch(n=64, mean=50.0)
    model = Regressor()
    init_bias_mean(model.head, y)
    result = assert_init_loss(model, x, y, nn.MSELoss())
    assert result.expected == pytest.approx(float(y.var(unbiased=False)))
