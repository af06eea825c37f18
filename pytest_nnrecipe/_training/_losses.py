"""The standard losses: which one ``loss_fn`` is, its best constant prediction, its floor.

``recognise(loss_fn)`` maps an ``nn`` loss module (``CrossEntropyLoss``, ``NLLLoss``,
``BCEWithLogitsLoss``, ``BCELoss``, ``MSELoss``, ``L1Loss``, ``HuberLoss``, ``SmoothL1Loss``),
their functional forms, or a ``functools.partial`` of those, to a :class:`LossSpec`; anything
else is unknown here (``None``): ``_constant`` then recognises it by the values it computes,
or finds its best constant numerically. These closed forms are the fast path.

For a recognised loss and the given targets:

- :func:`best_constant` is the best *input-independent* prediction and its loss — what a
  well-initialised model should measure before training. Class losses get one logit per class
  (shared over the batch and any positions); the other losses one value per output element,
  shared over the batch. Closed forms start the search (cross-entropy: the log of the weighted,
  ``ignore_index``-filtered, smoothed class prior; BCE: the logit of the positive rate; MSE:
  the mean; L1: the median) and a few L-BFGS steps finish it where no closed form is exact
  (label smoothing with class weights, ``pos_weight``, Huber). Every one of these losses is
  convex in the constant, so this is the optimum.
- :func:`lowest_achievable` is the loss of a perfect per-sample prediction: 0 for hard labels
  and regression, the targets' entropy for soft or smoothed labels.

Everything is computed in float64 on the CPU from the targets alone.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import torch

CLASS_KINDS = ("cross_entropy", "nll")
PROBABILITY_KINDS = ("bce_logits", "bce")
REGRESSION_KINDS = ("mse", "l1", "huber", "smooth_l1")

# kind -> (nn module class name, functional name, attributes the module keeps)
_TABLE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cross_entropy": (
        "CrossEntropyLoss",
        "cross_entropy",
        ("weight", "ignore_index", "reduction", "label_smoothing"),
    ),
    "nll": ("NLLLoss", "nll_loss", ("weight", "ignore_index", "reduction")),
    "bce_logits": (
        "BCEWithLogitsLoss",
        "binary_cross_entropy_with_logits",
        ("weight", "pos_weight", "reduction"),
    ),
    "bce": ("BCELoss", "binary_cross_entropy", ("weight", "reduction")),
    "mse": ("MSELoss", "mse_loss", ("reduction",)),
    "l1": ("L1Loss", "l1_loss", ("reduction",)),
    "huber": ("HuberLoss", "huber_loss", ("reduction", "delta")),
    "smooth_l1": ("SmoothL1Loss", "smooth_l1_loss", ("reduction", "beta")),
}


def functional_name(kind: str) -> str:
    """The name of the ``torch.nn.functional`` form of a loss ``kind`` (``"mse"`` ->
    ``"mse_loss"``)."""
    return _TABLE[kind][1]


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """A recognised loss: its kind, a readable name and the functional form's keywords."""

    kind: str
    name: str
    kwargs: dict[str, Any]

    @property
    def classes(self) -> bool:
        return self.kind in CLASS_KINDS

    @property
    def elementwise(self) -> bool:
        return self.kind not in CLASS_KINDS

    def option(self, key: str, default: Any) -> Any:
        value = self.kwargs.get(key)
        return default if value is None else value

    def evaluate(self, output: Any, targets: Any) -> Any:
        """The loss of ``output`` for ``targets`` (tensor keywords follow ``output``)."""
        fn = getattr(torch.nn.functional, _TABLE[self.kind][1])
        kw = {
            k: v.to(device=output.device, dtype=output.dtype) if isinstance(v, torch.Tensor) else v
            for k, v in self.kwargs.items()
        }
        return fn(output, targets, **kw)


def recognise(loss_fn: Any) -> LossSpec | None:
    """The :class:`LossSpec` of ``loss_fn``, or ``None`` for a loss this module does not know."""
    F = torch.nn.functional
    if isinstance(loss_fn, functools.partial):
        if loss_fn.args:
            return None
        for kind, (_cls, fname, _attrs) in _TABLE.items():
            if loss_fn.func is getattr(F, fname):
                kw = dict(loss_fn.keywords)
                return LossSpec(kind, _name(f"F.{fname}", kw), kw)
        return None
    for kind, (cls_name, fname, attrs) in _TABLE.items():
        if loss_fn is getattr(F, fname):
            return LossSpec(kind, f"F.{fname}", {})
        cls = getattr(torch.nn, cls_name)
        if isinstance(loss_fn, cls):
            if type(loss_fn).forward is not cls.forward:  # a subclass with its own maths
                return None
            kw = {a: getattr(loss_fn, a) for a in attrs if getattr(loss_fn, a, None) is not None}
            shown = {k: v for k, v in kw.items() if not _is_default(k, v)}
            return LossSpec(kind, _name(cls_name, shown), kw)
    return None


