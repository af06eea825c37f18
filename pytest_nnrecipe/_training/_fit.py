"""What every training check shares: argument checks, the loss of one forward, and the one
short training loop that runs on a copy of the model.

:func:`prepare` checks the arguments before anything runs (``TypeError``/``ValueError``
naming the argument); :func:`loss_of` computes the loss of one forward and, the first time,
checks what the model returned against the targets (batch size, dtype and shape for the
loss, a scalar loss, a finite loss at step 0). :func:`train` trains a deep copy in train mode
under the test's seed and records the loss, the gradient norm, the parameters that never got
a gradient, a few samples' predictions and the exact batch that entered the model.

The default optimiser is Adam at ``lr=1e-2``: the recipe's 3e-4 is the safe rate for a long
real run; one small batch is fit in far fewer steps at a larger rate, and Adam's per-parameter
scaling keeps that rate safe across small models.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import _context, _messages, _rng
from .._inputs import Inputs
from .._outputs import select
from .._records import TrainingRecord, model_name
from .._results import Closeness
from . import _losses, _suspects

DEFAULT_LR = 1e-2
#: How many samples' predictions the checks record and show.
SHOWN_SAMPLES = 8
#: Predictions are recorded at about this many evenly spaced steps of a run.
PREDICTION_POINTS = 20


def default_optimizer(params: Any) -> Any:
    """Adam at ``lr=1e-2``: fits one small batch fast (see the module docstring); with
    ``eps=1e-4`` for float16 parameters (the default 1e-8 rounds to 0 in float16)."""
    params = list(params)
    half = any(getattr(p, "dtype", None) == torch.float16 for p in params)
    return torch.optim.Adam(params, lr=DEFAULT_LR, eps=1e-4 if half else 1e-8)


@dataclasses.dataclass(frozen=True)
class Problem:
    """The validated arguments of a training check."""

    inputs: Inputs
    targets: Any
    loss_fn: Callable[[Any, Any], Any]
    output: Any
    spec: _losses.LossSpec | None
    seed: int
    check: str
    model: Any

    def fresh(self, inputs: Inputs | None = None) -> Inputs:
        """Copies of the inputs for one forward: a model that writes into its input (``x /=
        255``) changes the copy, never the user's tensor, and every step sees the same batch."""
        return (self.inputs if inputs is None else inputs).map(lambda _label, t: t.clone())


def prepare(
    check: str, model: Any, inputs: Any, targets: Any, loss_fn: Any, output: Any = None
) -> Problem:
    """Check the arguments of a training check; raise ``TypeError``/``ValueError`` naming them."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model= must be a torch.nn.Module for {check} (it trains a copy of its "
            f"parameters); got {type(model).__name__}."
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"model= {type(model).__name__} has no trainable parameter (none with "
            "requires_grad=True); there is nothing to train."
        )
    batch = Inputs.of(inputs, model=model)
    if isinstance(loss_fn, type):
        shown = f"{loss_fn.__module__.replace('torch.nn.modules.loss', 'nn')}.{loss_fn.__name__}"
        raise TypeError(
            f"loss_fn={shown} is a class, not a loss: calling it builds a loss module instead "
            f"of computing a loss. Pass an instance, loss_fn={shown}()."
        )
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn= must be a callable loss_fn(output, targets) -> scalar tensor, such as "
            f"torch.nn.CrossEntropyLoss(); got {type(loss_fn).__name__}."
        )
    if isinstance(targets, torch.Tensor):
        sizes = {t.shape[0] for _, t in batch.tensors() if t.dim() > 0}
        if targets.dim() == 0:
            raise ValueError(
                "targets= is a 0-d tensor; pass one target per sample (first dimension = batch)."
            )
        if sizes and targets.shape[0] not in sizes:
            shown = ", ".join(f"{k} {tuple(t.shape)}" for k, t in batch.tensors())
            raise ValueError(
                f"targets= has {targets.shape[0]} samples (shape {tuple(targets.shape)}) but "
                f"the inputs have batch size {'/'.join(map(str, sorted(sizes)))} ({shown}); "
                "pass the targets of exactly these inputs."
            )
    ctx = _context.current()
    seed = ctx.seed if ctx is not None and ctx.seed is not None else 0
    spec = _losses.recognise(loss_fn)
    return Problem(batch, targets, loss_fn, output, spec, seed, check, model)


def copy_model(model: Any) -> Any:
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise TypeError(
            f"model= {type(model).__name__} cannot be deep-copied ({type(exc).__name__}: {exc}); "
            "the training checks train a copy so that your model stays as it is. Make it "
            "copyable (no open files or generators among its attributes)."
        ) from exc


def make_optimizer(factory: Any, params: list[Any]) -> Any:
    """Call the user's factory ``params -> Optimizer``; ``TypeError`` naming ``optimizer=``."""
    if factory is None:
        return default_optimizer(params)
    if isinstance(factory, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer= got an optimizer instance ({type(factory).__name__}); it is bound to "
            "your model's parameters, not to the copy the check trains. Pass a factory "
            "instead: optimizer=lambda params: torch.optim.SGD(params, lr=0.1)."
        )
    if not callable(factory):
        raise TypeError(
            "optimizer= must be a factory params -> torch.optim.Optimizer, e.g. "
            f"optimizer=lambda params: torch.optim.Adam(params, lr=1e-3); got "
            f"{type(factory).__name__}."
        )
    try:
        opt = factory(params)
    except Exception as exc:
        raise TypeError(
            f"optimizer= factory raised {type(exc).__name__}: {exc}. It is called with the list "
            "of the copy's trainable parameters and must return a torch.optim.Optimizer, e.g. "
            "optimizer=lambda params: torch.optim.Adam(params, lr=1e-3)."
        ) from exc
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer= factory returned {type(opt).__name__}, not a torch.optim.Optimizer; "
            "return the optimizer built on the parameters it is given."
        )
    return opt


