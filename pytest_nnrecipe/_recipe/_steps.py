"""The recipe's steps (from the registry of checks), the validated arguments of a run
(:class:`Plan`), and one step run on a fresh model (:func:`run_step`), which never raises for
what the check found."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _context, _registry, _rng
from ._key_figures import figure, first_line, headline


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the recipe: its name (for ``checks=``), its check, its label in the table,
    and how the recipe calls it (see ``_registry.RecipeStep``)."""

    name: str
    check: str
    label: str
    call: str
    needs: str | None


#: The steps, in the recipe's order: the checks of the registry that have one.
STEPS: tuple[Step, ...] = tuple(
    Step(step.name, check.name, step.label, step.call, step.needs)
    for check, step in _registry.recipe_steps()
)
STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
#: What a step needs, and the argument that gives it, when the user selects it by name.
_NEEDED = {
    "time_dim": "time_dim= is not given; pass the inputs' time dimension, e.g. time_dim=1",
    "scheduler": "scheduler= is not given; pass a factory optimizer -> LR scheduler and "
    "total_steps=",
    "optimizer": "optimizer= is not given; pass the factory params -> Optimizer of the real "
    "run (the default optimizer is built on the trainable parameters by the recipe itself)",
}


@dataclasses.dataclass(frozen=True)
class StepResult:
    """One step's outcome.

    ``verdict``: ``"passed"``, ``"failed"`` (the check's ``AssertionError``), ``"error"`` (any
    other exception: the model or the arguments broke the check) or ``"skipped"``.
    ``figure``: the key figure; ``result``: the check's result object when it passed;
    ``message``: the full failure message, the error, or the reason for skipping.
    """

    name: str
    check: str
    verdict: str
    figure: str
    seconds: float
    result: Any = None
    message: str = ""
    error: BaseException | None = dataclasses.field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


VERDICTS = ("passed", "failed", "error", "skipped")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The validated arguments of one recipe run."""

    make_model: Callable[[], Any]
    inputs: Any
    targets: Any
    loss_fn: Any
    time_dim: int | None
    selected: tuple[str, ...]
    optimizer: Any
    scheduler: Any
    total_steps: int | None
    output: Any
    loss_output: Any
    batch_dim: int
    options: Mapping[str, Mapping[str, Any]]


def make_plan(
    make_model: Any,
    inputs: Any,
    targets: Any,
    loss_fn: Any,
    *,
    time_dim: int | None = None,
    checks: str | Sequence[str] | None = None,
    optimizer: Any = None,
    scheduler: Any = None,
    total_steps: int | None = None,
    output: Any = None,
    loss_output: Any = None,
    batch_dim: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Check ``check_recipe``'s arguments; ``TypeError``/``ValueError`` naming the argument."""
    import torch

    if isinstance(make_model, torch.nn.Module):
        module = make_model
        factory: Callable[[], Any] = lambda: copy.deepcopy(module)  # noqa: E731
        factory.__qualname__ = type(module).__qualname__
    elif callable(make_model):
        factory = make_model
    else:
        raise TypeError(
            f"make_model= must be a zero-argument function returning a fresh nn.Module (or an "
            f"nn.Module, copied for each step); got {type(make_model).__name__}."
        )
    if time_dim is not None and (isinstance(time_dim, bool) or not isinstance(time_dim, int)):
        raise TypeError(f"time_dim={time_dim!r} must be an int (the inputs' time dimension).")
    if isinstance(batch_dim, bool) or not isinstance(batch_dim, int):
        raise TypeError(f"batch_dim={batch_dim!r} must be an int.")
    selected = _selection(checks)
    if scheduler is not None and not callable(scheduler):
        raise TypeError(
            "scheduler= must be a factory optimizer -> LR scheduler, e.g. scheduler=lambda "
            f"opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000); got "
            f"{type(scheduler).__name__}."
        )
    if scheduler is not None and total_steps is None:
        raise ValueError(
            "scheduler= is given but total_steps= is not: the LR-schedule step needs the "
            "number of training steps of the real run, e.g. total_steps=10_000."
        )
    if total_steps is not None and scheduler is None:
        raise ValueError(
            f"total_steps={total_steps!r} is only used by the LR-schedule step, which needs "
            "scheduler= too (a factory optimizer -> LR scheduler)."
        )
    if optimizer is not None and (
        isinstance(optimizer, torch.optim.Optimizer) or not callable(optimizer)
    ):
        raise TypeError(
            "optimizer= must be a factory params -> Optimizer (each step builds its own on a "
            "fresh model), e.g. optimizer=lambda params: torch.optim.Adam(params, lr=1e-3); "
            f"got {type(optimizer).__name__}."
        )
    given = {"time_dim": time_dim, "scheduler": scheduler, "optimizer": optimizer}
    for step in STEPS:
        if checks is not None and step.name in selected and step.needs in _NEEDED:
            if given[step.needs] is None:
                raise ValueError(f"checks= selects {step.name!r} but {_NEEDED[step.needs]}.")
    return Plan(
        make_model=factory,
        inputs=inputs,
        targets=targets,
        loss_fn=loss_fn,
        time_dim=time_dim,
        selected=selected,
        optimizer=optimizer,
        scheduler=scheduler,
        total_steps=total_steps,
        output=output,
        loss_output=output if loss_output is None else loss_output,
        batch_dim=batch_dim,
        options=_options(options),
    )


