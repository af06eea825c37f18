"""Every correct setup passes whatever the seed: 20 seeds of the example models, every check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_nnrecipe import (
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_init_loss,
    assert_loss_decreases,
    assert_params_update,
)
from pytest_nnrecipe._context import RunContext, activate


def mlp(n_out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, n_out))


@pytest.mark.parametrize("seed", range(20))
def test_correct_setups_pass_every_training_check(seed):
    torch.manual_seed(seed)
    x = torch.randn(16, 8)
    classes, values = torch.arange(16) % 4, torch.randn(16, 1)
    outliers = values.clone()
    outliers[-2:] = 10.0
    with activate(RunContext(nodeid=f"seed-{seed}", seed=seed)):
        for model, y, loss in [
            (mlp(4), classes, nn.CrossEntropyLoss()),
            (mlp(4, dropout=0.1), classes, nn.CrossEntropyLoss()),
            (mlp(1), values, nn.MSELoss()),
            (mlp(1), outliers, nn.MSELoss()),
        ]:
            assert assert_can_overfit(model, x, y, loss).steps <= 200
        model = mlp(4)
        assert_init_loss(model, torch.randn(64, 8), torch.arange(64) % 4, nn.CrossEntropyLoss())
        assert_loss_decreases(model, x, classes, nn.CrossEntropyLoss())
        assert_beats_input_independent_baseline(model, x, classes, nn.CrossEntropyLoss())
        assert_params_update(model, x, classes, nn.CrossEntropyLoss())
