"""``assert_can_overfit``: the recipe's "overfit one batch".

A copy of the model, trained in train mode on the one batch given, must reach the lowest
achievable loss. The default target is that floor plus 2% of the gap between the floor and
the best input-independent loss (``_constant``, for any loss): for 10 balanced classes with
hard labels that is 0.046 (every sample's label at p > 0.95); for label smoothing or soft
targets the floor is the targets' entropy; for a loss with no closed form the floor is found
by minimising over free outputs. The target is never closer to the floor than 4x the output
dtype's epsilon (reachable in float32, float16), and a batch whose best constant already fits
every target (one sample) is a ``ValueError``. A loss with no lowest value over free outputs
gets 2% of the loss at step 0; pass ``target_loss=`` to set it. The run stops as soon as the
target is met (default budget ``max_steps=500``), or once it has stalled: no step in the last
``PATIENCE`` (100) brought the best loss 1% closer to the target.

How close (:class:`~pytest_nnrecipe.Closeness`): a pass gives the steps it took next to
``max_steps``, borderline when it needed more than ``1 - STEP_BAND`` (80%) of them; a failure
gives the best loss next to the target, borderline when its distance to the floor is within
twice the target's (the band is the target's own distance to the floor). Either way
``max_steps`` times ``_fit.LONGER`` would make it decisive; a run that diverged or stalled is
never borderline-by-steps: more steps do not help it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from .. import _messages, _text_pictures
from .._results import Closeness, Overfit
from .._state import untouched
from . import _constant, _fit, _losses, _suspects

if TYPE_CHECKING:  # pragma: no cover
    from .._types import LossFunction, ModelInputs, OptimizerFactory, OutputSelector

CHECK = "assert_can_overfit"
#: Share of the gap between the floor and the best constant loss that may remain.
MARGIN = 0.02
DEFAULT_MAX_STEPS = 500
#: Steps without progress after which a run that cannot reach its target stops.
PATIENCE = 100
#: A pass that needed more than ``1 - STEP_BAND`` of ``max_steps`` is borderline.
STEP_BAND = 0.2


def assert_can_overfit(
    model: torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    target_loss: float | None = None,
    optimizer: OptimizerFactory | None = None,
    output: OutputSelector = None,
    msg: str | None = None,
) -> Overfit:
    """Train a copy on this one batch until the loss is at most ``target_loss``.

    ``optimizer``: a factory ``params -> torch.optim.Optimizer`` (default: Adam, lr=1e-2).
    ``output`` picks the tensor of a structured model output; ``loss_fn`` receives that tensor.
    """
    __tracebackhide__ = True
    problem = _fit.prepare(CHECK, model, inputs, targets, loss_fn, output)
    max_steps = _fit.positive_int("max_steps", max_steps)
    if target_loss is not None and (
        isinstance(target_loss, bool)
        or not isinstance(target_loss, (int, float))
        or not math.isfinite(target_loss)
    ):
        raise ValueError(f"target_loss={target_loss!r} must be a finite number.")
    with untouched(model):
        goal, basis, floor = _target(problem, model, target_loss)
        run = _fit.train(
            model,
            problem,
            steps=max_steps,
            optimizer=optimizer,
            stop_below=goal,
            patience=PATIENCE,
        )
    closeness = _closeness(run, goal, floor, max_steps)
    _fit.record_run(problem, run, run.reached, target=goal, closeness=closeness)
    if run.reached:
        return Overfit(tuple(run.losses), run.updates, goal, run.losses[-1], closeness=closeness)
    raise _failure(problem, run, closeness, basis, max_steps, msg)


def _closeness(run: _fit.Run, goal: float, floor: float, max_steps: int) -> Closeness:
    """Steps taken next to ``max_steps`` (a pass), best loss next to the target (a failure)."""
    more = _fit.longer("max_steps", max_steps)
    if run.reached:
        return Closeness(
            "steps to the target", run.updates, max_steps, False, STEP_BAND * max_steps, more
        )
    stuck = run.diverged_at is not None or run.stalled_at is not None
    band = 0.0 if stuck else max(goal - floor, 0.0)
    return Closeness("best loss", run.best, goal, False, band, None if stuck else more)


def _target(
    problem: _fit.Problem, model: Any, target_loss: float | None
) -> tuple[float, str, float]:
    """The loss to reach, how it was chosen, and the floor it sits above (0 when unknown)."""
    if target_loss is not None:
        return float(target_loss), "given as target_loss=", 0.0
    with torch.no_grad():
        loss, out = _fit.loss_of(problem, problem.fresh().call(model), first=True)
    start = float(loss.detach())
    try:
        constants = _constant.Constants(problem, out, start)
        floor, best = constants.floor, constants.best.loss
    except ValueError:
        constants, floor, best = None, None, math.nan
    if constants is not None and constants.degenerate():
        n = _batch_size(problem)
        raise ValueError(
            f"targets= cannot be overfit meaningfully: the best constant prediction already "
            f"fits every target (loss {best:.3g}), so there is nothing left to learn from the "
            f"inputs and the target would be {floor or 0.0:.3g} (unreachable in "
            f"{out.dtype}). With {n} sample{'s' if n != 1 else ''} and one distinct target a "
            "constant memorises the batch. Pass at least 2 samples with different targets."
        )
    # The smallest step the loss can take in the model's dtype: a target closer to the floor
    # than that is unreachable (no 3e-12 targets in float32).
    resolution = 4 * torch.finfo(out.dtype).eps * max(1.0, abs(start))
    if floor is None or not math.isfinite(best):
        return (
            max(MARGIN * start, resolution),
            (
                f"{MARGIN:.0%} of the loss at step 0 ({start:.4g}): loss_fn has no lowest value "
                "over free outputs to aim at, its floor is taken as 0; pass target_loss= to set "
                "the goal"
            ),
            0.0,
        )
    goal = floor + max(MARGIN * max(best - floor, 0.0), resolution)
    return (
        goal,
        (
            f"lowest achievable {_number(floor)} + {MARGIN:.0%} of the gap to the best "
            f"constant prediction's {best:.4g}"
        ),
        floor,
    )


def _failure(
    problem: _fit.Problem,
    run: _fit.Run,
    closeness: Closeness,
    basis: str,
    max_steps: int,
    msg: str | None,
) -> AssertionError:
    goal = closeness.threshold  # a failure's closeness: best loss next to the target
    losses = run.losses
    n = _batch_size(problem)
    best_step = min(
        range(len(losses)), key=lambda k: losses[k] if math.isfinite(losses[k]) else math.inf
    )
    if run.diverged_at is not None:
        headline = (
            f"the loss became {losses[-1]} at step {run.diverged_at} while fitting one batch of "
            f"{n} samples (best {run.best:.4g}, target {goal:.4g})."
        )
    else:
        ran = (
            f"{run.updates} steps (stalled: no progress in the last {PATIENCE})"
            if run.stalled_at is not None
            else f"{max_steps} steps"
        )
        headline = (
            f"the model did not fit one batch of {n} samples: best loss {run.best:.4g} after "
            f"{ran}, target {goal:.4g} ({basis})."
        )
    evidence = [
        f"loss: initial {losses[0]:.4g}, best {run.best:.4g} (step {best_step}), final "
        f"{losses[-1]:.4g}; {run.updates} updates, mode=train.",
        str(closeness) + ".",
    ]
    symptoms = _losses.output_symptoms(problem.spec, run.last_output, problem.targets)
    symptoms += _diagnose(problem, run, goal)
    symptoms += _suspects.notes(problem.model, problem.spec, problem.targets)
    evidence.extend(symptoms)
    if run.silent:
        evidence.append(
            f"parameters that never got a gradient ({len(run.silent)}): "
            + ", ".join(run.silent[:12])
            + (" ..." if len(run.silent) > 12 else "")
        )
    cause = (
        "a bug between the output and the loss, or a model too small or too regularised to "
        "memorise a few samples; the recipe says not to go on until this passes."
    )
    if run.diverged_at is not None:
        cause = "the learning rate is too high for this model, or the forward is unstable."
        if run.fp16_note:
            cause = run.fp16_note + "."
    pictures = [_text_pictures.curve(losses, label="loss", target=goal)]
    if run.grad_norms:
        pictures.append(_text_pictures.curve(run.grad_norms, label="gradient norm"))
    rows = _losses.label_vs_prediction(problem.spec, run.last_output, problem.targets)
    if rows:
        pictures.append(
            "label next to prediction at the last step (worst fit first):\n  " + "\n  ".join(rows)
        )
    return _messages.fail(
        CHECK,
        headline,
        msg=msg,
        evidence=evidence,
        cause=cause,
        facts={"optimizer": run.optimizer, "max_steps": max_steps, "mode": "train"},
        picture="\n".join(pictures),
    )


def _diagnose(problem: _fit.Problem, run: _fit.Run, goal: float) -> list[str]:
    """Name the symptom the curves show."""
    found = []
    norms = run.grad_norms
    if len(norms) >= 10 and max(norms) > 0:
        tail = max(norms[-max(1, len(norms) // 10) :])
        if tail < 1e-2 * max(norms) and run.losses[-1] > goal:
            found.append(
                f"the gradient died away (norm {tail:.2g} at the end, {max(norms):.3g} at its "
                f"peak) while the loss is stuck at {run.losses[-1]:.4g}: the samples not yet "
                "fit give (almost) no gradient — a clamped loss (clip the gradients, not the "
                "loss), an output activation that saturates, dead ReLUs, a detach; or a model "
                "too small to fit them."
            )
    net = run.model
    heavy = [
        f"{name or type(m).__name__} ({type(m).__name__}(p={m.p:g}))"
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p >= 0.5
    ]
    if heavy:
        found.append(
            "dropout stays active in train mode and is heavy here: "
            + ", ".join(heavy[:4])
            + "; one batch cannot be memorised through it. Lower p (or check it in eval)."
        )
    if len(run.losses) > 20:
        tail_losses = [v for v in run.losses[-len(run.losses) // 5 :] if math.isfinite(v)]
        if len(tail_losses) > 4:
            mean = sum(tail_losses) / len(tail_losses)
            sd = (sum((v - mean) ** 2 for v in tail_losses) / len(tail_losses)) ** 0.5
            if mean > 0 and sd > 0.1 * mean:
                found.append(
                    f"the loss is noisy at the end (std {sd:.3g} around {mean:.4g}): "
                    "randomness in train mode (dropout, noise) or a learning rate too high."
                )
    return found


def _number(value: float) -> str:
    return "0" if abs(value) < 1e-9 else f"{value:.4g}"


def _batch_size(problem: _fit.Problem) -> int:
    t = problem.targets
    return int(t.shape[0]) if hasattr(t, "shape") and len(t.shape) else 0