def _selection(checks: str | Sequence[str] | None) -> tuple[str, ...]:
    if checks is None:
        return STEP_NAMES
    names = [checks] if isinstance(checks, str) else checks
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"checks={checks!r} must be step names (str), e.g. checks=['overfit'].")
    by_check = {s.check: s.name for s in STEPS}
    chosen = {by_check.get(n, n) for n in names}
    unknown = sorted(n for n in names if by_check.get(n, n) not in STEP_NAMES)
    if unknown or not names:
        raise ValueError(
            f"checks={list(names)!r}: {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'empty'}; "
            f"valid steps, in the recipe's order: {', '.join(STEP_NAMES)} (or the check "
            "names, e.g. 'assert_can_overfit')."
        )
    return tuple(n for n in STEP_NAMES if n in chosen)


def _options(options: Mapping[str, Mapping[str, Any]] | None) -> Mapping[str, Mapping[str, Any]]:
    """Validate ``options=``: step names to keyword arguments that the step's check takes."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(
            f"options= must map step names to keyword arguments, e.g. "
            f"options={{'overfit': {{'max_steps': 300}}}}; got {type(options).__name__}."
        )
    import pytest_nnrecipe

    checked: dict[str, Mapping[str, Any]] = {}
    reserved = {"model", "inputs", "targets", "loss_fn", "optimizer", "scheduler", "total_steps"}
    for key, kwargs in options.items():
        step = next((s for s in STEPS if key in (s.name, s.check)), None)
        if step is None:
            raise ValueError(
                f"options={{{key!r}: ...}}: {key!r} is not a recipe step; the steps are "
                f"{', '.join(STEP_NAMES)}."
            )
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"options[{key!r}] must be a dict of keyword arguments.")
        params = inspect.signature(getattr(pytest_nnrecipe, step.check)).parameters
        valid = sorted(p for p, v in params.items() if v.kind is v.KEYWORD_ONLY)
        bad = [k for k in kwargs if k not in valid or k in reserved]
        if bad:
            raise TypeError(
                f"options[{key!r}]: {step.check} takes no keyword {', '.join(map(repr, bad))} "
                f"here; it takes {', '.join(v for v in valid if v not in reserved)} (the "
                "recipe passes optimizer, scheduler and total_steps itself)."
            )
        checked[step.name] = dict(kwargs)
    return checked


# --- running a step -----------------------------------------------------------------------


def run_step(plan: Plan, name: str) -> StepResult:
    """Run one step on a fresh model and say how it went (never raises for the check)."""
    step = next(s for s in STEPS if s.name == name)
    reason = skip_reason(plan, name)
    if reason is not None:
        return StepResult(name, step.check, "skipped", reason, 0.0, message=reason)
    ctx = _context.current()
    seed = ctx.seed if ctx is not None and ctx.seed is not None else 0
    seen = len(ctx.records) if ctx is not None else 0
    start = time.perf_counter()
    error: Exception | None = None
    result: Any = None
    with _rng.preserved():
        _rng.seed_all(seed)
        try:
            result = _call(plan, step)
        except AssertionError as exc:
            verdict, error, result = "failed", exc, None
        except Exception as exc:
            verdict, error, result = "error", exc, None
        else:
            verdict, error = "passed", None
    seconds = time.perf_counter() - start
    records = ctx.records[seen:] if ctx is not None else []
    record = next((r for r in reversed(records) if r.check == step.check), None)
    if error is None:
        return StepResult(name, step.check, verdict, figure(name, result, record), seconds, result)
    if verdict == "failed":
        shown = figure(name, None, record) or headline(str(error))
        return StepResult(name, step.check, verdict, shown, seconds, None, str(error), error)
    text = f"{type(error).__name__}: {error}"
    return StepResult(name, step.check, verdict, first_line(text), seconds, None, text, error)


def skip_reason(plan: Plan, name: str) -> str | None:
    """Why step ``name`` does not run in this plan, or ``None`` when it runs."""
    needs = next(s.needs for s in STEPS if s.name == name)
    if name not in plan.selected:
        return "not selected by checks="
    if needs == "time_dim" and plan.time_dim is None:
        return "no time_dim= given (not a sequence model)"
    if needs == "scheduler" and plan.scheduler is None:
        return "no scheduler= factory given"
    if needs == "mask":
        return _no_padding(plan)
    if needs == "optimizer" and plan.optimizer is None:
        return "no optimizer= factory given (the default one holds every trainable parameter)"
    if needs == "batch":
        from .._inputs import Inputs

        try:
            n, _ = Inputs.of(plan.inputs).batched(plan.batch_dim)
        except (TypeError, ValueError):
            return None  # the check itself says what is wrong
        if n < 2:
            return "a batch of 1 cannot mix samples"
    return None


def _no_padding(plan: Plan) -> str | None:
    """Why the padding step does not run: no mask among the inputs, or one without padding
    (``options={"padding": {"mask": ...}}`` names another key)."""
    import torch

    key = plan.options.get("padding", {}).get("mask", "attention_mask")
    mask = plan.inputs.get(key) if isinstance(plan.inputs, Mapping) else None
    if not isinstance(mask, torch.Tensor):
        return f"no {key!r} among the inputs (the step runs on dict inputs with a padded mask)"
    if bool((mask != 0).all()):
        return f"the inputs' {key!r} marks every position real (no padding to check)"
    return None


def fresh_model(plan: Plan) -> Any:
    """A new model from the factory, on the inputs' device; ``TypeError`` if it is none."""
    import torch

    from .._inputs import Inputs

    model = plan.make_model()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"make_model= {model_name(plan.make_model)}() returned "
            f"{type(model).__name__}, not a torch.nn.Module; return the model (a fresh one on "
            "each call)."
        )
    tensors = Inputs.of(plan.inputs).tensors()
    if tensors:
        model.to(tensors[0][1].device)
    return model


