"""How far above the batch's best constant sampling noise alone can put a correct model.

:func:`_losses.best_constant` fits its constant to the batch (the class prior, positive rates,
means of *these* targets); an untrained model can at best know the population's. The loss of
the population's optimum on the batch sits above the batch's optimum by a random amount that
shrinks as ``1 / n`` — :func:`sampling_allowance` is its ``1 - NOISE_LEVEL`` quantile, which
``assert_init_loss`` adds to ``rtol * expected`` so that a correct model on a small batch
passes whatever the seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from . import _losses

#: Chance that sampling noise alone pushes a correctly initialised model past the allowance.
NOISE_LEVEL = 1e-3


@dataclasses.dataclass(frozen=True)
class Allowance:
    """How far above the batch's optimum sampling noise alone can put a correct model."""

    loss: float  # in the loss's own units (nats for the class and BCE losses)
    what: str  # what the optimum was estimated from, e.g. "a class prior estimated from 32 targets"
    samples: float  # the (effective) number of samples behind the estimate
    #: the allowance before the cap for fewer targets than classes (``None``: not capped); it
    #: shrinks as 1 / n, the capped value does not
    uncapped: float | None = None

    @property
    def scaling(self) -> float:
        """The part of the allowance that shrinks as ``1 / n`` (for the batch size that would
        make the check sharp)."""
        return self.loss if self.uncapped is None else self.uncapped


def sampling_allowance(
    spec: _losses.LossSpec, out_shape: tuple[int, ...], targets: Any, optimum: _losses.Optimum
) -> Allowance | None:
    """The ``1 - NOISE_LEVEL`` quantile of the loss of the *population's* best constant above
    the *batch's* best constant (:func:`best_constant` fits the batch, the model can only know
    the population).

    Asymptotically ``2 n (L(theta*) - L(theta_batch)) ~ sum_j lambda_j chi2(1)`` with
    ``lambda`` the eigenvalues of ``H^-1 Var(psi)`` (per-sample gradient ``psi``, Hessian
    ``H`` of the loss in the constant): for cross-entropy that is the G-test's ``chi2(C - 1)``
    (``C`` outputs; ``n`` the counted targets, Kish's ``(sum w)^2 / sum w^2`` with class
    weights); for BCE one ``chi2(1)`` per output with ``lambda = pw / (pw p + 1 - p)`` (``pw``
    the ``pos_weight``); for regression the plug-in sandwich at the batch's constant (MSE:
    ``lambda = 2 var``, i.e. the mean's ``var / n``; Huber/SmoothL1: clipped residuals; L1: the
    median's ``1 / (2 f)`` with a normal-scale density from the interquartile range). A sum of
    weighted ``chi2(1)`` is matched to ``a chi2(nu)`` (Satterthwaite; exact for the plain
    cross-entropy and single-output cases) and :func:`chi2_quantile` gives its quantile. With fewer (effective) targets than classes (a language
    model's few dozen tokens over its vocabulary) the chi-square approximation breaks down and
    grows without bound as ``n / C`` shrinks; there the allowance is capped by the excess of the
    uniform prediction (all logits 0, about ``log(C / n)``): a batch too small to tell its
    prior from uniform cannot fail a uniform guess. Soft targets vary less than hard labels, so the same
    rule is an upper bound there. ``None`` when there is nothing to allow for.
    """
    reduction = spec.option("reduction", "mean")
    if reduction not in ("mean", "sum") or not out_shape or out_shape[0] == 0:
        return None
    t = _losses._cpu(targets)
    with torch.no_grad():
        if spec.classes:
            found = _class_allowance(spec, out_shape, t)
        elif spec.kind in _losses.PROBABILITY_KINDS:
            found = _probability_allowance(spec, out_shape, t)
        else:
            found = _regression_allowance(spec, out_shape, t, optimum)
        if found is None:
            return None
        value, what, samples, total = found
        uncapped = None
        if spec.classes and samples < out_shape[_losses.class_dim(out_shape)]:
            uniform = torch.zeros_like(optimum.constant)
            if spec.kind == "nll":
                uniform = uniform.log_softmax(0)
            shape = [1] * len(out_shape)
            shape[_losses.class_dim(out_shape)] = -1
            out = uniform.view(shape).expand(out_shape)
            gap = _losses._float(spec.evaluate(out, t)) - optimum.loss
            if gap < value:
                value, uncapped = max(gap, 0.0), value
    if reduction == "sum":
        value *= total
        uncapped = None if uncapped is None else uncapped * total
    if not math.isfinite(value) or value <= 0:
        return None
    return Allowance(value, what, samples, uncapped)