@dataclasses.dataclass(frozen=True)
class Optimum:
    """The best input-independent prediction: its loss and the constant that reaches it."""

    loss: float
    constant: Any  # float64 CPU tensor: class logits (C,) or one value per output element
    probabilities: Any | None  # class prior (C,) or positive rate per output, when meaningful


def best_constant(spec: LossSpec, out_shape: tuple[int, ...], targets: Any) -> Optimum:
    """The lowest loss any input-independent prediction reaches on ``targets``."""
    t = _cpu(targets)
    with torch.no_grad():
        if spec.classes:
            cdim = class_dim(out_shape)
            n_classes = out_shape[cdim]
            theta0 = _class_start(spec, t, n_classes, cdim)

            def to_output(theta: Any) -> Any:
                logits = theta if spec.kind == "cross_entropy" else theta.log_softmax(0)
                view = [1] * len(out_shape)
                view[cdim] = n_classes
                return logits.view(view).expand(out_shape)

        else:
            theta0 = _elementwise_start(spec, t)

            def to_output(theta: Any) -> Any:
                value = theta.sigmoid() if spec.kind == "bce" else theta
                return value.unsqueeze(0).expand(out_shape)

    def loss(theta: Any) -> Any:
        return spec.evaluate(to_output(theta), t)

    exact = spec.kind in ("mse", "l1")
    theta, value = (theta0, _float(loss(theta0))) if exact else minimise(loss, theta0, max_iter=60)
    probs = None
    if spec.classes:
        probs = theta.softmax(0)
    elif spec.kind in PROBABILITY_KINDS:
        probs = theta.sigmoid()
    return Optimum(value, theta, probs)


def lowest_achievable(spec: LossSpec, out_shape: tuple[int, ...], targets: Any) -> float:
    """The loss of the perfect per-sample prediction (0 for hard labels and regression)."""
    t = _cpu(targets)
    eps = float(spec.option("label_smoothing", 0.0))
    with torch.no_grad():
        if spec.classes:
            cdim = class_dim(out_shape)
            n = out_shape[cdim]
            if t.is_floating_point():
                dist = t
            else:
                dist = torch.nn.functional.one_hot(t.clamp(0, n - 1), n).movedim(-1, cdim)
                dist = dist.to(torch.float64)
            dist = (1 - eps) * dist + eps / n
            ideal = dist.clamp_min(1e-12).log()
        elif spec.kind == "bce_logits":
            pos_weight = spec.kwargs.get("pos_weight")
            p = t
            if pos_weight is not None:
                pw = _cpu(pos_weight).to(torch.float64)
                p = pw * t / (pw * t + 1 - t)
            ideal = p.clamp(1e-7, 1 - 1e-7).logit()
        else:
            ideal = t
        return max(_float(spec.evaluate(ideal.to(torch.float64), t)), 0.0)


def class_dim(out_shape: tuple[int, ...]) -> int:
    """Where the classes are in what the loss receives: (C,), (B, C) or (B, C, d1, ...)."""
    return 0 if len(out_shape) == 1 else 1


def init_fix(spec: LossSpec, optimum: Optimum, *, prior: Any | None = None) -> str:
    """How to initialise the final layer so that the loss starts at the optimum. ``prior``:
    smoothed class probabilities (positive rates) to state instead of the batch's own, for a
    class that never occurs in it (its log would be -27)."""
    theta = optimum.constant
    if spec.classes:
        if prior is not None:
            return (
                "set the final layer's bias to the log prior, bias = log p = "
                f"{values(prior.log())} (class prior p = {values(prior)}, smoothed as "
                "(count + 1/2) / (n + C/2): a class absent from this batch still occurs)"
            )
        bias = theta.log_softmax(0)
        return (
            "set the final layer's bias to the log prior, bias = log p = "
            f"{values(bias)} (class prior p = {values(optimum.probabilities)})"
        )
    if spec.kind in PROBABILITY_KINDS:
        if prior is not None:
            return (
                "set the final layer's bias to the log-odds of the positive rate, "
                f"bias = log(p / (1 - p)) = {values(prior.logit())} (positive rate p = "
                f"{values(prior)}, smoothed as (positives + 1/2) / (n + 1): a rate of 0 or 1 "
                "in this batch is not the population's)"
            )
        return (
            "set the final layer's bias to the log-odds of the positive rate, "
            f"bias = log(p / (1 - p)) = {values(theta)} (positive rate p = "
            f"{values(optimum.probabilities)})"
        )
    what = {"mse": "target mean", "l1": "target median"}.get(spec.kind, "best constant")
    return f"set the final layer's bias to the {what}, bias = {values(theta)}"


