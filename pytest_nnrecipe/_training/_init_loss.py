"""``assert_init_loss``: the recipe's "verify loss @ init" and "init well".

The loss of the untrained model on one batch must match the loss of the best
input-independent prediction for these targets, found for any loss by :mod:`._constant`:
``log(C)`` for balanced classes, the prior's entropy for imbalanced ones, the targets'
variance for MSE, and whatever minimises a custom loss. ``expected=`` overrides it (a number,
or ``"uniform"``: every class equally likely, the neutral start of a language model). The
forward runs in train mode — what the first training step sees, its loss graph checked — on
the model itself (fresh copies of the inputs), which :func:`_state.untouched` puts back
afterwards. (Eval mode is not cleaner at init: a BatchNorm's running statistics are still
0 / 1, so it would not normalise; dropout adds only zero-mean noise, measured at most +7%
with ``Dropout(0.5)``.)

Tolerance (``rtol``): how far above the optimum the measured loss may be, relative to it.
A default-initialised PyTorch head gives small but non-zero outputs, so its loss sits a little
above the optimum. Classification with default init (cross-entropy, BCE; MLP, CNN, embedding
LM; 20 seeds) measured 0-15% above, so the default there is ``rtol=0.25``; a wrong init lands
far above (final weights x20: x3 and more; a 1:10 imbalanced binary task with a zero bias:
+60% to +155%). A regression head adds its own output variance (100 seeds, batch of 64): MLP
heads 5-70% of the targets' variance, a bare ``nn.Linear`` on raw features up to ~130% (p95
80-95%), so regression losses (MSE, L1, Huber, SmoothL1, and float targets shaped like the
output that are not all 0/1) default to ``rtol=1.0`` (the loss may be at most twice the
optimum); a missing bias on targets around 50 with std 1 is x2500.
When the optimum is derived from the targets, the sampling-noise allowance of
:mod:`._sampling` (the 99.9% quantile of how far the population's best constant sits above the
batch's, e.g. ``chi2(C - 1) / (2 n)`` nats for cross-entropy) is added to ``rtol * expected``:
the batch's prior is only an estimate of the one the model can know. When that allowance is
larger than ``rtol * expected`` itself (the smallest excess the check counts as an init bug),
the batch is too small for the check to be sharp: the result (``blunt``) and the message say
so, with the batch size that would make it sharp (the allowance shrinks as ``1 / n``).
A batch whose best constant already fits every target (one sample, one class) cannot be
judged at all: ``ValueError``.
How close (:class:`~pytest_nnrecipe.Closeness`): the loss next to the bound it was judged by
(the highest loss that passes, or the lowest when it sits below the optimum). It is
borderline within the sampling allowance (the noise of the batch's optimum) of that bound,
with the batch size from which the allowance is smaller than the distance (it shrinks as
``1 / n``); with no allowance (``expected=`` given) within a tenth of the tolerance, and no
batch size makes that decisive.
A loss more than ``rtol`` *below* the optimum (only checked when ``rtol < 1``) fails too: an
untrained model cannot beat every constant unless it already knows the labels (labels
leaking into the inputs, or trained weights — then this check does not apply).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch

from .. import _context, _messages, _rng
from .._records import TrainingRecord, model_name
from .._results import Closeness, InitLoss
from .._state import untouched
from . import _constant, _fit, _losses, _sampling

if TYPE_CHECKING:  # pragma: no cover
    from .._types import LossFunction, ModelInputs, OutputSelector

CHECK = "assert_init_loss"
#: Default ``rtol`` for classification losses and for losses given with ``expected=``.
DEFAULT_RTOL = 0.25
#: Default ``rtol`` for regression losses (MSE, L1, Huber, SmoothL1).
REGRESSION_RTOL = 1.0


@dataclasses.dataclass(frozen=True)
class _Judgement:
    """The verdict and the figures it was formed from (the one place it is formed)."""

    passed: bool
    measured: float
    expected: float
    #: the highest loss that passes: ``expected + rtol * |expected| + allowance``
    threshold: float
    #: the lowest loss that passes (``None``: none is too low, ``rtol >= 1``)
    floor: float | None
    excess: float  # relative to ``expected``
    high: bool
    blunt: bool
    sharp_batch_size: int | None
    #: the loss next to the bound it was judged by
    closeness: Closeness


def assert_init_loss(
    model: torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    expected: float | str | None = None,
    rtol: float | None = None,
    output: OutputSelector = None,
    msg: str | None = None,
) -> InitLoss:
    """Check that the untrained model's loss is the best input-independent loss.

    ``expected`` overrides the derived optimum: a number, or ``"uniform"`` (every class
    equally likely). ``rtol``: allowed relative distance from it; default 0.25 for
    classification losses, 1.0 for regression losses (see the module docstring).
    ``output`` picks the tensor of a structured model output; ``loss_fn`` receives that tensor.
    """
    __tracebackhide__ = True
    problem = _fit.prepare(CHECK, model, inputs, targets, loss_fn, output)
    if expected is not None and expected != "uniform":
        if (
            isinstance(expected, bool)
            or not isinstance(expected, (int, float))
            or not math.isfinite(expected)
        ):
            raise ValueError(
                f"expected={expected!r} must be a finite number (the loss of the best "
                'input-independent prediction), "uniform" (every class equally likely) or None '
                "(derived from the targets)."
            )
    if rtol is not None and (
        isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0
    ):
        raise ValueError(f"rtol={rtol!r} must be a positive number, e.g. rtol=0.25.")
    # With gradients on, so that the loss graph is checked too (no backward runs).
    with untouched(model), _rng.preserved(), torch.enable_grad():
        _rng.seed_all(problem.seed)
        model.train()
        fed = _fit._capture(model)
        head = _Head(model)
        try:
            loss, out = _fit.loss_of(
                problem, problem.fresh().call(model), first=True, params=list(model.parameters())
            )
        finally:
            fed.remove()
            head.remove()
        loss, out = loss.detach(), out.detach()
    measured = float(loss)
    first_layer = _fit.first_layer_weight(model)  # at init: untouched() restored it
    constants: _constant.Constants | None = None
    try:
        constants = _constant.Constants(problem, out, measured)
    except ValueError:
        if expected is None or expected == "uniform":
            raise
    optimum = allowance = None
    if expected is None:
        assert constants is not None
        if constants.degenerate():
            raise _too_small(problem, constants)
        optimum, allowance = constants.best, constants.allowance
        expected_value = optimum.loss
    elif expected == "uniform":
        assert constants is not None
        expected_value = constants.uniform()
    else:
        expected_value = float(expected)
    if rtol is None:
        rtol = REGRESSION_RTOL if constants is not None and constants.regression else DEFAULT_RTOL
    name = constants.name if constants is not None else _constant.describe(loss_fn)
    if constants is not None and constants.spec is not None:
        name = constants.spec.name
    low = expected_value
    if expected == "uniform" and constants is not None:
        low = constants.best.loss  # below uniform is fine, below every constant is not
    verdict = _judge(measured, expected_value, low, rtol, allowance, constants)
    record = TrainingRecord(
        check=CHECK,
        model=model_name(model),
        passed=verdict.passed,
        losses=[measured],
        target=verdict.expected,
        steps=0,
        rtol=rtol,
        noise_allowance=allowance.loss if allowance is not None else 0.0,
        predictions=[out.detach()[: _fit.SHOWN_SAMPLES].cpu()],
        prediction_steps=[0],
        targets=_fit.shown_targets(problem),
        batch=fed.batch,
        mode="train",
        first_layer_weight=first_layer,
        passing_band=(verdict.floor, verdict.threshold),
        blunt=verdict.blunt,
        sharp_batch_size=verdict.sharp_batch_size,
        closeness=verdict.closeness,
        borderline=True if verdict.closeness.borderline else None,
    )
    _context.record(record)
    if verdict.passed:
        return InitLoss(
            measured,
            verdict.expected,
            verdict.excess,
            rtol,
            name,
            allowance.loss if allowance is not None else 0.0,
            verdict.blunt,
            verdict.sharp_batch_size,
            verdict.closeness,
        )
    facts = _Facts(problem, out, name, rtol, constants, optimum, allowance, head.found(out))
    raise _failure(facts, verdict, expected, msg)


def _judge(
    measured: float,
    expected: float,
    low: float,
    rtol: float,
    allowance: _sampling.Allowance | None,
    constants: _constant.Constants | None,
) -> _Judgement:
    """The verdict on the loss at init; ``low``: the loss below which (by more than ``rtol``)
    the model is suspiciously good."""
    scale = max(abs(expected), 1e-12)
    noise = allowance.loss if allowance is not None else 0.0
    threshold = expected + rtol * scale + noise
    excess = (measured - expected) / scale
    high = measured > expected
    bottom = low - rtol * max(abs(low), 1e-12)
    low_ok = rtol >= 1 or measured >= bottom
    if not low_ok and allowance is not None and constants is not None:
        # A constant per output (not shared) can sit lower: judge "suspiciously good" by it.
        lowest = constants.per_value_best()
        bottom = lowest - rtol * max(abs(lowest), 1e-12)
        low_ok = measured >= bottom
    passed = measured <= threshold and low_ok
    blunt = allowance is not None and noise > rtol * scale
    batch = _batch(constants.out) if constants is not None else 0
    sharp = None
    if blunt and allowance is not None and constants is not None:
        sharp = max(batch + 1, math.ceil(batch * allowance.scaling / (rtol * scale)))
    if measured < expected and rtol < 1:
        closeness = Closeness("loss at init", measured, bottom, True, 0.1 * (expected - bottom))
    else:
        band = noise if noise > 0 else 0.1 * rtol * scale
        decisive = None
        distance = abs(measured - threshold)
        if allowance is not None and batch and distance <= band:
            size = max(batch + 1, math.ceil(batch * allowance.scaling / max(distance, 1e-12)))
            decisive = f"a batch of {size} samples"
        closeness = Closeness("loss at init", measured, threshold, False, band, decisive)
    floor = None if rtol >= 1 else bottom
    return _Judgement(
        passed, measured, expected, threshold, floor, excess, high, blunt, sharp, closeness
    )


@dataclasses.dataclass(frozen=True)
class _Facts:
    """What the failure message is made of."""

    problem: _fit.Problem
    out: Any
    name: str
    rtol: float
    constants: _constant.Constants | None
    optimum: _losses.Optimum | None
    allowance: _sampling.Allowance | None
    head: Any  # (name, module) of the layer that produced the output, or None


def _failure(facts: _Facts, verdict: _Judgement, expected: Any, msg: str | None) -> AssertionError:
    measured, exp = verdict.measured, verdict.expected
    rtol, allowance, constants = facts.rtol, facts.allowance, facts.constants
    spec = constants.spec if constants is not None else facts.problem.spec
    out = constants.standard(facts.out) if constants is not None else facts.out
    targets = constants.standard_targets if constants is not None else facts.problem.targets
    high, excess = verdict.high, verdict.excess
    if excess > 2 and exp > 0:
        far = f"{measured / exp:.3g} times that"
    elif abs(exp) < 1e-12:
        far = f"{measured - exp:.3g} {'above' if high else 'below'} it"
    else:
        far = f"{abs(excess):.0%} {'above' if high else 'below'} it"
    what = "the loss of the best input-independent prediction for these targets"
    if expected == "uniform":
        what = "the loss of the uniform prediction, every class equally likely"
    elif expected is not None:
        what = "given as expected="
    if high:
        allowed = f"{rtol:.0%}"
        if allowance is not None:
            unit = "" if constants is not None and constants.regression else " nats"
            allowed += f" + {allowance.loss:.2g}{unit} for {allowance.what}"
    else:
        allowed = f"within {rtol:.0%}"
    headline = (
        f"the loss at init is {measured:.4g}, expected {exp:.4g} ({what}): {far} "
        f"(allowed: {allowed})."
    )
    evidence = [
        f"loss_fn: {facts.name}; output shape {tuple(facts.out.shape)}; mode=train, no update.",
        str(verdict.closeness) + ".",
    ]
    if constants is not None and expected is None:
        evidence.append(f"best constant: {constants.layout.describe()}.")
    if high and allowance is not None:
        evidence.append(
            f"The optimum is fitted to this batch, so a correct model sits above it by "
            f"chance; {allowance.loss:.2g} covers that for {allowance.what} (sampling noise "
            f"exceeds it with p = {_sampling.NOISE_LEVEL:g}) and shrinks as 1/n: a larger batch "
            "sharpens the check; pass expected= if you know the true optimum."
        )
    if verdict.blunt:
        evidence.append(_blunt_note(verdict, rtol, allowance))
    fixes: list[str] = []
    if high:
        evidence.extend(_losses.output_symptoms(spec, out, targets, trained=False))
        scale_fix = _scale_fix(spec, out, targets, constants)
        if scale_fix:
            fixes.append(scale_fix)
        bias_fix = _bias_fix(facts, spec)
        if bias_fix:
            fixes.append(bias_fix)
        if not fixes:
            fixes.append(
                "initialise the final layer so that its outputs start at the best constant"
            )
        evidence.append("Fix: " + fixes[0] + ".")
        evidence.extend("Or: " + f + "." for f in fixes[1:])
        cause = (
            "the final layer is initialised wrong: its outputs at init are far from the best "
            "constant prediction, so the first steps only learn the bias (a 'hockey stick' "
            "loss curve)."
        )
        if facts.head is not None and getattr(facts.head[1], "bias", 0) is None:
            cause = (
                f"the final layer {facts.head[0] or type(facts.head[1]).__name__} has no bias, "
                "so nothing in it can move the outputs to the best constant; the first steps "
                "then learn the prior through the weights (a 'hockey stick' loss curve)."
            )
    else:
        symptoms = _losses.output_symptoms(spec, out, targets, trained=False)
        floor = constants.floor if constants is not None else None
        below_floor = floor is not None and measured < floor - 1e-6 * max(1.0, abs(floor))
        if below_floor:
            evidence.append(
                f"{measured:.4g} is below {floor:.4g}, the lowest loss any valid prediction "
                f"can reach for these targets: what the model returns is not what "
                f"{facts.name} expects (probabilities where it wants log-probabilities, or the "
                "wrong output)."
            )
        evidence.extend(symptoms)
        if symptoms or below_floor:
            cause = (
                "the head and the loss do not fit together: the model's outputs are not in "
                f"the form {facts.name} expects, so the loss is not a valid loss at all."
            )
        else:
            cause = (
                "an untrained model cannot beat every constant prediction unless it already "
                "knows the labels: labels leaking into the inputs, or trained weights (then "
                "this check does not apply)."
            )
    return _messages.fail(
        CHECK,
        headline,
        msg=msg,
        evidence=evidence,
        cause=cause,
        facts={"mode": "train", "rtol": rtol},
        picture=_picture(facts, out, targets),
    )


def _blunt_note(verdict: _Judgement, rtol: float, allowance: _sampling.Allowance | None) -> str:
    noise = allowance.loss if allowance is not None else 0.0
    tol = rtol * max(abs(verdict.expected), 1e-12)
    return (
        f"This batch is too small for a sharp check: the sampling allowance ({noise:.2g}) is "
        f"larger than the tolerance itself (rtol x expected = {tol:.2g}), so an init bug that "
        f"puts the loss up to {noise + tol:.2g} above the optimum passes here; from a batch of "
        f"{verdict.sharp_batch_size} samples the allowance is below the tolerance."
    )


def _too_small(problem: _fit.Problem, constants: _constant.Constants) -> ValueError:
    n = _batch(constants.out)
    floor = constants.floor or 0.0
    return ValueError(
        f"targets= cannot be judged: the best constant prediction already fits every target "
        f"(its loss {constants.best.loss:.3g} is the lowest achievable, {floor:.3g}), so any "
        f"correct model starts above it. With {n} sample{'s' if n != 1 else ''} "
        f"{'and one distinct target ' if n > 1 else ''}a constant memorises the batch. Pass at "
        "least 2 samples with different targets (the minimum; a few dozen make the check sharp)."
    )


def _bias_fix(facts: _Facts, spec: _losses.LossSpec | None) -> str | None:
    """Set the final bias to the best constant; a head without a bias says so."""
    constants, optimum = facts.constants, facts.optimum
    if constants is None or optimum is None:
        return None
    if spec is not None and (spec.classes or spec.kind in _losses.PROBABILITY_KINDS):
        fix = _losses.init_fix(spec, optimum, prior=constants.hint_prior())
    elif spec is not None:
        fix = _losses.init_fix(spec, optimum)
    else:
        fix = f"set the final layer's bias to the best constant, bias = {_losses.values(optimum.constant)}"
    if facts.head is None or getattr(facts.head[1], "bias", 0) is not None:
        return fix
    name, module = facts.head
    value = (
        fix.split(", bias = ", 1)[-1] if ", bias = " in fix else _losses.values(optimum.constant)
    )
    start = "the log prior" if spec is not None and spec.classes else "the best constant"
    return (
        f"the final layer {name or type(module).__name__} ({_module(module)}) has no bias, so "
        f"no init of it starts at the best constant: add one initialised to {start} "
        f'(bias=True, then bias = {value}); or pass expected="uniform" if a uniform start '
        "(every class equally likely) is what you intend, as language models usually do"
    )


def _module(module: Any) -> str:
    inp, out = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if inp is not None and out is not None:
        return f"{type(module).__name__}({inp}, {out}, bias=False)"
    return f"{type(module).__name__}, bias=None"


def _scale_fix(
    spec: _losses.LossSpec | None,
    out: Any,
    targets: Any,
    constants: _constant.Constants | None,
) -> str | None:
    """'Outputs too large' when the spread of the outputs explains the excess."""
    o = out.detach().to("cpu", torch.float64)
    if o.numel() < 2 or not torch.isfinite(o).all():
        return None
    classes = spec.classes if spec is not None else bool(constants and constants.layout.classes)
    if classes and o.dim() >= 2:
        cdim = 1 if spec is not None or constants is None else constants.layout.classes[0]
        spread = float(o.std(cdim).mean()) if o.shape[cdim] > 1 else 0.0
        if spread > 1.0:
            return (
                f"the logits are too large at init: their std across classes is {spread:.3g} "
                "(a default-initialised head gives about 0.1-0.5); scale the final layer's "
                "weights down (e.g. x0.01, or zero them)"
            )
        return None
    if spec is not None and spec.kind == "bce_logits":
        spread = float(o.std())
        if spread > 1.0:
            return (
                f"the logits are too large at init: their std is {spread:.3g}; scale the "
                "final layer's weights down (e.g. x0.01, or zero them)"
            )
        return None
    regression = constants.regression if constants is not None else False
    if regression and isinstance(targets, torch.Tensor) and targets.shape == out.shape:
        t = targets.detach().to("cpu", torch.float64)
        o_std, t_std = float(o.std(0).mean()) if o.shape[0] > 1 else 0.0, float(t.std())
        if o_std > max(t_std, 1e-12):
            return (
                f"the predictions spread more than the targets at init (std across samples "
                f"{o_std:.3g} vs the targets' {t_std:.3g}); scale the final layer's weights "
                "down (e.g. x0.01)"
            )
    return None


def _picture(facts: _Facts, out: Any, targets: Any) -> str | None:
    constants, optimum = facts.constants, facts.optimum
    if constants is None or optimum is None:
        return None
    spec = constants.spec
    o = out.detach().to("cpu", torch.float64)
    prior = optimum.probabilities
    if spec is not None and spec.classes and o.dim() >= 2 and prior is not None:
        if prior.numel() > 20:
            return None
        logp = o if spec.kind == "nll" else o.log_softmax(1)
        predicted = logp.exp().movedim(1, -1).reshape(-1, o.shape[1]).mean(0)
        rows = [
            f"{c:>5} {float(p):>7.3f} {float(q):>9.3f}"
            for c, (p, q) in enumerate(zip(prior, predicted, strict=True))
        ]
        return "class   prior  predicted (mean p at init)\n" + "\n".join(rows)
    if constants.regression and isinstance(targets, torch.Tensor):
        t = targets.detach().to("cpu", torch.float64)
        return (
            f"targets:     mean {float(t.mean()):.4g}, std {float(t.std()):.4g}, "
            f"range [{float(t.min()):.4g}, {float(t.max()):.4g}]\n"
            f"predictions: mean {float(o.mean()):.4g}, std {float(o.std()):.4g}, "
            f"range [{float(o.min()):.4g}, {float(o.max()):.4g}]"
        )
    if spec is not None and spec.kind in _losses.PROBABILITY_KINDS and prior is not None:
        p = o.sigmoid() if spec.kind == "bce_logits" else o
        return (
            f"positive rate of the targets: {_losses.values(prior)}\n"
            f"mean predicted p at init:     {_losses.values(p.mean(0))}"
        )
    lay = constants.layout
    if lay.size <= 20 and tuple(o.shape) == lay.shape:
        return (
            f"best constant:              {_losses.values(optimum.constant)}\n"
            f"mean model output at init:  {_losses.values(lay.reduce(o))}"
        )
    return None


class _Head:
    """Forward hooks that remember the last module with a weight to run (the head)."""

    def __init__(self, model: Any) -> None:
        self.seen: list[tuple[str, Any, int]] = []
        self.handles = []
        for name, module in model.named_modules():
            if getattr(module, "weight", None) is not None and "weight" in module._parameters:
                self.handles.append(
                    module.register_forward_hook(
                        lambda m, _a, o, _n=name: self.seen.append(
                            (_n, m, o.numel() if hasattr(o, "numel") else -1)
                        )
                    )
                )

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def found(self, out: Any) -> tuple[str, Any] | None:
        """The last module that ran whose output is as large as the checked output."""
        for name, module, numel in reversed(self.seen):
            if numel == out.numel():
                return name, module
        return None


def _batch(out: Any) -> int:
    return int(out.shape[0]) if out.dim() else 1