def numeric_allowance(
    rows: Any, hessian: Any | None, *, what: str, samples: float, cap: float | None = None
) -> Allowance | None:
    """The allowance of any loss from its derivatives at the fitted constant (the sandwich).

    ``rows``: the gradient of the batch's loss with respect to each slot's own copy of the
    constant (one row per slot: sample x position), so ``psi_i = n * rows[i]`` and
    ``Var(psi) / n = rows^T rows``; ``hessian``: the loss's Hessian in the constant (``None``
    beyond :data:`._constant.EXACT_HESSIAN` values: then the loss is taken as a
    log-likelihood, ``H = n rows^T rows``, one ``chi2(1)`` per direction). The excess is
    ``sum_j mu_j chi2(1)`` with ``mu`` the eigenvalues of ``H^+ rows^T rows / 2`` (for the
    standard losses exactly the closed forms of :func:`sampling_allowance`), matched to
    ``a chi2(nu)``; ``cap`` (fewer targets than constants) bounds it, as for cross-entropy.
    """
    g = rows.to(torch.float64)
    live = g[g.abs().sum(1) > 0]
    n = live.shape[0]
    if n == 0:
        return None
    s = live.T @ live
    if hessian is None:
        rank = int(torch.linalg.matrix_rank(live - live.mean(0)))
        s1, s2 = rank / (2 * n), rank / (4 * n * n)
    else:
        h = (hessian + hessian.T) / 2
        vals, vecs = torch.linalg.eigh(h)
        keep = vals > 1e-10 * float(vals.abs().max().clamp_min(1e-300))
        inv = (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T
        m = inv @ s / 2
        s1, s2 = float(torch.trace(m)), float(torch.trace(m @ m))
    if not s1 > 0 or not s2 > 0:
        return None
    value = (s2 / s1) * chi2_quantile(s1 * s1 / s2)
    uncapped = None
    if cap is not None and cap < value:
        value, uncapped = cap, value
    if not math.isfinite(value) or value <= 0:
        return None
    return Allowance(value, what, samples, uncapped)


def chi2_quantile(dof: float, level: float = NOISE_LEVEL) -> float:
    """The upper ``level`` quantile of ``chi2(dof)``, ``dof`` need not be an integer.

    ``torch.distributions.Chi2`` has no ``icdf`` (and scipy is no dependency), so it is found
    by bisection on the regularised upper incomplete gamma function
    (``P(chi2(dof) > x) = Q(dof / 2, x / 2)``, ``torch.special.gammaincc``), bracketed by the
    Wilson-Hilferty approximation.
    """
    from statistics import NormalDist

    if dof <= 0:
        return 0.0
    z = NormalDist().inv_cdf(1 - level)
    c = 2 / (9 * dof)
    guess = dof * max(1 - c + z * math.sqrt(c), 0.1) ** 3  # Wilson-Hilferty
    a = torch.tensor(dof / 2, dtype=torch.float64)

    def tail(x: float) -> float:
        return float(torch.special.gammaincc(a, torch.tensor(x / 2, dtype=torch.float64)))

    low, high = guess / 2, guess * 2
    while tail(high) > level:
        high *= 2
    while tail(low) < level and low > 1e-12:
        low /= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if tail(mid) > level else (low, mid)
    return (low + high) / 2


def _weighted_chi2_quantile(lambdas: Any) -> float:
    """Quantile of ``sum_j lambda_j chi2(1)``, matched to ``a chi2(nu)`` (Satterthwaite)."""
    s1, s2 = float(lambdas.sum()), float((lambdas**2).sum())
    if not s1 > 0 or not s2 > 0:
        return 0.0
    return (s2 / s1) * chi2_quantile(s1 * s1 / s2)


def _class_allowance(
    spec: _losses.LossSpec, out_shape: tuple[int, ...], t: Any
) -> tuple[float, str, float, float] | None:
    cdim = _losses.class_dim(out_shape)
    n_classes = out_shape[cdim]
    weight = spec.kwargs.get("weight")
    if t.is_floating_point():  # probability targets: one distribution per sample/position
        n = t.numel() / max(n_classes, 1)
        n_eff, total = n, n
    else:
        y = t[t != spec.option("ignore_index", -100)].reshape(-1)
        n = y.numel()
        if weight is None:
            n_eff, total = float(n), float(n)
        else:
            w = _losses._cpu(weight).to(torch.float64)[y.clamp(0, n_classes - 1)]
            total = float(w.sum())
            n_eff = total**2 / float((w**2).sum()) if total > 0 else 0.0
    if n_classes < 2 or n_eff <= 0:
        return None
    value = chi2_quantile(n_classes - 1) / (2 * n_eff)
    noun = "targets" if not t.is_floating_point() else "target distributions"
    what = f"a class prior estimated from {n:.0f} {noun}"
    if abs(n_eff - n) > 0.05 * n:
        what += f" ({n_eff:.3g} effective, with the class weights)"
    return value, what, n_eff, total


def _probability_allowance(
    spec: _losses.LossSpec, out_shape: tuple[int, ...], t: Any
) -> tuple[float, str, float, float] | None:
    n = out_shape[0]
    tt = t.reshape(n, -1)
    k = tt.shape[1]
    rate = tt.mean(0)
    pw = torch.ones(k, dtype=torch.float64)
    pos_weight = spec.kwargs.get("pos_weight")
    if pos_weight is not None:
        pw = _losses._cpu(pos_weight).to(torch.float64).expand(t.shape[1:]).reshape(-1)
    lam = pw / (pw * rate + 1 - rate)
    weight = spec.kwargs.get("weight")
    if weight is not None:
        w = _losses._cpu(weight).to(torch.float64).expand(t.shape).reshape(n, -1)
        lam = lam * (w**2).mean(0) / w.mean(0).clamp_min(1e-12)
    value = _weighted_chi2_quantile(lam / k) / (2 * n)
    what = (
        f"a positive rate estimated from {n} samples"
        if k == 1
        else f"{k} positive rates estimated from {n} samples each"
    )
    return value, what, float(n), float(t.numel())


def _regression_allowance(
    spec: _losses.LossSpec, out_shape: tuple[int, ...], t: Any, optimum: _losses.Optimum
) -> tuple[float, str, float, float] | None:
    n = out_shape[0]
    if n < 2:
        return None
    x = (optimum.constant.unsqueeze(0).expand(t.shape) - t).reshape(n, -1)  # residuals
    k = x.shape[1]
    q = torch.quantile(x, torch.tensor([0.25, 0.75], dtype=torch.float64), dim=0)
    sigma = (q[1] - q[0]) / 1.349  # normal-consistent scale from the interquartile range
    sigma = torch.where(sigma > 0, sigma, x.std(0))
    density = 1 / (sigma * math.sqrt(2 * math.pi)).clamp_min(1e-300)  # at the centre
    if spec.kind == "mse":
        psi, h = 2 * x, torch.full((k,), 2.0, dtype=torch.float64)
    elif spec.kind == "l1":
        psi, h = x.sign(), 2 * density
    else:
        width = float(spec.option("delta" if spec.kind == "huber" else "beta", 1.0))
        if width <= 0:  # SmoothL1 with beta=0 is L1
            psi, h = x.sign(), 2 * density
        elif spec.kind == "huber":
            psi = x.clamp(-width, width)
            inside = (x.abs() < width).to(torch.float64).mean(0)
            h = torch.where(inside > 0, inside, 2 * width * density)
        else:
            psi = (x / width).clamp(-1, 1)
            inside = (x.abs() < width).to(torch.float64).mean(0) / width
            h = torch.where(inside > 0, inside, 2 * density)
    lam = (psi**2).mean(0) / h.clamp_min(1e-300) / k
    value = _weighted_chi2_quantile(lam) / (2 * n)
    what = (
        f"a {'mean' if spec.kind == 'mse' else 'constant'} estimated from {n} samples"
        if k == 1
        else f"{k} {'means' if spec.kind == 'mse' else 'constants'} estimated from {n} samples"
    )
    return value, what, float(n), float(t.numel())