def output_symptoms(
    spec: LossSpec | None, output: Any, targets: Any, *, trained: bool = True
) -> list[str]:
    """Telltale signs in the outputs that the head and the loss do not fit together.

    Range limits (a sigmoid before BCE-with-logits, a ReLU on a regression head) only show
    after training (``trained``): untrained outputs are small and inside any range.
    """
    if spec is None or not isinstance(output, torch.Tensor) or output.numel() == 0:
        return []
    out = output.detach().to("cpu", torch.float64)
    if not torch.isfinite(out).all():
        return []
    found: list[str] = []
    if spec.classes and out.dim() >= 2:
        sums = out.exp().sum(1) if spec.kind == "nll" else out.sum(1)
        if (
            spec.kind == "cross_entropy"
            and out.min() >= 0
            and torch.allclose(sums, torch.ones_like(sums), atol=1e-3)
        ):
            found.append(
                "the outputs are already probabilities (each row sums to 1): "
                f"{spec.name} applies log_softmax itself, so a softmax before it squashes "
                "the logits into [0, 1] (double softmax); the loss can never get near 0. "
                "Return raw logits."
            )
        if spec.kind == "nll" and not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            found.append(
                f"{spec.name} expects log-probabilities, but exp(output) sums to "
                f"{float(sums.mean()):.3g} per row, not 1: add log_softmax to the head, or use "
                "CrossEntropyLoss on the logits."
            )
    elif not trained:
        pass
    elif spec.kind == "bce_logits" and out.numel() >= 4 and out.min() >= 0 and out.max() <= 1:
        found.append(
            f"every output lies in [0, 1]: {spec.name} applies the sigmoid itself, so a "
            "sigmoid before it (double sigmoid) keeps probabilities within 0.5..0.73. "
            "Return raw logits."
        )
    elif spec.kind in REGRESSION_KINDS and isinstance(targets, torch.Tensor):
        t = targets.detach().to("cpu", torch.float64)
        for low, high, act in ((0.0, math.inf, "ReLU/softplus"), (-1.0, 1.0, "tanh")):
            outside = (t < low - 1e-6) | (t > high + 1e-6)
            if outside.any() and out.min() >= low - 1e-6 and out.max() <= high + 1e-6:
                rng = f"[{low:g}, {high:g}]" if math.isfinite(high) else f"[{low:g}, inf)"
                found.append(
                    f"every prediction lies in {rng} (min {float(out.min()):.4g}, max "
                    f"{float(out.max()):.4g}) but {int(outside.sum())} of {t.numel()} targets "
                    f"lie outside it (min {float(t.min()):.4g}, max {float(t.max()):.4g}): an "
                    f"output activation ({act}) limits the regression head. Remove it."
                )
                break
    return found


def label_vs_prediction(
    spec: LossSpec | None, output: Any, targets: Any, *, limit: int = 8
) -> list[str]:
    """The label next to the prediction for up to ``limit`` samples, worst fit first."""
    if not isinstance(output, torch.Tensor) or output.dim() == 0:
        return []
    out = output.detach().to("cpu", torch.float64)
    tgt = targets.detach().cpu() if isinstance(targets, torch.Tensor) else None
    if tgt is None or tgt.dim() == 0 or tgt.shape[0] != out.shape[0]:
        return [f"sample {i}: prediction {_short(out[i])}" for i in range(min(limit, len(out)))]
    rows: list[tuple[float, str]] = []
    for i in range(out.shape[0]):
        if spec is not None and spec.classes and out.dim() >= 2:
            logp = out[i] if spec.kind == "nll" else out[i].log_softmax(0)
            pred = logp.argmax(0)
            if tgt.is_floating_point():
                y = tgt[i].argmax(0)
            else:
                y = tgt[i]
            picked = logp.gather(0, y.clamp(0, logp.shape[0] - 1).unsqueeze(0))[0]
            rows.append(
                (
                    -float(picked.mean()),
                    f"sample {i}: label {_short(y)}  predicted {_short(pred)}  "
                    f"p(label) {_short(picked.exp())}",
                )
            )
            continue
        probs = spec is not None and spec.kind in PROBABILITY_KINDS
        shown = out[i].sigmoid() if spec is not None and spec.kind == "bce_logits" else out[i]
        label = tgt[i].to(torch.float64)
        err = float((shown - label).abs().mean()) if shown.shape == label.shape else 0.0
        word = "p" if probs else "prediction"
        rows.append((err, f"sample {i}: label {_short(tgt[i])}  {word} {_short(shown)}"))
    order = sorted(range(len(rows)), key=lambda k: -rows[k][0])[:limit]
    return [rows[k][1] for k in sorted(order, key=lambda k: -rows[k][0])]