def _call(plan: Plan, step: Step) -> Any:
    __tracebackhide__ = True
    import pytest_nnrecipe

    check = getattr(pytest_nnrecipe, step.check)
    kwargs: dict[str, Any] = dict(plan.options.get(step.name, {}))
    model = fresh_model(plan)
    if step.call in ("schedule", "optimizer"):
        from .._training._fit import make_optimizer

        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(plan.optimizer, params)
        if step.call == "optimizer":  # the factory's optimizer on the fresh model
            return check(model, opt, **kwargs)
        sched = plan.scheduler(opt)
        return check(opt, sched, plan.total_steps, **kwargs)
    if step.call == "inputs":
        kwargs.setdefault("output", plan.output)
        return check(model, plan.inputs, **kwargs)
    if step.call == "training":
        if "optimizer" in inspect.signature(check).parameters and plan.optimizer is not None:
            kwargs["optimizer"] = plan.optimizer
        kwargs.setdefault("output", plan.loss_output)
        return check(model, plan.inputs, plan.targets, plan.loss_fn, **kwargs)
    kwargs.setdefault("output", plan.output)
    kwargs.setdefault("batch_dim", plan.batch_dim)
    if step.needs == "time_dim" or (step.needs == "mask" and plan.time_dim is not None):
        kwargs.setdefault("time_dim", plan.time_dim)
    return check(model, plan.inputs, **kwargs)


def model_name(make_model: Any) -> str:
    return str(getattr(make_model, "__qualname__", None) or type(make_model).__qualname__)
