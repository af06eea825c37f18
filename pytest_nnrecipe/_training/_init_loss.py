"""``assert_init_loss``: the recipe's "verify loss @ init" and "init well".

The loss of the untrained model on one batch must match the loss of the best
input-independent prediction for these targets (``_losses.best_constant``): ``log(C)`` for
balanced classes, the prior's entropy for imbalanced ones, the targets' variance for MSE, and
so on. The forward runs in train mode under ``torch.no_grad`` — what the first training step
sees — on the model itself, which :func:`_state.untouched` puts back afterwards. (Eval mode is
not cleaner at init: a BatchNorm's running statistics are still 0 / 1, so it would not
normalise; dropout adds only zero-mean noise, measured at most +7% with ``Dropout(0.5)``.)

Tolerance (``rtol``): how far above the optimum the measured loss may be, relative to it.
A default-initialised PyTorch head gives small but non-zero outputs, so its loss sits a little
above the optimum. Classification with default init (cross-entropy, BCE; MLP, CNN, embedding
LM; 20 seeds) measured 0-15% above, so the default there is ``rtol=0.25``; a wrong init lands
far above (final weights x20: x3 and more; a 1:10 imbalanced binary task with a zero bias:
+60% to +155%). A regression head adds its own output variance (100 seeds, batch of 64): MLP
heads 5-70% of the targets' variance, a bare ``nn.Linear`` on raw features up to ~130% (p95
80-95%), so regression losses (MSE, L1, Huber, SmoothL1) default to ``rtol=1.0`` (the loss
may be at most twice the optimum); a missing bias on targets around 50 with std 1 is x2500.
When the optimum is derived from the targets, the sampling-noise allowance of
:mod:`._sampling` (the 99.9% quantile of how far the population's best constant sits above the
batch's, e.g. ``chi2(C - 1) / (2 n)`` nats for cross-entropy) is added to ``rtol * expected``:
the batch's prior is only an estimate of the one the model can know.
A loss more than ``rtol`` *below* the optimum (only checked when ``rtol < 1``) fails too: an
untrained model cannot beat every constant unless it already knows the labels (labels
leaking into the inputs, or trained weights — then this check does not apply).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .. import _context, _messages, _rng
from .._records import TrainingRecord, model_name
from .._results import InitLoss
from .._state import untouched
from . import _fit, _losses, _sampling

if TYPE_CHECKING:  # pragma: no cover
    from .._types import LossFunction, ModelInputs, OutputSelector

CHECK = "assert_init_loss"
#: Default ``rtol`` for classification losses and for losses given with ``expected=``.
DEFAULT_RTOL = 0.25
#: Default ``rtol`` for regression losses (MSE, L1, Huber, SmoothL1).
REGRESSION_RTOL = 1.0


def assert_init_loss(
    model: torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    expected: float | None = None,
    rtol: float | None = None,
    output: OutputSelector = None,
    msg: str | None = None,
) -> InitLoss:
    """Check that the untrained model's loss is the best input-independent loss.

    ``expected`` overrides the derived optimum (required for a loss that is not one of the
    standard ones). ``rtol``: allowed relative distance from it; default 0.25 for
    classification losses, 1.0 for regression losses (see the module docstring).
    ``output`` picks the tensor of a structured model output; ``loss_fn`` receives that tensor.
    """
    __tracebackhide__ = True
    problem = _fit.prepare(CHECK, model, inputs, targets, loss_fn, output)
    if rtol is None:
        regression = problem.spec is not None and problem.spec.kind in _losses.REGRESSION_KINDS
        rtol = REGRESSION_RTOL if regression else DEFAULT_RTOL
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0:
        raise ValueError(f"rtol={rtol!r} must be a positive number, e.g. rtol=0.25.")
    if expected is None and problem.spec is None:
        raise ValueError(
            f"loss_fn={_describe(loss_fn)} is not a loss whose best constant prediction "
            "assert_init_loss can derive (it knows CrossEntropyLoss, NLLLoss, "
            "BCEWithLogitsLoss, BCELoss, MSELoss, L1Loss, HuberLoss, SmoothL1Loss and their "
            "functional forms); pass expected=, the loss of the best input-independent "
            "prediction for these targets, e.g. expected=math.log(n_classes)."
        )
    with untouched(model), _rng.preserved(), torch.no_grad():
        _rng.seed_all(problem.seed)
        model.train()
        fed = _fit._capture(model)
        try:
            loss, out = _fit.loss_of(problem, problem.inputs.call(model), first=True)
        finally:
            fed.remove()
    measured = float(loss)
    first_layer = _fit.first_layer_weight(model)  # at init: untouched() restored it
    optimum = allowance = None
    if expected is None and problem.spec is not None:
        optimum = _losses.best_constant(problem.spec, tuple(out.shape), targets)
        expected = optimum.loss
        allowance = _sampling.sampling_allowance(problem.spec, tuple(out.shape), targets, optimum)
    name = problem.spec.name if problem.spec is not None else _describe(loss_fn)
    expected = float(expected)  # type: ignore[arg-type]
    scale = max(abs(expected), 1e-12)
    excess = (measured - expected) / scale
    noise = allowance.loss if allowance is not None else 0.0
    high_ok = measured - expected <= rtol * scale + noise
    passed = high_ok and (rtol >= 1 or excess >= -rtol)
    record = TrainingRecord(
        check=CHECK,
        model=model_name(model),
        passed=passed,
        losses=[measured],
        target=expected,
        steps=0,
        rtol=rtol,
        noise_allowance=noise,
        predictions=[out.detach()[: _fit.SHOWN_SAMPLES].cpu()],
        prediction_steps=[0],
        targets=_fit.shown_targets(problem),
        batch=fed.batch,
        mode="train",
        first_layer_weight=first_layer,
    )
    _context.record(record)
    if passed:
        return InitLoss(measured, expected, excess, rtol, name, noise)
    raise _failure(problem, out, measured, expected, excess, rtol, name, optimum, allowance, msg)


def _failure(
    problem: _fit.Problem,
    out: Any,
    measured: float,
    expected: float,
    excess: float,
    rtol: float,
    name: str,
    optimum: _losses.Optimum | None,
    allowance: _sampling.Allowance | None,
    msg: str | None,
) -> AssertionError:
    spec = problem.spec
    high = excess > 0
    if excess > 2:
        far = f"{measured / expected:.3g} times that"
    else:
        far = f"{abs(excess):.0%} {'above' if high else 'below'} it"
    if high:
        allowed = f"{rtol:.0%}"
        if allowance is not None:
            unit = "" if spec is not None and spec.kind in _losses.REGRESSION_KINDS else " nats"
            allowed += f" + {allowance.loss:.2g}{unit} for {allowance.what}"
    else:
        allowed = f"within {rtol:.0%}"
    headline = (
        f"the loss at init is {measured:.4g}, expected {expected:.4g} (the loss of the best "
        f"input-independent prediction for these targets): {far} (allowed: {allowed})."
    )
    evidence = [f"loss_fn: {name}; output shape {tuple(out.shape)}; mode=train, no update."]
    if high and allowance is not None:
        evidence.append(
            f"The optimum is fitted to this batch, so a correct model sits above it by "
            f"chance; {allowance.loss:.2g} covers that for {allowance.what} (sampling noise "
            f"exceeds it with p = {_sampling.NOISE_LEVEL:g}) and shrinks as 1/n: a larger batch "
            "sharpens the check; pass expected= if you know the true optimum."
        )
    fixes: list[str] = []
    if high:
        evidence.extend(_losses.output_symptoms(spec, out, problem.targets, trained=False))
        scale_fix = _scale_fix(spec, out, problem.targets)
        if scale_fix:
            fixes.append(scale_fix)
        if spec is not None and optimum is not None:
            fixes.append(_losses.init_fix(spec, optimum))
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
    else:
        symptoms = _losses.output_symptoms(spec, out, problem.targets, trained=False)
        floor = (
            _losses.lowest_achievable(spec, tuple(out.shape), problem.targets)
            if spec is not None
            else None
        )
        if floor is not None and measured < floor - 1e-6 * max(1.0, abs(floor)):
            evidence.append(
                f"{measured:.4g} is below {floor:.4g}, the lowest loss any valid prediction "
                f"can reach for these targets: what the model returns is not what {name} "
                "expects (probabilities where it wants log-probabilities, or the wrong "
                "output)."
            )
        evidence.extend(symptoms)
        if symptoms or (floor is not None and measured < floor - 1e-6 * max(1.0, abs(floor))):
            cause = (
                "the head and the loss do not fit together: the model's outputs are not in "
                f"the form {name} expects, so the loss is not a valid loss at all."
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
        picture=_picture(spec, out, problem.targets, optimum),
    )


def _scale_fix(spec: _losses.LossSpec | None, out: Any, targets: Any) -> str | None:
    """'Outputs too large' when the spread of the outputs explains the excess."""
    o = out.detach().to("cpu", torch.float64)
    if spec is None or o.numel() < 2 or not torch.isfinite(o).all():
        return None
    if spec.classes and o.dim() >= 2:
        spread = float(o.std(1).mean()) if o.shape[1] > 1 else 0.0
        if spread > 1.0:
            return (
                f"the logits are too large at init: their std across classes is {spread:.3g} "
                "(a default-initialised head gives about 0.1-0.5); scale the final layer's "
                "weights down (e.g. x0.01, or zero them)"
            )
        return None
    if spec.kind == "bce_logits":
        spread = float(o.std())
        if spread > 1.0:
            return (
                f"the logits are too large at init: their std is {spread:.3g}; scale the "
                "final layer's weights down (e.g. x0.01, or zero them)"
            )
        return None
    if spec.kind in _losses.REGRESSION_KINDS and isinstance(targets, torch.Tensor):
        t = targets.detach().to("cpu", torch.float64)
        o_std, t_std = float(o.std(0).mean()) if o.shape[0] > 1 else 0.0, float(t.std())
        if o_std > max(t_std, 1e-12):
            return (
                f"the predictions spread more than the targets at init (std across samples "
                f"{o_std:.3g} vs the targets' {t_std:.3g}); scale the final layer's weights "
                "down (e.g. x0.01)"
            )
    return None


def _picture(
    spec: _losses.LossSpec | None, out: Any, targets: Any, optimum: _losses.Optimum | None
) -> str | None:
    if spec is None or optimum is None:
        return None
    o = out.detach().to("cpu", torch.float64)
    prior = optimum.probabilities
    if spec.classes and o.dim() >= 2 and prior is not None and prior.numel() <= 20:
        cdim = _losses.class_dim(tuple(o.shape))
        logp = o if spec.kind == "nll" else o.log_softmax(cdim)
        predicted = logp.exp().movedim(cdim, -1).reshape(-1, o.shape[cdim]).mean(0)
        rows = [
            f"{c:>5} {float(p):>7.3f} {float(q):>9.3f}"
            for c, (p, q) in enumerate(zip(prior, predicted, strict=True))
        ]
        return "class   prior  predicted (mean p at init)\n" + "\n".join(rows)
    if spec.kind in _losses.REGRESSION_KINDS and isinstance(targets, torch.Tensor):
        t = targets.detach().to("cpu", torch.float64)
        return (
            f"targets:     mean {float(t.mean()):.4g}, std {float(t.std()):.4g}, "
            f"range [{float(t.min()):.4g}, {float(t.max()):.4g}]\n"
            f"predictions: mean {float(o.mean()):.4g}, std {float(o.std()):.4g}, "
            f"range [{float(o.min()):.4g}, {float(o.max()):.4g}]"
        )
    if spec.kind in _losses.PROBABILITY_KINDS and isinstance(targets, torch.Tensor):
        p = o.sigmoid() if spec.kind == "bce_logits" else o
        return (
            f"positive rate of the targets: {_losses.values(optimum.probabilities)}\n"
            f"mean predicted p at init:     {_losses.values(p.mean(0))}"
        )
    return None


def _describe(loss_fn: Any) -> str:
    return str(getattr(loss_fn, "__qualname__", None) or type(loss_fn).__name__)