def loss_of(
    problem: Problem, raw: Any, *, first: bool, params: Sequence[Any] | None = None
) -> tuple[Any, Any]:
    """(scalar loss, selected output) of one forward's result ``raw``.

    On the ``first`` forward also check the output against the targets and the loss value,
    and, with gradients on and the trainable ``params`` given, the loss graph
    (:func:`_graph_sanity`): before any training, at no extra forward or backward.
    """
    out = select(raw, problem.output, single=True)
    if first:
        _check_targets(problem, out)
    targets = problem.targets
    if isinstance(targets, torch.Tensor):
        targets = targets.clone()  # a loss that writes into its targets changes only the copy
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = problem.loss_fn(out, targets)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        shape = tuple(problem.targets.shape) if hasattr(problem.targets, "shape") else "?"
        raise ValueError(
            f"loss_fn= raised {type(exc).__name__} on the model's output of shape "
            f"{tuple(out.shape)} and targets= of shape {shape}: {exc}"
        ) from exc
    if first:
        _surface(caught, problem, out)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"loss_fn= returned {type(loss).__name__}; it must return a scalar tensor that "
            "backpropagates to the model."
        )
    if loss.numel() != 1:
        raise ValueError(
            f"loss_fn= returned a tensor of shape {tuple(loss.shape)}, not a scalar"
            f"{_unreduced(tuple(loss.shape), tuple(out.shape))}; reduce it (reduction='mean', "
            "or .mean() over every dimension) so that one number is minimised."
        )
    if first and params is not None and torch.is_grad_enabled():
        _graph_sanity(problem, out, loss, params)
    loss = loss.reshape(())
    if first and not torch.isfinite(loss):
        raise _nonfinite_at_start(problem, out, loss)
    return loss, out


@dataclasses.dataclass
class Run:
    """What one short training run saw."""

    losses: list[float]
    grad_norms: list[float]
    reached: bool
    silent: list[str]
    predictions: list[Any]
    prediction_steps: list[int]
    batch: Any
    last_output: Any
    diverged_at: int | None
    stalled_at: int | None
    model: Any
    optimizer: str
    #: float16 parameters with an optimiser eps below float16's resolution (why the run
    #: turned non-finite), or None
    fp16_note: str | None = None

    @property
    def updates(self) -> int:
        return max(len(self.losses) - 1, 0)

    @property
    def best(self) -> float:
        finite = [v for v in self.losses if math.isfinite(v)]
        return min(finite) if finite else float("nan")


