"""What in the model or the targets could explain a training run that fell short.

The training checks see only curves; these notes name setups that make a correct-looking loop
fail, read from the model *before* training and from the targets:

- frozen parameters (``requires_grad=False``): the check trains only the rest, so a frozen
  head or a frozen block limits what a copy can fit;
- weights initialised to one constant (all zeros, all 0.1): every unit of the layer computes
  the same thing and gets the same gradient, so the units never become different (symmetry);
- regression targets far larger than a freshly initialised head's outputs: the optimiser moves
  the weights by about the learning rate per step, so reaching them takes many steps.

Each is a note for the failure's evidence, never a verdict by itself.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _losses

#: Regression targets whose root-mean-square exceeds this are "large" for a fresh head.
LARGE_TARGET = 10.0


def notes(model: Any, spec: _losses.LossSpec | None, targets: Any) -> list[str]:
    """Notes on ``model`` (as before training) and ``targets`` for a failure's evidence."""
    return [*frozen(model), *constant_init(model), *large_targets(spec, targets)]


def frozen(model: Any) -> list[str]:
    params = list(model.named_parameters())
    off = [(n, p) for n, p in params if not p.requires_grad]
    if not off:
        return []
    share = sum(p.numel() for _, p in off) / max(1, sum(p.numel() for _, p in params))
    names = ", ".join(n for n, _ in off[:8]) + (" ..." if len(off) > 8 else "")
    return [
        f"{len(off)} of {len(params)} parameters are frozen (requires_grad=False, {share:.0%} "
        f"of the values) and are not trained: {names}. If one of them should learn (a frozen "
        "head or last block limits what the model can fit), set requires_grad=True."
    ]


def constant_init(model: Any) -> list[str]:
    found = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad or p.dim() < 2 or p.numel() < 2 or p.is_meta:
                continue
            flat = p.detach().reshape(-1)
            if bool((flat == flat[0]).all()):
                found.append(f"{name} (all {float(flat[0]):g})")
    if not found:
        return []
    return [
        "weights initialised to one constant: "
        + ", ".join(found[:6])
        + (" ..." if len(found) > 6 else "")
        + ". Every unit of such a layer computes the same thing and gets the same gradient, "
        "so the units never become different (symmetry is never broken); initialise weights "
        "randomly (the layer's default init, or nn.init.kaiming_normal_), zeros only for "
        "biases or a final layer."
    ]


#: The smallest optimiser eps that float16 parameters tolerate (the issue's advice; float16
#: resolves 1e-3 near 1 and flushes 1e-8 to 0).
FP16_EPS = 1e-4


def fp16_eps(optimizer: Any, params: list[Any]) -> str | None:
    """float16 parameters trained by an optimiser whose ``eps`` float16 cannot hold."""
    half = [p for p in params if p.dtype == torch.float16]
    if not half:
        return None
    eps = [
        g["eps"]
        for g in optimizer.param_groups
        if isinstance(g.get("eps"), float) and g["eps"] < FP16_EPS
    ]
    if not eps:
        return None
    return (
        f"{len(half)} of {len(params)} trained parameters are float16 and "
        f"{type(optimizer).__name__}'s eps={min(eps):g} is below float16's resolution (it "
        "rounds to 0 there), so a gradient whose square underflows divides by zero and the "
        "first update makes the weights non-finite — not a learning rate problem. Keep the "
        "parameters in float32 and run the forward under torch.autocast(dtype=torch.float16) "
        "(mixed precision), or pass an optimizer with eps >= 1e-4"
    )


def large_targets(spec: _losses.LossSpec | None, targets: Any) -> list[str]:
    if (
        spec is None
        or spec.kind not in _losses.REGRESSION_KINDS
        or not isinstance(targets, torch.Tensor)
        or not targets.is_floating_point()
        or targets.numel() == 0
    ):
        return []
    t = targets.detach().to("cpu", torch.float64)
    cols = t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(-1, 1)
    rms = cols.pow(2).mean(0).sqrt()
    if not torch.isfinite(rms).all() or float(rms.max()) <= LARGE_TARGET:
        return []
    low, high = float(rms.min()), float(rms.max())
    spread = (
        f"; per output {low:.3g} to {high:.3g}" if cols.shape[1] > 1 and high > 10 * low else ""
    )
    return [
        f"the targets are large (root-mean-square up to {high:.3g}{spread}) while a freshly "
        "initialised head outputs values around 1 or less; the optimiser moves each weight by "
        "about the learning rate per step, so reaching them takes many steps. Standardise "
        "the targets (subtract the mean, divide by the std, per output) and undo it on the "
        "predictions, or initialise the final bias to the target mean."
    ]
