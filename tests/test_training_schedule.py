"""assert_lr_schedule: simulated on copies, fails when the rate collapses early."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_nnrecipe import assert_lr_schedule
from pytest_nnrecipe._context import RunContext, activate

S = torch.optim.lr_scheduler


def opt(lr=0.1):
    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)


def test_step_lr_every_step_fails_with_the_curve_and_the_cause():
    o = opt()
    with pytest.raises(AssertionError) as info:
        assert_lr_schedule(o, S.StepLR(o, step_size=1, gamma=0.1), 1000)
    text = str(info.value)
    assert "falls below 1% of its peak (0.1) at step 3 of 1000" in text
    assert "learning rate over 1000 steps" in text and "counts scheduler.step() calls" in text


@pytest.mark.parametrize(
    "make",
    [
        lambda o: S.CosineAnnealingLR(o, T_max=1000),
        lambda o: S.SequentialLR(
            o, [S.LinearLR(o, 0.01, total_iters=50), S.CosineAnnealingLR(o, T_max=950)], [50]
        ),
        lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=1000),
        lambda o: S.LambdaLR(o, lambda t: min(1.0, (t + 1) / 100) * (1 - t / 1000)),
        lambda o: S.StepLR(o, step_size=300, gamma=0.1),
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=100),
        lambda o: S.ReduceLROnPlateau(o, patience=100),
    ],
    ids=[
        "cosine",
        "warmup-cosine",
        "one-cycle",
        "lambda-warmup-linear",
        "step-per-epoch",
        "warm-restarts",
        "plateau-patient",
    ],
)
def test_schedules_over_the_whole_run_pass(make):
    o = opt()
    assert_lr_schedule(o, make(o), 1000)


def test_an_exponential_decay_too_fast_for_the_run_fails():
    o = opt()
    with pytest.raises(AssertionError, match=r"(?s)at step 459 of 1000.*ExponentialLR counts"):
        assert_lr_schedule(o, S.ExponentialLR(o, gamma=0.99), 1000)


def test_plateau_stepped_every_batch_on_a_noisy_loss_collapses():
    o = opt()
    with pytest.raises(AssertionError, match=r"patience=10 counts step\(metric\) calls"):
        assert_lr_schedule(o, S.ReduceLROnPlateau(o, patience=10), 1000)


def test_plateau_replays_given_metrics():
    o = opt()
    result = assert_lr_schedule(
        o, S.ReduceLROnPlateau(o, patience=10), 500, metrics=[1 / (t + 1) for t in range(500)]
    )
    assert result.lrs[-1] == 0.1


def test_one_cycle_shorter_than_the_run_fails_with_its_error():
    o = opt()
    with pytest.raises(AssertionError, match=r"OneCycleLR\.step\(\) raised at step"):
        assert_lr_schedule(o, S.OneCycleLR(o, max_lr=0.1, total_steps=100), 1000)


def test_the_users_optimizer_and_scheduler_are_never_stepped():
    o = opt()
    o.param_groups[0]["params"][0].grad = torch.ones(2, 2)
    o.step()  # give the optimizer state to preserve
    sched = S.StepLR(o, step_size=1, gamma=0.1)
    before_opt, before_sched = o.state_dict(), sched.state_dict()
    with pytest.raises(AssertionError, match=r"falls below 1% of its peak \(0\.1\) at step 3"):
        assert_lr_schedule(o, sched, 1000)
    assert o.param_groups[0]["lr"] == 0.1 and sched.last_epoch == 0
    assert str(o.state_dict()) == str(before_opt)
    assert sched.state_dict() == before_sched


def test_each_param_group_is_checked_and_the_lrs_recorded():
    model = torch.nn.Linear(2, 2)
    o = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 1.0}], lr=0.1)
    fast = S.LambdaLR(o, [lambda t: 1.0, lambda t: math.exp(-t / 10)])
    ctx = RunContext(nodeid="t", seed=0)
    with activate(ctx), pytest.raises(AssertionError, match=r"learning rate of param group 1"):
        assert_lr_schedule(o, fast, 1000)
    record = ctx.records[0]
    assert len(record.lrs) == 1000
    # Under the names the learning-rate picture reads: the run length and the (almost) zero line.
    assert record.total_steps == 1000 and record.floor == pytest.approx(0.01 * 0.1)


def test_a_cosine_whose_t_max_counts_epochs_dips_to_zero_periodically_and_fails():
    o = opt()
    with pytest.raises(AssertionError) as info:
        assert_lr_schedule(o, S.CosineAnnealingLR(o, T_max=100), 10_000)
    text = str(info.value)
    assert "falls below 1% of its peak (0.1) at step 94 of 10000 and comes back 50 times" in text
    assert "every 200 steps" in text
    assert "T_max=100 but stepped 10000 times: is T_max in epochs while the scheduler" in text


@pytest.mark.parametrize(
    "make",
    [
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=100),
        lambda o: S.CyclicLR(o, base_lr=1e-5, max_lr=0.1, step_size_up=50),
        lambda o: S.SequentialLR(
            o,
            [S.LinearLR(o, 0.1, total_iters=10), S.CosineAnnealingWarmRestarts(o, T_0=50)],
            [10],
        ),
    ],
    ids=["warm-restarts", "cyclic", "warmup-then-restarts"],
)
def test_restart_schedules_may_dip_periodically(make):
    o = opt()
    result = assert_lr_schedule(o, make(o), 2000)
    assert len(result.dips) > 1  # they do dip, and pass


def test_restarts_true_allows_a_hand_made_cycle_and_false_forbids_a_known_one():
    o = opt()
    cycle = lambda t: max(1e-4, abs(math.cos(math.pi * t / 100)))  # noqa: E731
    with pytest.raises(AssertionError, match=r"If the restarts are intended, pass restarts=True"):
        assert_lr_schedule(o, S.LambdaLR(o, cycle), 1000)
    o = opt()
    assert len(assert_lr_schedule(o, S.LambdaLR(o, cycle), 1000, restarts=True).dips) == 10
    o = opt()
    with pytest.raises(AssertionError, match=r"comes back"):
        assert_lr_schedule(
            o, S.CosineAnnealingWarmRestarts(o, T_0=100, eta_min=0), 1000, restarts=False
        )
