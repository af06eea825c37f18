"""``assert_lr_schedule``: the recipe's "do not trust learning rate decay defaults".

The optimiser and scheduler are deep-copied together (one ``deepcopy`` of the pair, so the
copied scheduler drives the copied optimiser; parameters and optimiser state are replaced by
empty placeholders, so no model memory is copied) and the copy's scheduler is stepped
``total_steps`` times — once per training step, the way the schedule is used in a loop that
calls ``scheduler.step()`` after every batch. Nothing is trained and the user's optimiser and
scheduler are never stepped.

The learning rate *collapses* at step t when it is below ``min_fraction`` (default 1%) of the
highest rate the group has had so far and stays below it until the end (warm-up from 0 is
fine). It *dips* when it falls below that and comes back: a cosine whose ``T_max`` counts
epochs while it steps per batch reaches 0 every ``2 T_max`` steps. The check fails when
either happens before ``before * total_steps`` (default: the first half of the run), except
dips of a restart schedule (``CosineAnnealingWarmRestarts``, ``CyclicLR``, ``OneCycleLR``'s
phases, also inside ``SequentialLR``/``ChainedScheduler``; ``restarts=True`` declares any
other schedule one). A cosine schedule over the run stays above 1% until 94% of it, a linear
decay to 0 until 99%.

``ReduceLROnPlateau`` needs a metric: ``metrics=`` (a sequence with one value per step, or a
callable ``step -> value``); by default a synthetic per-batch training loss that keeps
improving slowly with noise, ``(1 + t) ** -0.5 * (1 + 0.05 * N(0, 1))`` (seeded), as a real
per-batch loss does. A patience counted in batches then cuts the rate again and again.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .. import _context, _messages, _text_pictures
from .._records import ScheduleRecord, model_name
from .._results import LrSchedule

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Scheduler

CHECK = "assert_lr_schedule"


def assert_lr_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler,
    total_steps: int,
    *,
    min_fraction: float = 0.01,
    before: float = 0.5,
    metrics: Sequence[float] | Callable[[int], float] | None = None,
    restarts: bool | None = None,
    model: Any = None,
    msg: str | None = None,
) -> LrSchedule:
    """The learning rate must not collapse to almost nothing long before ``total_steps``,
    neither for good nor periodically (restart schedules may dip). With ``model``, the
    optimizer is first checked to hold exactly its trainable parameters
    (:func:`assert_optimizer_covers`)."""
    __tracebackhide__ = True
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer= must be a torch.optim.Optimizer; got {type(optimizer).__name__}."
        )
    if not callable(getattr(scheduler, "step", None)):
        raise TypeError(
            f"scheduler= must be a learning-rate scheduler with .step(); got "
            f"{type(scheduler).__name__}."
        )
    if getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError(
            "scheduler= is bound to a different optimizer than optimizer=; pass the optimizer "
            "the scheduler was built on."
        )
    if model is not None:
        from ._optimizer import assert_optimizer_covers

        assert_optimizer_covers(model, optimizer, msg=msg)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
        raise ValueError(f"total_steps={total_steps!r} must be an int >= 2 (steps in the run).")
    for name, value, low, high in (("min_fraction", min_fraction, 0, 1), ("before", before, 0, 1)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low < value <= high
        ):
            raise ValueError(f"{name}={value!r} must be a number in ({low}, {high}].")
    if restarts is not None and not isinstance(restarts, bool):
        raise TypeError(
            f"restarts={restarts!r} must be True (the schedule restarts on purpose), False "
            "or None (decided by the scheduler's class)."
        )
    restarting = _restarts(scheduler) if restarts is None else restarts
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    metric = _metric(metrics, total_steps) if plateau else None
    opt, sched = _copies(optimizer, scheduler)
    groups: list[list[float]] = [[] for _ in opt.param_groups]
    error: tuple[int, Exception] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for step in range(total_steps):
            for lrs, group in zip(groups, opt.param_groups, strict=True):
                lrs.append(float(group["lr"]))
            if step == total_steps - 1:
                break
            try:
                if metric is not None:
                    sched.step(metric(step))
                else:
                    sched.step()
            except Exception as raised:  # e.g. OneCycleLR stepped past its total_steps
                error = (step + 1, raised)
                break
    collapses = [_collapse(lrs, min_fraction) for lrs in groups]
    dips = [_dips(lrs, min_fraction) for lrs in groups]
    limit = before * total_steps
    bad = [(k, c) for k, c in enumerate(collapses) if c is not None and c < limit]
    periodic = [] if restarting else [(k, d) for k, d in enumerate(dips) if d and d[0] < limit]
    passed = not bad and not periodic and error is None
    record = ScheduleRecord(
        check=CHECK,
        model=model_name(scheduler),
        passed=passed,
        lrs=list(groups[0]),
        lrs_by_group=[list(g) for g in groups] if len(groups) > 1 else None,
        total_steps=total_steps,
        floor=min_fraction * max(groups[0], default=0.0),
        min_fraction=min_fraction,
        dips=list(dips[0]),
    )
    _context.record(record)
    lrs0 = groups[0]
    if passed:
        return LrSchedule(tuple(lrs0), max(lrs0), lrs0[-1], collapses[0], tuple(dips[0]))
    name = type(scheduler).__name__
    if error is not None:
        step, exc = error
        raise _messages.fail(
            CHECK,
            f"{name}.step() raised at step {step} of a {total_steps}-step run: "
            f"{type(exc).__name__}: {exc}",
            msg=msg,
            cause=f"the scheduler is set up for fewer steps than total_steps={total_steps}.",
            facts={"total_steps": total_steps},
            picture=_text_pictures.curve(lrs0, label="learning rate"),
        )
    if not bad:
        raise _periodic_failure(scheduler, groups, periodic, min_fraction, limit, msg)
    k, at = bad[0]
    lrs = groups[k]
    peak = max(lrs[: at + 1])
    where = "" if len(groups) == 1 else f" of param group {k}"
    evidence = [
        "learning rate at "
        + ", ".join(
            f"{frac:.0%}: {lrs[min(int(frac * total_steps), total_steps - 1)]:.3g}"
            for frac in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
        )
    ]
    if len(bad) > 1:
        evidence.append(f"param groups that collapse early: {[g for g, _ in bad]}")
    raise _messages.fail(
        CHECK,
        f"the learning rate{where} falls below {min_fraction:.0%} of its peak ({peak:.3g}) at "
        f"step {at} of {total_steps} and stays there: {1 - at / total_steps:.1%} of the run "
        f"trains with almost no learning rate (allowed: not before step {math.ceil(limit)}).",
        msg=msg,
        evidence=evidence,
        cause=_cause(scheduler, total_steps),
        facts={"scheduler": name, "total_steps": total_steps, "min_fraction": min_fraction},
        picture=_text_pictures.curve(lrs, label="learning rate"),
    )


def _periodic_failure(
    scheduler: Any,
    groups: list[list[float]],
    periodic: list[tuple[int, list[int]]],
    min_fraction: float,
    limit: float,
    msg: str | None,
) -> AssertionError:
    k, dips = periodic[0]
    lrs = groups[k]
    total = len(lrs)
    peak = max(lrs[: dips[0] + 1])
    where = "" if len(groups) == 1 else f" of param group {k}"
    low = sum(1 for i, lr in enumerate(lrs) if lr < min_fraction * max(lrs[: i + 1]))
    every = ""
    if len(dips) > 1:
        gaps = [b - a for a, b in itertools.pairwise(dips)]
        every = f", every {sorted(gaps)[len(gaps) // 2]} steps"
    evidence = [
        f"below {min_fraction:.0%} of the peak at {low} of {total} steps ({low / total:.0%}); "
        f"it falls there at steps {', '.join(map(str, dips[:6]))}{' ...' if len(dips) > 6 else ''}."
    ]
    name = type(scheduler).__name__
    if name == "CosineAnnealingLR":
        t_max = getattr(scheduler, "T_max", "?")
        cause = (
            f"T_max={t_max} but stepped {total} times: is T_max in epochs while the scheduler "
            f"steps per batch? Past T_max a cosine climbs back and falls again. Set "
            f"T_max={total} (the steps of the run), or use CosineAnnealingWarmRestarts if "
            "restarts are what you want."
        )
    else:
        cause = (
            "the schedule's period is far shorter than the run: a period counted in epochs "
            "while the scheduler steps per batch? If the restarts are intended, pass "
            "restarts=True."
        )
    return _messages.fail(
        CHECK,
        f"the learning rate{where} falls below {min_fraction:.0%} of its peak ({peak:.3g}) at "
        f"step {dips[0]} of {total} and comes back {len(dips)} time"
        f"{'s' if len(dips) > 1 else ''}{every} (allowed: not before step {math.ceil(limit)}, "
        "except for restart schedules).",
        msg=msg,
        evidence=evidence,
        cause=cause,
        facts={"scheduler": name, "total_steps": total, "min_fraction": min_fraction},
        picture=_text_pictures.curve(lrs, label="learning rate"),
    )


def _restarts(scheduler: Any) -> bool:
    """A schedule meant to restart: warm restarts, cyclic, one-cycle (also chained)."""
    S = torch.optim.lr_scheduler
    kinds = (S.CosineAnnealingWarmRestarts, S.CyclicLR, S.OneCycleLR)
    inner = getattr(scheduler, "_schedulers", None) or []
    return isinstance(scheduler, kinds) or any(_restarts(s) for s in inner)


def _dips(lrs: list[float], fraction: float) -> list[int]:
    """The steps at which the rate falls below ``fraction`` of its running peak and from
    which it later comes back above it."""
    peak, low = 0.0, []
    for lr in lrs:
        peak = max(peak, lr)
        low.append(lr < fraction * peak)
    starts = [t for t in range(len(lrs)) if low[t] and (t == 0 or not low[t - 1])]
    return [t for t in starts if not all(low[t:])]


def _copies(optimizer: Any, scheduler: Any) -> tuple[Any, Any]:
    """Deep copies of the pair, with parameters and optimiser state as empty placeholders."""
    memo: dict[int, Any] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            memo[id(p)] = torch.empty(0)
    for state in optimizer.state.values():
        for value in state.values() if isinstance(state, dict) else ():
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                memo[id(value)] = torch.empty(0)
    try:
        return copy.deepcopy((optimizer, scheduler), memo)
    except Exception as exc:
        raise TypeError(
            f"scheduler= {type(scheduler).__name__} with its optimizer cannot be deep-copied "
            f"({type(exc).__name__}: {exc}); assert_lr_schedule simulates a copy so that your "
            "scheduler is never stepped."
        ) from exc


def _metric(metrics: Any, total_steps: int) -> Callable[[int], float]:
    if metrics is None:
        rng = random.Random(0)
        noise = [rng.gauss(0.0, 1.0) for _ in range(total_steps)]
        return lambda t: (1 + t) ** -0.5 * (1 + 0.05 * noise[t])
    if callable(metrics):
        return lambda t: float(metrics(t))
    values = list(metrics)
    if len(values) < total_steps - 1:
        raise ValueError(
            f"metrics= has {len(values)} values; ReduceLROnPlateau is stepped once per step, so "
            f"pass at least total_steps - 1 = {total_steps - 1} (or a callable step -> value)."
        )
    return lambda t: float(values[t])


def _collapse(lrs: list[float], fraction: float) -> int | None:
    """The first step from which the rate stays below ``fraction`` of its running peak."""
    peak, low = 0.0, []
    for lr in lrs:
        peak = max(peak, lr)
        low.append(lr < fraction * peak)
    at = None
    for t in range(len(lrs) - 1, -1, -1):
        if not low[t]:
            break
        at = t
    return at


def _cause(scheduler: Any, total_steps: int) -> str:
    name = type(scheduler).__name__
    if name in ("StepLR", "MultiStepLR", "ExponentialLR"):
        return (
            f"{name} counts scheduler.step() calls, not epochs: a decay written for epochs "
            "(ImageNet: /10 at epoch 30) but stepped every batch, or a step_size/gamma copied "
            "from another problem. Scale step_size/milestones by the steps per epoch, or use "
            f"a schedule over the whole run, e.g. CosineAnnealingLR(T_max={total_steps})."
        )
    if name == "CosineAnnealingLR":
        return (
            f"T_max={getattr(scheduler, 'T_max', '?')} is shorter than the run: set "
            f"T_max={total_steps} (steps, if you step per batch)."
        )
    if name == "ReduceLROnPlateau":
        return (
            f"patience={getattr(scheduler, 'patience', '?')} counts step(metric) calls: "
            "stepped every batch on a noisy loss it sees a 'plateau' all the time; step it "
            "once per epoch on a validation metric, or raise patience/min_lr."
        )
    return (
        "the schedule decays too fast for this run length: check what one scheduler.step() "
        f"means (a batch or an epoch) and that its horizon matches total_steps={total_steps}."
    )
