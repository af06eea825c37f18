"""Training makes progress: ``assert_loss_decreases`` and
``assert_beats_input_independent_baseline`` (the recipe's "verify decreasing training loss"
and "input-independent baseline").

Both train copies with the shared loop (``_fit.train``) under the test's seed.

- ``assert_loss_decreases``: after ``steps`` updates (default 20) the loss — the mean over the
  last fifth of the run, which smooths dropout noise — must be at least ``min_decrease``
  (default 5%) below the loss at step 0.
- ``assert_beats_input_independent_baseline``: two copies, same seed, same steps (default
  100): one on the real inputs, one on zeroed inputs. Float tensors become ``zeros_like``;
  integer tensors (token ids) become all-zero ids, i.e. every position is token 0; boolean
  tensors (masks) stay as they are. ``zero=`` names the arguments to zero instead (labels as
  in messages, ``inputs[0]``, or keyword names such as ``"input_ids"``) — use it to leave an
  integer ``attention_mask`` alone — or maps them to the constant that replaces them:
  ``{"input_ids": 0, "attention_mask": 1}`` marks every position real, so the baseline sees
  the same input for every sample (a kept mask tells sequences of different lengths apart,
  which a model with positions can learn from). Each run's level is the mean of its last tenth; the real
  run must close at least half the distance (``margin=0.5``) between the zeroed run and the
  lowest achievable loss (0 for an unknown loss): ``real - floor <= margin * (zeroed - floor)``.

How close: each result and message carries a :class:`~pytest_nnrecipe.Closeness`, the key
figure next to its threshold. A verdict within the stated band is *borderline* — another seed
could flip it — and names the step count that would make it decisive (``_fit.LONGER`` times
the steps). Bands: the closed share within ``BASELINE_BAND`` (10 points) of ``1 - margin``; the
relative decrease within half of ``min_decrease``, or within the noise of the run's last
fifth (its standard deviation relative to the loss at step 0) when that is wider.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .. import _messages, _text_pictures
from .._results import BaselineComparison, Closeness, LossDecrease
from .._state import untouched
from . import _constant, _fit, _losses, _suspects

if TYPE_CHECKING:  # pragma: no cover
    from .._types import LossFunction, ModelInputs, OptimizerFactory, OutputSelector

DECREASES = "assert_loss_decreases"
BASELINE = "assert_beats_input_independent_baseline"
#: A closed share within this distance of ``1 - margin`` (the share the real run must
#: close) is a borderline verdict.
BASELINE_BAND = 0.1


def assert_loss_decreases(
    model: torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    steps: int = 20,
    min_decrease: float = 0.05,
    optimizer: OptimizerFactory | None = None,
    output: OutputSelector = None,
    msg: str | None = None,
) -> LossDecrease:
    """A few optimiser steps on a copy must lower the loss by ``min_decrease`` (relative)."""
    __tracebackhide__ = True
    problem = _fit.prepare(DECREASES, model, inputs, targets, loss_fn, output)
    steps = _fit.positive_int("steps", steps)
    if (
        isinstance(min_decrease, bool)
        or not isinstance(min_decrease, (int, float))
        or not (0 <= min_decrease < 1)
    ):
        raise ValueError(f"min_decrease={min_decrease!r} must be a number in [0, 1), e.g. 0.05.")
    with untouched(model):
        run = _fit.train(model, problem, steps=steps, optimizer=optimizer)
    initial = run.losses[0]
    after = run.losses[1:]
    tail = after[-max(1, len(after) // 5) :]
    final = sum(tail) / len(tail)
    decrease = (initial - final) / abs(initial) if initial else -math.inf
    passed = math.isfinite(final) and decrease >= min_decrease
    closeness = Closeness(
        "relative decrease",
        decrease,
        min_decrease,
        higher=True,
        band=_decrease_band(min_decrease, tail, initial),
        decisive=_fit.longer("steps", steps),
        percent=True,
    )
    _fit.record_run(problem, run, passed, target=initial * (1 - min_decrease), closeness=closeness)
    if passed:
        return LossDecrease(tuple(run.losses), initial, final, decrease, closeness=closeness)
    evidence = [str(closeness) + "."]
    cause = (
        "the optimiser does nothing useful: a learning rate of 0 or far too high, "
        "parameters missing from the optimiser, detached outputs, or a loss that does not "
        "depend on the parameters."
    )
    if (not math.isfinite(final) or final > initial) and run.fp16_note:
        evidence.append(f"the loss went to {final:.4g} after the first update.")
        cause = run.fp16_note + "."
    elif not math.isfinite(final) or final > initial:
        evidence.append(
            "the loss went up: the learning rate is too high for this model, or loss_fn is "
            "maximised (a sign error)."
        )
    elif run.grad_norms and max(run.grad_norms) == 0:
        evidence.append("every gradient is exactly zero: nothing reaches the parameters.")
    if run.silent:
        evidence.append("parameters that never got a gradient: " + ", ".join(run.silent[:12]))
    evidence.extend(_suspects.notes(problem.model, problem.spec, problem.targets))
    raise _messages.fail(
        DECREASES,
        f"the loss did not decrease by {min_decrease:.0%} in {steps} steps: {initial:.4g} at "
        f"step 0, {final:.4g} at the end ({-decrease:+.1%}).",
        msg=msg,
        evidence=evidence,
        cause=cause,
        facts={"optimizer": run.optimizer, "steps": steps, "mode": "train"},
        picture="\n".join(
            [
                _text_pictures.curve(run.losses, label="loss", target=initial * (1 - min_decrease)),
                _text_pictures.curve(run.grad_norms, label="gradient norm"),
            ]
        ),
    )


def assert_beats_input_independent_baseline(
    model: torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    steps: int = 100,
    margin: float = 0.5,
    zero: Sequence[str] | Mapping[str, float] | None = None,
    optimizer: OptimizerFactory | None = None,
    output: OutputSelector = None,
    msg: str | None = None,
) -> BaselineComparison:
    """A copy trained on the real inputs must beat a copy trained on zeroed inputs."""
    __tracebackhide__ = True
    problem = _fit.prepare(BASELINE, model, inputs, targets, loss_fn, output)
    steps = _fit.positive_int("steps", steps)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise ValueError(f"margin={margin!r} must be a number in (0, 1), e.g. margin=0.5.")
    zeroed, names = _zeroed(problem, zero)
    with untouched(model):
        real = _fit.train(model, problem, steps=steps, optimizer=optimizer)
        try:
            blind = _fit.train(model, problem, steps=steps, optimizer=optimizer, inputs=zeroed)
        except AssertionError as exc:  # only a non-finite loss at step 0 raises here
            raise ValueError(
                f"with zeroed inputs ({', '.join(names)}) the loss at step 0 is non-finite, while "
                "the real inputs give a finite one: the model cannot run on all-zero inputs "
                "(a zeroed integer attention mask, a division by the input's norm?). Pass zero= "
                "to choose the inputs to zero, e.g. zero=['input_ids'], or the constants that "
                "replace them, e.g. zero={'input_ids': 0, 'attention_mask': 1}."
            ) from exc
    floor = _floor(problem, real)
    final, base = _fit.settle(real.losses), _fit.settle(blind.losses)
    floor = min(floor, final, base) if math.isfinite(final) and math.isfinite(base) else floor
    gap, base_gap = final - floor, base - floor
    passed = math.isfinite(final) and math.isfinite(base) and gap <= margin * base_gap
    closed = _closed(gap, base_gap)
    closeness = Closeness(
        "share of the distance closed",
        closed,
        1 - margin,
        higher=True,
        band=BASELINE_BAND,
        decisive=_fit.longer("steps", steps),
        percent=True,
    )
    _fit.record_run(
        problem,
        real,
        passed,
        target=floor + margin * base_gap,
        baseline=blind,
        closeness=closeness,
    )
    if passed:
        return BaselineComparison(
            tuple(real.losses), tuple(blind.losses), final, base, floor, closeness=closeness
        )
    evidence = [f"levels are the mean of the last tenth of each run; {closeness}."]
    if (not math.isfinite(final) or not math.isfinite(base)) and real.fp16_note:
        cause = f"training diverged (a non-finite loss): {real.fp16_note}."
    elif not math.isfinite(final) or not math.isfinite(base):
        cause = (
            "training diverged (a non-finite loss): the learning rate is too high for this "
            "model, or the forward is unstable; fix that first (assert_loss_decreases)."
        )
    elif closed >= 0.1:
        cause = (
            f"the model does use its input (it closes {closed:.0%} of the distance) but learns "
            f"from it too slowly for {steps} steps: a learning rate too low, heavy dropout or "
            "noise, targets on a scale far from the outputs', or an input that carries only "
            "part of what the targets need. Pass more steps= if it is merely slow."
        )
    else:
        cause = (
            "the model does not use its input: a multiplication by zero, inputs overwritten "
            "or detached in the forward, a mask that hides everything, or the wrong argument "
            "wired to the network."
        )
    evidence.extend(_losses.output_symptoms(problem.spec, real.last_output, problem.targets))
    evidence.extend(_suspects.notes(problem.model, problem.spec, problem.targets))
    raise _messages.fail(
        BASELINE,
        f"trained on its real inputs the model ends at loss {final:.4g}; trained on zeroed "
        f"inputs ({', '.join(names)}), same seed and {steps} steps, at {base:.4g}. The real "
        f"run must close at least {1 - margin:.0%} of the distance from the baseline to the "
        f"lowest achievable loss {0.0 if abs(floor) < 1e-9 else floor:.4g} (i.e. reach {floor + margin * base_gap:.4g}).",
        msg=msg,
        evidence=evidence,
        cause=cause,
        facts={"optimizer": real.optimizer, "steps": steps, "mode": "train"},
        picture=_text_pictures.curves(
            {"real inputs": real.losses, "zeroed inputs": blind.losses},
            label="loss",
            target=floor + margin * base_gap,
        ),
    )


def _closed(gap: float, base_gap: float) -> float:
    """The share of the baseline's distance to the floor that the real run closed."""
    if not (math.isfinite(gap) and math.isfinite(base_gap)):
        return 0.0
    if base_gap <= 0:
        return 1.0 if gap <= 0 else 0.0
    return 1 - gap / base_gap


