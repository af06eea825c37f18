"""The comparison: run the model on the inputs and each transformed variant, measure its
rounding error at this precision (float64 reruns, or one ulp of the float inputs) and kernel
noise, compare against ``NOISE_MULTIPLE`` x that, record and fail with where and by how much."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .. import _context, _messages, _state
from .. import _dependency as dep
from .._inputs import Inputs
from .._records import InvarianceRecord, model_name
from .._results import Invariance

#: A difference counts above this multiple of the measured rounding error and kernel noise.
NOISE_MULTIPLE = 4
#: What the failure says of a cause: a value comparison shows where, not why.
NO_CAUSE = (
    "not determined: a value comparison shows where the output moved, not why; for a "
    "dependency (on positions, padding, other samples) the structural checks name the "
    "module where it starts."
)


# --------------------------------------------------------------------------------------------
# The comparison


@dataclasses.dataclass(frozen=True)
class Measured:
    """One variant compared: the largest difference, where (in the compared tensor), the two
    values there, how many values exceed the threshold, the threshold and what it comes from."""

    name: str
    largest: float
    where: tuple[int, ...]
    values: tuple[float, float]
    beyond: int
    compared: int
    floor: float
    threshold: float
    scale: float
    reference: str
    #: ``|difference| / threshold`` per compared value (any difference is 1e3 at threshold 0)
    ratios: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ratio(self) -> float:
        if self.threshold > 0:
            return self.largest / self.threshold
        return math.inf if self.largest > 0 else 0.0

    @property
    def passed(self) -> bool:
        return self.largest <= self.threshold and math.isfinite(self.largest)

    def noise_text(self) -> str:
        if self.floor == 0.0:
            return (
                f"Rounding error and kernel noise measured as 0 ({self.reference}: identical), "
                "so any difference counts."
            )
        return (
            f"Threshold {self.threshold:.3g}: {NOISE_MULTIPLE} x the model's measured rounding "
            f"error at this precision, {self.floor:.3g} ({self.reference}; "
            f"{self.floor / (self.scale or 1.0):.2g} of the output's largest magnitude "
            f"{self.scale:.3g})."
        )


#: (name, transformed inputs, what the output of the original inputs must become, what of
#: the output of the transformed inputs is compared)
Variant = tuple[str, Inputs, Callable[[torch.Tensor], torch.Tensor], Callable[[Any], Any]]


@dataclasses.dataclass(frozen=True)
class Comparison:
    check: str
    model: Any
    inputs: Any
    output: Any
    train: bool
    msg: str | None
    describe: str

    def run(self, variants: Sequence[Variant]) -> Invariance:
        __tracebackhide__ = True
        dep.check_model(self.model)
        if not isinstance(self.train, bool):
            raise TypeError(f"train={self.train!r} must be True or False.")
        ins = Inputs.of(self.inputs, model=self.model)
        if not ins.tensors():
            raise ValueError("inputs= holds no tensor; pass what the model takes as input.")
        ctx = _context.current()
        seed = 0 if ctx is None or ctx.seed is None else ctx.seed
        runner = dep.Runner(self.model, self.output, seed)
        modules = dep.modules_of(self.model)
        with (
            _state.untouched(*modules),
            dep.frozen(modules, train=self.train),
            torch.no_grad(),
            dep.no_inference_fastpath(),
        ):
            results = [_measure(runner, modules, ins, v) for v in variants]
        failed = [m for m in results if not m.passed]
        worst = max(results, key=lambda m: m.ratio)
        _context.record(
            InvarianceRecord(
                check=self.check,
                model=model_name(self.model),
                passed=not failed,
                largest=worst.largest,
                threshold=worst.threshold,
                variants={m.name: "same" if m.passed else "differs" for m in results},
                difference=worst.ratios,
                batch=_first_tensor(ins),
            )
        )
        if failed:
            raise _messages.fail(
                self.check,
                _headline(self.describe, failed[0]),
                evidence=_evidence(results, failed[0]),
                cause=NO_CAUSE,
                facts={"mode": "train" if self.train else "eval", "device": _device(ins)},
                msg=self.msg,
            )
        return Invariance(
            largest=worst.largest,
            threshold=worst.threshold,
            noise=worst.floor,
            compared=sum(m.compared for m in results),
            variants=tuple(m.name for m in results),
        )


def _first_tensor(ins: Inputs) -> Any:
    return ins.tensors()[0][1].detach().cpu()


def _device(ins: Inputs) -> torch.device:
    return ins.tensors()[0][1].device


def _measure(
    runner: dep.Runner, modules: list[torch.nn.Module], ins: Inputs, v: Variant
) -> Measured:
    """Compare one variant; the threshold from the rounding error of both runs."""
    name, after, expect, actual = v
    a, b = runner(ins), runner(after)
    noise = max(
        _largest(dep.difference(runner(ins), a)), _largest(dep.difference(runner(after), b))
    )
    rounding, reference = _rounding(runner, modules, (ins, after), (a, b))
    floor = max(noise, rounding)
    lhs, rhs = actual(b), expect(a)
    if not isinstance(lhs, torch.Tensor) or not isinstance(rhs, torch.Tensor):
        raise TypeError("the checked output is not a tensor; pass output= to pick one.")
    if lhs.shape != rhs.shape:
        raise ValueError(
            f"the output of the transformed inputs has shape {tuple(lhs.shape)}, the expected "
            f"one {tuple(rhs.shape)}; the transform (or output_transform) must keep the "
            "output's shape, or output= should pick a tensor that it keeps."
        )
    diff = dep.difference(lhs, rhs)
    threshold = NOISE_MULTIPLE * floor
    flat = int(diff.argmax()) if diff.numel() else 0
    where = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
        if diff.numel()
        else ()
    )
    largest = float(diff.max()) if diff.numel() else 0.0
    values = (float(rhs[where]), float(lhs[where])) if diff.numel() else (0.0, 0.0)
    return Measured(
        name=name,
        largest=largest,
        where=where,
        values=values,
        beyond=int((diff > threshold).sum()),
        compared=diff.numel(),
        floor=floor,
        threshold=threshold,
        scale=max(_largest(a), _largest(b)),
        reference=reference,
        ratios=_ratios(diff, threshold),
    )


#: The largest difference map a record keeps for its picture (values).
PICTURE_VALUES = 100_000


def _ratios(diff: torch.Tensor, threshold: float) -> Any:
    """``diff / threshold`` on the CPU for the picture (``None`` when too large to keep)."""
    if diff.numel() > PICTURE_VALUES or diff.dim() == 0:
        return None
    over = diff / threshold if threshold > 0 else (diff > 0).float() * 1e3
    return over.detach().cpu().numpy()


def _largest(t: torch.Tensor) -> float:
    if not (t.is_floating_point() or t.is_complex()):
        return float(t.abs().max()) if t.numel() else 0.0
    finite = t[torch.isfinite(t)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def _rounding(
    runner: dep.Runner,
    modules: list[torch.nn.Module],
    inputs: tuple[Inputs, Inputs],
    outs: tuple[torch.Tensor, torch.Tensor],
) -> tuple[float, str]:
    """The model's rounding error on both inputs, and how it was measured."""
    if not any(o.is_floating_point() for o in outs):
        return 0.0, "integer outputs"
    try:
        with _wider(modules):
            wide = [runner(x.map(lambda _label, t: _to64(t))) for x in inputs]
        if any(w.shape != o.shape for w, o in zip(wide, outs, strict=True)):
            raise ValueError("the float64 rerun changed the output's shape")
        err = [
            _largest(dep.difference(o.double(), w.double()))
            for o, w in zip(outs, wide, strict=True)
        ]
        return sum(err), "each input rerun in float64"
    except (RuntimeError, TypeError, ValueError):
        pass
    err = []
    for x, o in zip(inputs, outs, strict=True):
        nudged = x.map(
            lambda _label, t: (
                torch.nextafter(t, torch.full_like(t, math.inf)) if t.is_floating_point() else t
            )
        )
        err.append(_largest(dep.difference(runner(nudged), o)))
    return sum(err), "the change one ulp of the float inputs makes (no float64 rerun ran)"


