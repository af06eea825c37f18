"""Every trainable parameter must get a gradient and change in one step; the message names
the ones that do not (a detached branch, a layer that forward never uses).
"""

from __future__ import annotations

import pytest
from models_training import TwoBranch, classification_batch
from torch import nn


def test_every_parameter_learns(assert_params_update):
    x, y = classification_batch()
    result = assert_params_update(TwoBranch(), x, y, nn.CrossEntropyLoss())
    assert len(result.checked) == 4


def test_a_detached_branch_and_an_unused_layer_are_named(assert_params_update):
    x, y = classification_batch()
    with pytest.raises(
        AssertionError,
        match=r"(?s)unused: extra never ran in forward.*detached: right ran but no gradient",
    ):
        assert_params_update(TwoBranch(detach=True, unused=True), x, y, nn.CrossEntropyLoss())


def test_intended_exceptions_are_ignored_by_pattern(assert_params_update):
    x, y = classification_batch()
    model = TwoBranch(unused=True)
    assert_params_update(model, x, y, nn.CrossEntropyLoss(), ignore=["extra.*"])