def train(
    model: Any,
    problem: Problem,
    *,
    steps: int,
    optimizer: Any = None,
    stop_below: float | None = None,
    inputs: Inputs | None = None,
    after_backward: Callable[[int, Any], None] | None = None,
    patience: int | None = None,
    on_copy: Callable[[Any], None] | None = None,
) -> Run:
    """Train a deep copy of ``model`` for up to ``steps`` updates in train mode.

    Stops early once the loss is ``<= stop_below``, or when it turns non-finite. The loss is
    measured on each step's forward, before its update: ``losses[k]`` is the loss after
    ``k`` updates. ``after_backward(step, net)`` sees the gradients before each update.
    With ``stop_below`` and ``patience``, the run also stops once the best loss has not moved
    1% closer to ``stop_below`` in ``patience`` steps (it has stalled). ``on_copy(net)`` sees
    the copy before training (to attach hooks).
    """
    batch = problem.inputs if inputs is None else inputs
    net = copy_model(model)
    net.train()
    if on_copy is not None:
        on_copy(net)
    names = {id(p): n for n, p in net.named_parameters()}
    params = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params)
    fed = _capture(net)
    every = max(1, steps // PREDICTION_POINTS)
    losses: list[float] = []
    norms: list[float] = []
    got_grad: set[int] = set()
    predictions: list[Any] = []
    pred_steps: list[int] = []
    reached, diverged, stalled, out = False, None, None, None
    best: list[float] = []  # best loss so far, per step
    with _rng.preserved(), torch.enable_grad():
        _rng.seed_all(problem.seed)
        for step in range(steps + 1):
            loss, out = loss_of(
                problem, problem.fresh(batch).call(net), first=step == 0, params=params
            )
            if step == 0:
                fed.remove()
            value = float(loss.detach())
            losses.append(value)
            if step % every == 0:
                predictions.append(_shown(out))
                pred_steps.append(step)
            if not math.isfinite(value):
                diverged = step
                break
            if stop_below is not None and value <= stop_below:
                reached = True
                break
            best.append(min(value, best[-1]) if best else value)
            if stop_below is not None and patience is not None and step >= patience:
                before = best[step - patience]
                if before - best[step] < 0.01 * (before - stop_below):
                    stalled = step
                    break
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms.append(_grad_norm(params, got_grad))
            if after_backward is not None:
                after_backward(step, net)
            opt.step()
    if pred_steps[-1] != len(losses) - 1 and out is not None:
        predictions.append(_shown(out))
        pred_steps.append(len(losses) - 1)
    silent = [names[id(p)] for p in params if id(p) not in got_grad]
    return Run(
        losses=losses,
        grad_norms=norms,
        reached=reached,
        silent=silent if norms else [],
        predictions=predictions,
        prediction_steps=pred_steps,
        batch=fed.batch,
        last_output=None if out is None else out.detach(),
        diverged_at=diverged,
        stalled_at=stalled,
        model=net,
        optimizer=describe_optimizer(opt, default=optimizer is None),
        fp16_note=_suspects.fp16_eps(opt, params),
    )


def record_run(
    problem: Problem,
    run: Run,
    passed: bool,
    *,
    target: float | None = None,
    baseline: Run | None = None,
    failing: list[str] | None = None,
    redundant: list[str] | None = None,
    closeness: Closeness | None = None,
) -> None:
    """Record what a training check saw of its run, for the pictures and the failure section:
    the curves, a few samples' predictions with their targets, the batch that entered the
    model, the optimiser, the mode, the first conv layer's weights at the end of the run, and
    the check's ``target``, ``baseline`` run, ``failing`` parameters or ``closeness`` (its key
    figure next to its threshold). Small: at most
    :data:`SHOWN_SAMPLES` samples of the predictions and targets, no dataset."""
    record = TrainingRecord(
        check=problem.check,
        model=model_name(problem.model),
        passed=passed,
        losses=list(run.losses),
        steps=run.updates,
        grad_norms=list(run.grad_norms),
        predictions=run.predictions,
        prediction_steps=run.prediction_steps,
        targets=shown_targets(problem),
        batch=run.batch,
        mode="train",
        optimizer=run.optimizer,
        first_layer_weight=first_layer_weight(run.model),
        target=target,
        failing=failing,
        redundant=redundant,
        baseline_losses=None if baseline is None else list(baseline.losses),
        baseline_batch=None if baseline is None else baseline.batch,
        closeness=closeness,
        borderline=True if closeness is not None and closeness.borderline else None,
    )
    _context.record(record)


def shown_targets(problem: Problem) -> Any:
    """The targets of the samples whose predictions are recorded (CPU, detached), or None
    when the targets are not a tensor with a batch dimension."""
    t = problem.targets
    if not isinstance(t, torch.Tensor) or t.dim() == 0:
        return None
    return t.detach()[:SHOWN_SAMPLES].cpu().clone()


def first_layer_weight(model: Any) -> Any:
    """A CPU copy of the weight of the model's first ``Conv1d``/``Conv2d`` (the filters the
    first-layer picture draws), or None."""
    try:
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)) and module.weight is not None:
                return module.weight.detach().cpu().clone()
    except Exception:  # an uninitialised lazy layer, a meta tensor: no picture, no failure
        return None
    return None