def _decrease_band(min_decrease: float, tail: list[float], initial: float) -> float:
    """Half of ``min_decrease``, or the noise of the run's last fifth (relative to the loss
    at step 0) when that is wider."""
    finite = [v for v in tail if math.isfinite(v)]
    if len(finite) < 2 or not initial or not math.isfinite(initial):
        return min_decrease / 2
    mean = sum(finite) / len(finite)
    sd = (sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) ** 0.5
    return max(min_decrease / 2, sd / abs(initial))


def _floor(problem: _fit.Problem, run: _fit.Run) -> float:
    """The lowest achievable loss: the closed form of a standard loss, else found numerically
    from the run's last output (0 when the loss has none)."""
    out = run.last_output
    if out is None:
        return 0.0
    if problem.spec is not None:
        return _losses.lowest_achievable(problem.spec, tuple(out.shape), problem.targets)
    try:
        floor = _constant.Constants(problem, out, run.losses[-1]).floor
    except ValueError:
        return 0.0
    return 0.0 if floor is None else floor


def _zeroed(
    problem: _fit.Problem, zero: Sequence[str] | Mapping[str, float] | None
) -> tuple[Any, list[str]]:
    """The inputs with the chosen tensors replaced by a constant (zero unless ``zero=`` maps
    them to another), and the labels of those tensors (with the constant when not zero)."""
    labels = [label for label, _t in problem.inputs.tensors()]
    fills: dict[str, float] = {}
    if isinstance(zero, str):
        zero = [zero]
    if zero is not None:
        chosen = _fill_values(zero)
        for name, value in chosen.items():
            match = [lab for lab in labels if lab in (name, f"inputs[{name!r}]")]
            if not match:
                raise ValueError(
                    f"zero={_shown(zero)}: {name!r} names no input tensor; the tensors are "
                    f"{labels}."
                )
            fills.update(dict.fromkeys(match, value))
    else:
        fills = {lab: 0 for lab, t in problem.inputs.tensors() if t.dtype != torch.bool}
    if not fills:
        raise ValueError(
            "inputs= holds no float or integer tensor to zero; pass zero= to name the inputs "
            "to replace with zeros."
        )

    def blank(label: str, t: Any) -> Any:
        return torch.full_like(t, fills[label]) if label in fills else t

    names = sorted(lab if fills[lab] == 0 else f"{lab} set to {fills[lab]}" for lab in fills)
    return problem.inputs.map(blank), names


def _fill_values(zero: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    """``zero=`` as names -> constant; ``TypeError`` naming what is wrong."""
    if isinstance(zero, Mapping):
        bad = {
            k: v for k, v in zero.items() if isinstance(v, bool) or not isinstance(v, (int, float))
        }
        if bad or not all(isinstance(k, str) for k in zero):
            raise TypeError(
                f"zero={_shown(zero)}: a dict maps input names to the number that replaces "
                "them, e.g. zero={'input_ids': 0, 'attention_mask': 1}."
            )
        return dict(zero)
    return dict.fromkeys(zero, 0)


def _shown(zero: Any) -> str:
    return repr(dict(zero)) if isinstance(zero, Mapping) else repr(list(zero))
