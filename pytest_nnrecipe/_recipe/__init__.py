"""``check_recipe``: the whole recipe in one call, in the recipe's order, as one table.

Each step runs one public check on a fresh model from ``make_model`` (built under the same
seed, moved to the inputs' device), so no step sees what another did to its model:

====  ==============  ===========================================  ============================
  #   step            check                                        applies when
====  ==============  ===========================================  ============================
  1   inputs_used     assert_inputs_used                           always
  2   optimizer       assert_optimizer_covers                      ``optimizer=`` is given
  3   deterministic   assert_deterministic                         always
  4   init_loss       assert_init_loss                             always
  5   params_update   assert_params_update                         always
  6   loss_decreases  assert_loss_decreases                        always
  7   baseline        assert_beats_input_independent_baseline      always
  8   overfit         assert_can_overfit                           always
  9   batch_mixing    assert_no_batch_mixing                       a batch of 2 or more
 10   causal          assert_causal                                ``time_dim=`` is given
 11   padding         assert_padding_ignored                       dict inputs, a padded mask
 12   lr_schedule     assert_lr_schedule                           ``scheduler=`` is given
====  ==============  ===========================================  ============================

Every step runs, whatever the others do; the result (or the failure) carries the table of all
of them, with a key figure per step read from the check's result, or from what the check
recorded when it failed. :func:`run_step` runs one step: the generated tests of
``pytest --nn-model`` are made of it.

Modules: ``_steps`` (the steps, the validated arguments, one step on a fresh model),
``_key_figures`` (each step's key figure), ``_table`` (the result, its table, the failure).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _context
from .._records import RecipeRecord
from . import _steps
from ._steps import STEP_NAMES, STEPS, Plan, Step, StepResult, make_plan, run_step, skip_reason
from ._table import CHECK, RecipeResult, failure

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .._types import (
        LossFunction,
        ModelFactory,
        ModelInputs,
        OptimizerFactory,
        OutputSelector,
        SchedulerFactory,
    )

__all__ = [
    "STEPS",
    "STEP_NAMES",
    "Plan",
    "RecipeResult",
    "Step",
    "StepResult",
    "check_recipe",
    "make_plan",
    "run_step",
    "skip_reason",
]


def check_recipe(
    make_model: ModelFactory | torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    time_dim: int | None = None,
    checks: str | Sequence[str] | None = None,
    optimizer: OptimizerFactory | None = None,
    scheduler: SchedulerFactory | None = None,
    total_steps: int | None = None,
    output: OutputSelector = None,
    loss_output: OutputSelector = None,
    batch_dim: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    msg: str | None = None,
) -> RecipeResult:
    """Run the recipe's checks in order, each on a fresh model; fail if any step fails.

    Args:
        make_model: a zero-argument factory returning a fresh ``nn.Module`` (an ``nn.Module``
            is deep-copied for each step instead). Each model is moved to the inputs' device.
        inputs, targets, loss_fn: the batch and loss of the training steps (see the API).
        time_dim: the inputs' time dimension; given, the causality step runs.
        checks: step names (or check names) to run, default all that apply; the others are
            listed as skipped.
        optimizer: factory ``params -> Optimizer`` for the training steps and the schedule.
        scheduler: factory ``optimizer -> LR scheduler``; given (with ``total_steps``), the
            LR-schedule step runs.
        output: which tensor of the model's output the checks look at.
        loss_output: what ``loss_fn`` receives (default: ``output``), e.g. logits reshaped.
        batch_dim: the inputs' batch dimension (structural steps).
        options: keyword arguments for single steps, ``{"overfit": {"max_steps": 300}}``.
        msg: replaces the failure headline; the table and the messages stay.
    """
    __tracebackhide__ = True
    plan = make_plan(
        make_model,
        inputs,
        targets,
        loss_fn,
        time_dim=time_dim,
        checks=checks,
        optimizer=optimizer,
        scheduler=scheduler,
        total_steps=total_steps,
        output=output,
        loss_output=loss_output,
        batch_dim=batch_dim,
        options=options,
    )
    start = time.perf_counter()
    with _in_context() as ctx:
        seen = len(ctx.records)
        results = tuple(run_step(plan, step.name) for step in STEPS)
        # Named like the steps' records name it (the model's class), so the report shows
        # check_recipe next to the checks it ran on that model (the schedule step records
        # the scheduler's class instead: not a model).
        ran_on = [r.model for r in ctx.records[seen:] if r.check != "assert_lr_schedule"]
        model = ran_on[0] if ran_on else _steps.model_name(make_model)
        result = RecipeResult(results, model, time.perf_counter() - start)
        record = RecipeRecord(
            check=CHECK,
            model=model,
            passed=result.passed,
            steps={s.name: s.verdict for s in results},
            seconds={s.name: s.seconds for s in results},
        )
        _context.record(record)
    if result.passed:
        return result
    raise failure(result, msg)


@contextlib.contextmanager
def _in_context() -> Iterator[_context.RunContext]:
    """The run context the checks record in; a private one outside pytest."""
    ctx = _context.current()
    if ctx is not None:
        yield ctx
        return
    with _context.activate(_context.RunContext()) as private:
        yield private