def values(t: Any, *, limit: int = 8) -> str:
    """A short readable list of a tensor's values (one number when they are all equal)."""
    flat = [float(v) for v in t.detach().reshape(-1).tolist()]
    if not flat:
        return "[]"
    if max(flat) - min(flat) <= 1e-9 * max(1.0, abs(flat[0])):
        return f"{flat[0]:.4g}" + (f" (all {len(flat)})" if len(flat) > 1 else "")
    body = ", ".join(f"{v:.4g}" for v in flat[:limit])
    return f"[{body}{', ...' if len(flat) > limit else ''}]"


def _short(t: Any) -> str:
    if t.dim() == 0:
        v = t.item()
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return values(t, limit=4)


def _class_start(spec: LossSpec, t: Any, n: int, cdim: int) -> Any:
    weight = spec.kwargs.get("weight")
    w = torch.ones(n, dtype=torch.float64) if weight is None else _cpu(weight).to(torch.float64)
    if t.is_floating_point():
        mass = t.movedim(cdim, -1).reshape(-1, n).sum(0)
    else:
        keep = t[t != spec.option("ignore_index", -100)]
        mass = torch.bincount(keep.reshape(-1).clamp(0, n - 1), minlength=n).to(torch.float64)
    mass = mass * w
    p = mass / mass.sum() if mass.sum() > 0 else torch.full((n,), 1.0 / n, dtype=torch.float64)
    eps = float(spec.option("label_smoothing", 0.0))
    p = (1 - eps) * p + eps / n
    return p.clamp_min(1e-12).log()


def _elementwise_start(spec: LossSpec, t: Any) -> Any:
    if spec.kind in PROBABILITY_KINDS:
        return t.mean(0).clamp(1e-7, 1 - 1e-7).logit()
    if spec.kind == "mse":
        return t.mean(0)
    return t.median(0).values


def minimise(
    objective: Callable[[Any], Any], theta0: Any, *, max_iter: int = 100
) -> tuple[Any, float]:
    """L-BFGS from ``theta0``; a point where the loss raises or is not finite counts as far
    worse than the start (so the line search steps back); never worse than the start."""
    with torch.no_grad():
        start = float(objective(theta0))
    penalty = abs(start) * 1e3 + 1e3 if math.isfinite(start) else 1e30
    theta = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Any:
        opt.zero_grad()
        try:
            value = objective(theta)
            if not torch.isfinite(value):
                raise FloatingPointError
            value.backward()
        except Exception:
            theta.grad = torch.zeros_like(theta)
            return torch.tensor(penalty, dtype=theta.dtype)
        if theta.grad is None:
            theta.grad = torch.zeros_like(theta)
        return value.detach()

    with torch.enable_grad():
        try:
            opt.step(closure)
        except Exception:
            return theta0, start
    theta = theta.detach()
    try:
        with torch.no_grad():
            end = float(objective(theta))
    except Exception:
        return theta0, start
    finite = math.isfinite(end) and bool(torch.isfinite(theta).all())
    if finite and (end <= start or not math.isfinite(start)):
        return theta, end
    return theta0, start


def _cpu(t: Any) -> Any:
    t = t.detach().cpu()
    return t.to(torch.float64) if t.is_floating_point() else t


def _float(t: Any) -> float:
    return float(t.detach())


def _is_default(key: str, value: Any) -> bool:
    defaults = {
        "reduction": "mean",
        "ignore_index": -100,
        "label_smoothing": 0.0,
        "delta": 1.0,
        "beta": 1.0,
    }
    return key in defaults and value == defaults[key]


def _name(head: str, kw: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        if hasattr(v, "tolist"):
            return values(v, limit=4)
        return repr(v)

    inner = ", ".join(f"{k}={show(v)}" for k, v in kw.items())
    return f"{head}({inner})"