def describe_optimizer(opt: Any, *, default: bool = False) -> str:
    lr = opt.param_groups[0].get("lr") if opt.param_groups else None
    shown = (
        f"{type(opt).__name__}(lr={lr:g})" if isinstance(lr, (int, float)) else type(opt).__name__
    )
    return shown + (" (default)" if default else "")


#: A borderline verdict of a check that trains becomes decisive with this many times the steps
#: (a model that learns from its input pulls away; one that does not stays where it is).
LONGER = 4


def longer(name: str, steps: int) -> str:
    """The argument that would make a borderline training verdict decisive."""
    return f"{name}={LONGER * steps}"


def settle(values: list[float]) -> float:
    """The level a curve ends at: the mean of its last tenth (at least one point)."""
    tail = values[-max(1, len(values) // 10) :]
    finite = [v for v in tail if math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(tail) else float("nan")


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int.")
    return value


class _Capture:
    """A forward pre-hook that keeps the first tensor of the first call (detached, CPU)."""

    def __init__(self, net: Any) -> None:
        self.batch: Any = None
        self.handle = net.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, _module: Any, args: Any, kwargs: Any) -> None:
        if self.batch is None:
            for value in (*args, *kwargs.values()):
                if isinstance(value, torch.Tensor):
                    self.batch = value.detach().cpu().clone()
                    break
        return None

    def remove(self) -> None:
        self.handle.remove()


def _capture(net: Any) -> _Capture:
    return _Capture(net)


def _shown(out: Any) -> Any:
    return out.detach()[:SHOWN_SAMPLES].cpu().clone() if out.dim() > 0 else out.detach().cpu()


def _grad_norm(params: list[Any], got_grad: set[int]) -> float:
    """The total gradient norm; marks the parameters whose gradient is non-zero and finite."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return 0.0
    norms = torch._foreach_norm([p.grad.detach() for p in with_grad])
    stacked = torch.stack([n.float() for n in norms]).cpu()
    for p, n in zip(with_grad, stacked.tolist(), strict=True):
        if n > 0 and math.isfinite(n):
            got_grad.add(id(p))
    return float(torch.linalg.vector_norm(stacked))


def _check_targets(problem: Problem, out: Any) -> None:
    """Dtype, shape and range of the targets against what the recognised loss expects."""
    spec, targets = problem.spec, problem.targets
    if spec is None or not isinstance(targets, torch.Tensor):
        return
    shape = tuple(out.shape)
    if spec.classes:
        cdim = _losses.class_dim(shape)
        index_shape = shape[:cdim] + shape[cdim + 1 :]
        if targets.is_floating_point():
            if tuple(targets.shape) == index_shape:
                raise TypeError(
                    f"targets= is {targets.dtype} shaped like class indices {index_shape}, but "
                    f"{spec.name} reads float targets as class probabilities of shape "
                    f"{shape}; pass class indices as integers: targets.long()."
                )
            if tuple(targets.shape) != shape:
                raise ValueError(
                    f"targets= of shape {tuple(targets.shape)} fits neither class indices "
                    f"{index_shape} nor class probabilities {shape} for output of shape {shape} "
                    f"with {spec.name} (classes along dim {cdim})."
                )
            return
        if targets.dtype != torch.long:
            raise TypeError(
                f"targets= has dtype {targets.dtype}; {spec.name} needs int64 class indices "
                "(targets.long()) or float class probabilities."
            )
        if tuple(targets.shape) != index_shape:
            raise ValueError(
                f"targets= of shape {tuple(targets.shape)} does not match the class-index shape "
                f"{index_shape} that {spec.name} expects for output of shape {shape} (classes "
                f"along dim {cdim}). For (B, T, C) outputs move the classes to dim 1 with "
                "output=lambda out: out.transpose(1, 2), which keeps the loss recognised."
            )
        n = shape[cdim]
        valid = targets[targets != spec.option("ignore_index", -100)]
        bad = valid[(valid < 0) | (valid >= n)]
        if bad.numel():
            raise ValueError(
                f"targets= holds class {int(bad[0])} but the model outputs {n} classes (valid "
                f"0..{n - 1}, plus ignore_index={spec.option('ignore_index', -100)}); the head "
                "is too small or the labels are not 0-based."
            )
        return
    if not targets.is_floating_point():
        raise TypeError(
            f"targets= has dtype {targets.dtype}; {spec.name} needs float targets: pass "
            "targets.float()."
        )
    if tuple(targets.shape) != shape:
        raise ValueError(
            f"targets= of shape {tuple(targets.shape)} differs from the output's shape {shape}; "
            f"{spec.name} would broadcast them against each other (a classic silent bug: "
            "(B, 1) against (B,) compares every sample with every target). Make the shapes "
            "equal, e.g. output.squeeze(-1) or targets.unsqueeze(-1)."
        )


def _surface(caught: list[warnings.WarningMessage], problem: Problem, out: Any) -> None:
    """Turn the loss's broadcasting warning into a ``ValueError``; re-emit any other warning.

    PyTorch's regression losses only *warn* when output and targets differ in shape and
    broadcast ((B, 1) against (B,) compares every sample with every target): a loss this
    module does not recognise (a wrapper around ``F.mse_loss``) would otherwise train on it
    silently, and the checks would blame the optimiser.
    """
    for w in caught:
        text = str(w.message)
        if "broadcast" in text:
            shape = tuple(getattr(problem.targets, "shape", ()))
            raise ValueError(
                f"loss_fn= broadcasts the model's output of shape {tuple(out.shape)} against "
                f"targets= of shape {shape} (PyTorch warned: {text}) — a classic silent bug: "
                "(B, 1) against (B,) compares every sample with every target. Make the shapes "
                "equal, e.g. output.squeeze(-1) or targets.unsqueeze(-1)."
            )
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _nonfinite_at_start(problem: Problem, out: Any, loss: Any) -> AssertionError:
    bad = int((~torch.isfinite(out.detach())).sum()) if out.is_floating_point() else 0
    if bad:
        where = (
            f"{bad} of {out.numel()} output values are non-finite already: something in the "
            "forward overflows or divides by zero (log of 0, sqrt of a negative, an "
            "all-masked softmax)"
        )
    else:
        where = (
            "the outputs are all finite, so loss_fn turns them into a non-finite loss: a log "
            "of 0 or of a probability outside (0, 1), a mean over an empty selection (every "
            "target equal to ignore_index?)"
        )
    value = float(loss.detach())
    _record_start(problem, value)
    return _messages.fail(
        problem.check,
        f"the loss at step 0 is {value} before any update.",
        evidence=[where + "."],
        cause="the loss must be finite at initialisation for any training to happen.",
        facts={"mode": "train"},
    )


def _unreduced(loss: tuple[int, ...], out: tuple[int, ...]) -> str:
    """Which reduction a non-scalar loss most likely misses, from its shape and the output's."""
    if not out or not loss:
        return ""
    if loss == out:
        return " (one loss per output value: reduction='none', or no reduction at all)"
    if loss == out[:1]:
        return (
            f" (one loss per sample of the {out[0]}: reduction='none', or a mean over the "
            "wrong dimension such as .mean(dim=-1))"
        )
    if loss == out[1:]:
        return " (a mean over the batch only, .mean(dim=0), leaving one loss per output unit)"
    return ""


#: Tensor methods and attributes that take a value out of the autograd graph.
_CUTS = {"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "detach", "detach_"}


class _CutFinder(torch.overrides.TorchFunctionMode):
    """Rerun of ``loss_fn`` that notes the first op taking a tensor that requires grad out of
    the graph (``.item()``, ``float()``, ``.detach()``, ``.data``, ``.tolist()``, ``.numpy()``)
    and the line of the user's code that called it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: tuple[str, str] | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if self.found is None:
            name = getattr(func, "__name__", "")
            if name == "__get__":  # a property: .data
                name = getattr(getattr(func, "__self__", None), "__name__", "")
                name = ".data" if name == "data" else ""
            elif name in _CUTS:
                name = f"{name[2:-2]}()" if name.startswith("__") else f".{name}()"
            else:
                name = ""
            first = args[0] if args else None
            if name and isinstance(first, torch.Tensor) and first.requires_grad:
                self.found = (name, _user_line())
        return func(*args, **(kwargs or {}))


def _user_line() -> str:
    """``file:line`` of the innermost frame outside torch and this package ("" if none)."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or "/pytest_nnrecipe/" in path:
            continue
        return f"{frame.filename}:{frame.lineno} ({(frame.line or '').strip()})"
    return ""


def _reached(loss: Any) -> set[int]:
    """The ids of the leaf tensors the loss's graph accumulates gradients into."""
    seen: set[int] = set()
    out: set[int] = set()
    todo = [loss.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        variable = getattr(fn, "variable", None)
        if isinstance(variable, torch.Tensor):
            out.add(id(variable))
        todo.extend(nxt for nxt, _ in fn.next_functions)
    return out


def _graph_sanity(problem: Problem, out: Any, loss: Any, params: Sequence[Any]) -> None:
    """The loss of the first forward must backpropagate to the model's parameters: it has a
    graph (``grad_fn``) and the graph reaches at least one trainable parameter. Each way of
    breaking it gets its own message naming the step that broke it, before any update."""
    trainable = [p for p in params if p.requires_grad]
    ids = {id(p) for p in trainable}
    if not trainable or (loss.grad_fn is not None and _reached(loss) & ids):
        return
    value = float(loss.detach().reshape(-1)[0])
    if not out.requires_grad:
        headline = (
            f"the model's output carries no gradient (requires_grad=False), so the loss "
            f"({value:.4g}) cannot train the {len(trainable)} trainable parameters."
        )
        evidence = [
            f"Step: the model's forward. Its output of shape {tuple(out.shape)} has no "
            "grad_fn although gradients are enabled."
        ]
        cause = (
            "the forward runs under torch.no_grad()/torch.inference_mode(), or returns "
            ".detach()ed or .data values, or rebuilds its output from numbers (torch.tensor)."
        )
    else:
        if loss.grad_fn is not None:
            what = (
                f"a loss ({value:.4g}) whose graph reaches none of the model's "
                f"{len(trainable)} trainable parameters"
            )
        elif loss.requires_grad:
            what = (
                f"a leaf tensor ({value:.4g}, requires_grad=True, no grad_fn): it does not "
                f"backpropagate to the model's {len(trainable)} trainable parameters"
            )
        else:
            what = (
                f"a tensor with no graph ({value:.4g}, grad_fn=None): it does not "
                f"backpropagate to the model's {len(trainable)} trainable parameters"
            )
        headline = f"loss_fn returned {what}."
        evidence = [
            f"Step: loss_fn. The model's output of shape {tuple(out.shape)} requires grad; "
            "the loss computed from it does not reach it."
        ]
        found = _find_cut(problem, out)
        if found is not None:
            op, where = found
            evidence.append(
                f"loss_fn calls {op} on a tensor that requires grad"
                + (f", at {where}" if where else "")
                + ": that takes the value out of the graph."
            )
            cause = (
                f"the loss is rebuilt from {op} (a Python number or a detached tensor); "
                "compute it with tensor ops on the output and return that tensor."
            )
        else:
            cause = (
                "the loss is rebuilt from Python numbers (torch.tensor(...) of a float"
                + (", with requires_grad=True" if loss.requires_grad else "")
                + ") or computed under torch.no_grad(); compute it with tensor ops on the "
                "output and return that tensor."
            )
    _record_start(problem, value)
    raise _messages.fail(
        problem.check, headline, evidence=evidence, cause=cause, facts={"mode": "train"}
    )


def _find_cut(problem: Problem, out: Any) -> tuple[str, str] | None:
    """Rerun ``loss_fn`` on the output, watching for the op that cuts the graph (best effort:
    a loss that fails the second time says nothing)."""
    finder = _CutFinder()
    targets = problem.targets
    if isinstance(targets, torch.Tensor):
        targets = targets.clone()
    try:
        with finder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.loss_fn(out, targets)
    except Exception:
        return None
    return finder.found


def _record_start(problem: Problem, value: float) -> None:
    """Record a check that failed on its first forward, before any update."""
    _context.record(
        TrainingRecord(
            check=problem.check,
            model=model_name(problem.model),
            passed=False,
            losses=[value],
            steps=0,
            mode="train",
            targets=shown_targets(problem),
            first_layer_weight=first_layer_weight(problem.model),
        )
    )
