"""Don't trust learning-rate decay defaults: the schedule must not drive the learning rate to
almost nothing long before the end of the run. The optimiser and scheduler are simulated on
copies; yours are never stepped.
"""

from __future__ import annotations

import pytest
import torch
from models_training import Classifier

from pytest_nnrecipe import assert_lr_schedule

STEPS = 1000


def sgd():
    return torch.optim.SGD(Classifier().parameters(), lr=0.1)


def test_step_lr_with_step_size_1_kills_the_learning_rate_after_two_steps():
    opt = sgd()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    with pytest.raises(AssertionError, match=r"(?s)falls below 1% of its peak.*at step 3 of 1000"):
        assert_lr_schedule(opt, sched, STEPS)


def test_cosine_over_the_whole_run_keeps_learning_until_the_end():
    opt = sgd()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    assert assert_lr_schedule(opt, sched, STEPS).collapse_step > 0.9 * STEPS


def test_warm_up_then_cosine_passes():
    opt = sgd()
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=100)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS - 100)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[100])
    assert_lr_schedule(opt, sched, STEPS)


def test_one_cycle_over_the_run_passes():
    opt = sgd()
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=STEPS)
    assert_lr_schedule(opt, sched, STEPS)
