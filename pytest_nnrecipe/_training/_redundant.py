"""Can a parameter that got no gradient change what the model computes at all?

A parameter whose gradient is zero by construction — an attention key bias (the softmax over
the keys ignores anything added equally to every key's score), a bias right before a
BatchNorm (the batch mean removes it) — cannot learn, and does no harm. One that gets no
gradient but does change the outputs (a detached branch, a path under ``no_grad``, a dead
ReLU) is a bug. :func:`judge` tells them apart by evidence: it perturbs the parameter and
runs the forward again.

Why the comparison is robust: the reruns happen on a float64 copy of the model (float inputs
cast alike; the test's seed before every forward, so dropout draws the same masks). In
float32 a key bias does change the outputs — by rounding: scores of size ``|q . b|`` lose
their low bits, about 1e-7 relative, as much as a faint real effect would; in float64
rounding is about 1e-16. The perturbation is large (``N(0, 1)`` per entry times
``max(1, 3 x rms)`` of the parameter), so a real dependency moves the outputs by far more
than the resolution of the dtype the model trains in (``finfo(dtype).eps`` relative to each
output tensor's largest value, and to the loss); a change below that, and below 4x the
measured rerun noise, is no change. Two independent perturbations must both leave every
output tensor and the loss unchanged. A model that cannot run in float64 leaves the question
open, and the parameter stays a failure.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from .. import _rng
from .._outputs import select

#: What :func:`judge` concludes for a parameter.
REDUNDANT = "redundant"
CHANGES = "changes the output"
UNTESTED = "untested"
#: Independent perturbations per parameter; all must leave the outputs unchanged.
TRIES = 2


def judge(model: Any, problem: Any, names: list[str]) -> tuple[dict[str, str], str | None]:
    """``{name: REDUNDANT | CHANGES | UNTESTED}`` for the parameters ``names`` of ``model``,
    and why they are untested (``None`` when they are not)."""
    if not names:
        return {}, None
    dtypes = [p.dtype for p in model.parameters() if p.is_floating_point()]
    resolution = max((torch.finfo(d).eps for d in dtypes), default=torch.finfo().eps)
    resolution = max(resolution, 1e-12)
    try:
        net = copy.deepcopy(model).double()
        inputs = problem.inputs.map(
            lambda _label, t: t.detach().double() if t.is_floating_point() else t
        )
        targets = problem.targets
        if isinstance(targets, torch.Tensor) and targets.is_floating_point():
            targets = targets.double()
        runner = _Runner(net, problem, inputs, targets)
        with _rng.preserved(), torch.no_grad():
            first = runner()
            base = _Reference(first, _distance(first, runner()), resolution)
            params = dict(net.named_parameters())
            verdicts = {}
            gen = torch.Generator().manual_seed(problem.seed)
            together = [n for n in names if n in params]
            if together and not _moved_by(runner, params, together, gen, base):
                return dict.fromkeys(names, REDUNDANT), None
            for name in names:
                if name not in params:
                    verdicts[name] = UNTESTED
                    continue
                moved = _moved_by(runner, params, [name], gen, base)
                verdicts[name] = CHANGES if moved else REDUNDANT
    except Exception as exc:  # no float64 for this model: leave the question open
        return dict.fromkeys(names, UNTESTED), (
            f"the model does not run in float64 ({type(exc).__name__}: {exc}), where rounding "
            "cannot pass for a real change"
        )
    return verdicts, None


@dataclasses.dataclass
class _Runner:
    net: Any
    problem: Any
    inputs: Any
    targets: Any

    def __call__(self) -> tuple[list[Any], Any]:
        _rng.seed_all(self.problem.seed)
        self.net.train()
        raw = self.problem.fresh(self.inputs).call(self.net)
        tensors = [t.detach().clone() for t in _tensors(raw) if t.is_floating_point()]
        try:
            out = select(raw, self.problem.output, single=True)
            targets = self.targets.clone() if hasattr(self.targets, "clone") else self.targets
            loss = self.problem.loss_fn(out, targets)
            loss = loss.detach().reshape(()) if isinstance(loss, torch.Tensor) else None
        except Exception:
            loss = None
        return tensors, loss


@dataclasses.dataclass(frozen=True)
class _Reference:
    """The unperturbed run, its rerun noise (per output tensor, then the loss) and the
    resolution of the dtype the model trains in."""

    run: tuple[list[Any], Any]
    noise: list[float]
    resolution: float


def _moved_by(
    runner: _Runner, params: dict[str, Any], names: list[str], gen: Any, base: _Reference
) -> bool:
    """Whether perturbing ``names`` together changes any output tensor or the loss."""
    saved = {n: params[n].detach().clone() for n in names}
    try:
        for _ in range(TRIES):
            for n in names:
                p = saved[n]
                rms = float(p.pow(2).mean().sqrt()) if p.numel() else 0.0
                step = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                params[n].copy_(p + step.to(p.device) * max(1.0, 3 * rms))
            if _changed(base, runner()):
                return True
    finally:
        for n in names:
            params[n].copy_(saved[n])
    return False


def _distance(a: tuple[list[Any], Any], b: tuple[list[Any], Any]) -> list[float]:
    """The largest absolute difference per output tensor, then for the loss."""
    out = [
        float((x - y).abs().max()) if x.shape == y.shape and x.numel() else 0.0
        for x, y in zip(a[0], b[0], strict=True)
    ]
    if a[1] is not None and b[1] is not None:
        out.append(float((a[1] - b[1]).abs()))
    else:
        out.append(0.0)
    return out


def _changed(base: _Reference, now: tuple[list[Any], Any]) -> bool:
    ref = base.run
    if len(ref[0]) != len(now[0]) or (ref[1] is None) != (now[1] is None):
        return True
    diffs = _distance(ref, now)
    scales = [float(t.abs().max()) if t.numel() else 0.0 for t in ref[0]]
    scales.append(float(ref[1].abs()) if ref[1] is not None else 0.0)
    for diff, scale, rerun in zip(diffs, scales, base.noise, strict=True):
        if diff != diff or diff > max(base.resolution * scale, 4 * rerun):  # NaN: a change
            return True
    return False


def _tensors(out: Any) -> list[Any]:
    """Every tensor in a model's output (tensors, tuples, lists, dicts, ``ModelOutput``s,
    dataclasses), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        items = list(out.values())
    elif isinstance(out, (tuple, list)):
        items = list(out)
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        items = [getattr(out, f.name) for f in dataclasses.fields(out)]
    else:
        return []
    return [t for item in items for t in _tensors(item)]