def _to64(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64) if t.is_floating_point() else t


@contextlib.contextmanager
def _wider(modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """The modules' floating parameters and buffers in float64, restored exactly after (the
    same tensors put back, not converted back)."""
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    seen: set[int] = set()
    try:
        for m in modules:
            for t in itertools.chain(m.parameters(), m.buffers()):
                if id(t) in seen or not t.is_floating_point() or t.dtype == torch.float64:
                    continue
                seen.add(id(t))
                saved.append((t, t.data))
                t.data = t.data.to(torch.float64)
        yield
    finally:
        for t, data in saved:
            t.data = data


# --------------------------------------------------------------------------------------------
# The message


def _headline(describe: str, m: Measured) -> str:
    layout = m.name in ("non-contiguous", "channels_last")
    under = f" ({m.name} copy of the inputs)" if layout else ""
    return (
        f"the output changed under {describe}{under} by up to {m.largest:.3g} at index "
        f"{m.where}, {_ratio(m)}."
    )


def _ratio(m: Measured) -> str:
    if m.threshold == 0.0:
        return "where the threshold is 0 (no rounding error measured)"
    return f"{m.ratio:.3g} x the threshold {m.threshold:.3g}"


def _evidence(results: list[Measured], m: Measured) -> list[str]:
    lines = [
        f"Largest difference: {m.largest:.3g} at index {m.where}: expected {m.values[0]:.6g}, "
        f"got {m.values[1]:.6g}",
        f"Values beyond the threshold: {m.beyond} of {m.compared} "
        f"({100.0 * m.beyond / max(m.compared, 1):.1f}%)",
        m.noise_text(),
    ]
    if len(results) > 1:
        lines.append(
            "Variants: "
            + "; ".join(
                f"{r.name}: {'same' if r.passed else 'differs'} ({_ratio(r)})" for r in results
            )
        )
    return lines
