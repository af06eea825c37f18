"""Invariance and equivariance: the model's output under a transform of its inputs.

``assert_invariant(model, inputs, transform)``: ``f(T(x)) == f(x)``;
``assert_equivariant(model, inputs, transform, output_transform)``: ``f(T(x)) == S(f(x))``;
the common cases as conveniences: a permutation along ``dim`` (set models, per-token models),
the memory layout of the inputs (non-contiguous and ``channels_last`` copies), and more padding
(``assert_padding_invariant``: outputs at the real positions are the same with ``extra`` more
padded positions).

These compare values: a reordered sum or another kernel rounds differently, so "the same" means
"within the rounding error of this model at this precision", measured, never a per-dtype
table. Both inputs (before and after the transform, at their own shapes) run again with the
model and the float inputs in float64 (the model's floating parameters and buffers converted in
place, exactly restored afterwards); the largest difference between each run and its float64
rerun is the model's rounding error at this precision, and reruns of the same inputs measure
kernel noise. A transform the model truly respects moves the output by at most the two
rounding errors (the float64 outputs agree to ~1e-16), so a difference counts above
``NOISE_MULTIPLE`` x their sum. A model that cannot run in float64 gets its rounding error
from the change one ulp of its float inputs makes instead, and the message says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from . import _context, _messages, _state
from . import _dependency as dep
from ._inputs import Inputs
from ._records import InvarianceRecord, model_name
from ._results import Invariance

if TYPE_CHECKING:  # pragma: no cover
    from ._types import Model, ModelInputs, OutputSelector

#: A difference counts above this multiple of the measured rounding error and kernel noise.
NOISE_MULTIPLE = 4
#: What the failure says of a cause: a value comparison shows where, not why.
NO_CAUSE = (
    "not determined: a value comparison shows where the output moved, not why; for a "
    "dependency (on positions, padding, other samples) the structural checks name the "
    "module where it starts."
)


# --------------------------------------------------------------------------------------------
# The public checks


def assert_invariant(
    model: Model,
    inputs: ModelInputs,
    transform: Callable[[Any], Any],
    *,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert ``model(transform(inputs)) == model(inputs)`` within the model's measured
    rounding error at this precision.

    Args:
        model: a ``torch.nn.Module`` or any callable taking ``inputs``.
        inputs: a tensor, a tuple/list or a dict of tensors.
        transform: takes ``inputs`` as given (same kind) and returns the transformed inputs.
        output: which tensor of the model's output to compare.
        train: run in train mode (default eval).
        msg: replaces the failure headline; the evidence stays.
    """
    __tracebackhide__ = True
    _callable(transform, "transform")
    comparison = _Comparison(
        "assert_invariant", model, inputs, output, train, msg, describe="the transform"
    )
    return comparison.run([("transform", _applied(transform, inputs), _same, _same)])


def assert_equivariant(
    model: Model,
    inputs: ModelInputs,
    transform: Callable[[Any], Any],
    output_transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert ``model(transform(inputs)) == output_transform(model(inputs))`` within the
    model's measured rounding error at this precision.

    Args:
        model, inputs, output, train, msg: as :func:`assert_invariant`.
        transform: takes ``inputs`` as given and returns the transformed inputs.
        output_transform: takes the checked output tensor and returns what the output of the
            transformed inputs must be (e.g. the same roll, permutation or flip).
    """
    __tracebackhide__ = True
    _callable(transform, "transform")
    _callable(output_transform, "output_transform")
    comparison = _Comparison(
        "assert_equivariant", model, inputs, output, train, msg, describe="the transform"
    )
    variant = ("transform", _applied(transform, inputs), output_transform, _same)
    return comparison.run([variant])


def assert_permutation_invariant(
    model: Model,
    inputs: ModelInputs,
    *,
    dim: int = 1,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that permuting the inputs along ``dim`` (a set's elements) leaves the output
    unchanged, within the model's measured rounding error.

    Every input tensor with ``dim`` of the first one's length is permuted the same way; the
    permutation moves every element (a derangement, drawn from the test's seed).
    """
    __tracebackhide__ = True
    ins = Inputs.of(inputs, model=model)
    perm = _permutation(ins, dim)
    comparison = _Comparison(
        "assert_permutation_invariant",
        model,
        inputs,
        output,
        train,
        msg,
        describe=f"a permutation along dim={dim} ({_perm_text(perm)})",
    )
    return comparison.run([("permutation", _permuted(ins, dim, perm), _same, _same)])


def assert_permutation_equivariant(
    model: Model,
    inputs: ModelInputs,
    *,
    dim: int = 1,
    output_dim: int | None = None,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that permuting the inputs along ``dim`` permutes the output the same way along
    ``output_dim`` (default ``dim``): per-element or per-token models.
    """
    __tracebackhide__ = True
    ins = Inputs.of(inputs, model=model)
    perm = _permutation(ins, dim)
    odim = dim if output_dim is None else output_dim
    if isinstance(odim, bool) or not isinstance(odim, int):
        raise TypeError(f"output_dim={output_dim!r} must be an int (a dimension of the output).")

    def moved(out: torch.Tensor) -> torch.Tensor:
        if not -out.dim() <= odim < out.dim() or out.shape[odim] != len(perm):
            raise ValueError(
                f"the checked output (shape {tuple(out.shape)}) has no dimension of "
                f"{len(perm)} elements at output_dim={odim}; pass the output's dimension "
                "that follows the permuted inputs (or output= to pick another tensor)."
            )
        return out.index_select(odim, perm.to(out.device))

    comparison = _Comparison(
        "assert_permutation_equivariant",
        model,
        inputs,
        output,
        train,
        msg,
        describe=f"a permutation along dim={dim} ({_perm_text(perm)})",
    )
    return comparison.run([("permutation", _permuted(ins, dim, perm), moved, _same)])


def assert_layout_invariant(
    model: Model,
    inputs: ModelInputs,
    *,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that the memory layout of the inputs changes nothing: a non-contiguous copy of
    every float input and, for 4-D (5-D) float inputs, a ``channels_last`` (``_3d``) copy give
    the same output, within the model's measured rounding error.
    """
    __tracebackhide__ = True
    ins = Inputs.of(inputs, model=model)
    variants = [("non-contiguous", ins.map(lambda _label, t: _strided(t)), _same, _same)]
    if any(t.dim() in (4, 5) and t.is_floating_point() for _label, t in ins.tensors()):
        variants.append(
            ("channels_last", ins.map(lambda _label, t: _channels_last(t)), _same, _same)
        )
    comparison = _Comparison(
        "assert_layout_invariant",
        model,
        inputs,
        output,
        train,
        msg,
        describe="a change of memory layout",
    )
    return comparison.run(variants)


def assert_padding_invariant(
    model: Model,
    inputs: ModelInputs,
    *,
    mask: str | int = "attention_mask",
    extra: int = 2,
    side: str = "right",
    time_dim: int = 1,
    pad_value: float = 0,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that ``extra`` more padded positions (on ``side``) change nothing at the real
    positions: per-position outputs there, or the pooled output, within the model's measured
    rounding error at this precision (both shapes rerun in float64).

    Args:
        model, inputs, output, train, msg: as :func:`assert_invariant`; ``inputs`` hold the
            mask (``1``/``True`` at real positions).
        mask: the mask's key in dict inputs, or its index in positional ones.
        extra: how many padded positions to add (``>= 1``).
        side: ``"right"`` (after the sequence) or ``"left"`` (before it).
        time_dim: the dimension of positions; every input with the mask's length there is
            padded, the mask with 0, the others with ``pad_value`` (the pad token id, or 0.0).
    """
    __tracebackhide__ = True
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
        raise ValueError(f"extra={extra!r} must be a positive int (padded positions to add).")
    if side not in ("right", "left"):
        raise ValueError(f"side={side!r} must be 'right' or 'left'.")
    if isinstance(time_dim, bool) or not isinstance(time_dim, int):
        raise TypeError(f"time_dim={time_dim!r} must be an int (the dimension of positions).")
    ins = Inputs.of(inputs, model=model)
    given = _mask_of(ins, mask)
    if given.dim() != 2 or not -2 <= time_dim < 2:
        raise ValueError(
            f"the mask inputs[{mask!r}] has shape {tuple(given.shape)}; it must be 2-D (B, T) "
            f"with positions at time_dim={time_dim}."
        )
    steps = int(given.shape[time_dim])
    real = given != 0  # as the mask: (B, T), or (T, B) for time_dim=0
    if time_dim % 2 == 0:
        real = real.T  # (B, T)

    def pad(_label: str, t: torch.Tensor) -> torch.Tensor:
        if not -t.dim() <= time_dim < t.dim() or t.shape[time_dim] != steps:
            return t.clone()
        shape = list(t.shape)
        shape[time_dim] = extra
        value = 0 if t is given else pad_value
        block = torch.full(shape, value, dtype=t.dtype, device=t.device)
        parts = (t, block) if side == "right" else (block, t)
        return torch.cat(parts, time_dim)

    start = 0 if side == "right" else extra

    def real_only(out: torch.Tensor, length: int, offset: int) -> torch.Tensor:
        if not -out.dim() <= time_dim < out.dim() or out.shape[time_dim] != length:
            return out  # pooled: one output per sample
        out = out.narrow(time_dim, offset, steps)
        shape = [1] * out.dim()
        batch_dim = 1 if time_dim % 2 == 0 else 0  # the mask is (B, T), or (T, B)
        shape[batch_dim], shape[time_dim] = real.shape
        keep = real.reshape(shape) if batch_dim < time_dim % out.dim() else real.T.reshape(shape)
        return torch.where(keep.to(out.device), out, torch.zeros((), dtype=out.dtype))

    comparison = _Comparison(
        "assert_padding_invariant",
        model,
        inputs,
        output,
        train,
        msg,
        describe=f"{extra} more padded position(s) on the {side}",
    )
    variant = (
        f"{side} padding",
        ins.map(pad),
        lambda a: real_only(a, steps, 0),
        lambda b: real_only(b, steps + extra, start),
    )
    return comparison.run([variant])


def _mask_of(ins: Inputs, mask: Any) -> torch.Tensor:
    """The mask tensor among the inputs (a key or an index), or a misuse error."""
    if isinstance(mask, str) and mask in ins.kwargs:
        value = ins.kwargs[mask]
    elif isinstance(mask, int) and not isinstance(mask, bool) and not ins.single:
        if not -len(ins.args) <= mask < len(ins.args):
            raise ValueError(
                f"mask={mask} is no index of the positional inputs ({len(ins.args)} given); "
                "pass the mask's index, e.g. inputs=(ids, mask) and mask=1."
            )
        value = ins.args[mask]
    elif isinstance(mask, str):
        raise ValueError(
            f"mask={mask!r} is not a key of inputs= (keys: {list(ins.kwargs)}); pass the key "
            "that holds the attention mask, or its index for positional inputs."
        )
    else:
        raise TypeError(
            f"mask={mask!r} must be a key of dict inputs (a str) or an index of positional "
            "inputs (an int), with the inputs holding the mask."
        )
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"the mask inputs[{mask!r}] is a {type(value).__name__}; pass a tensor.")
    return value


# --------------------------------------------------------------------------------------------
# Transforms


def _same(out: torch.Tensor) -> torch.Tensor:
    return out


def _callable(fn: Any, name: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{name}={fn!r} must be a callable: {name}=lambda x: x.flip(-1), for example."
        )


def _applied(transform: Callable[[Any], Any], inputs: Any) -> Inputs:
    """The transformed inputs, given a copy (the user's tensors stay as they are)."""
    copy = Inputs.of(inputs).map(lambda _label, t: t.clone())
    given: Any = copy.args[0] if copy.single else copy.args if not copy.kwargs else copy.kwargs
    if isinstance(inputs, list):
        given = list(copy.args)
    try:
        out = transform(given)
    except Exception as e:
        raise ValueError(
            f"transform= raised {type(e).__name__}: {e}; it takes the inputs as given (a "
            "tensor, a tuple or a dict, like inputs=) and returns them transformed."
        ) from e
    return Inputs.of(out, name="transform(inputs)")


def _permutation(ins: Inputs, dim: int) -> torch.Tensor:
    """A permutation of the first input's ``dim`` that moves every element, from the seed."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim={dim!r} must be an int (the dimension of the set's elements).")
    tensors = ins.tensors()
    fits = [t for _label, t in tensors if -t.dim() <= dim < t.dim()]
    if not fits:
        raise ValueError(f"dim={dim} is out of range for every input; pass the set's dimension.")
    n = int(fits[0].shape[dim])
    if n < 2:
        raise ValueError(
            f"dim={dim} has {n} element (shape {tuple(fits[0].shape)}); a permutation needs "
            "at least 2. Pass the dimension of the set's elements."
        )
    ctx = _context.current()
    gen = torch.Generator().manual_seed(0 if ctx is None or ctx.seed is None else ctx.seed)
    while True:
        perm = torch.randperm(n, generator=gen)
        if bool((perm != torch.arange(n)).all()):
            return perm


def _perm_text(perm: torch.Tensor) -> str:
    shown = perm[:8].tolist()
    return f"order {shown}{' ...' if len(perm) > 8 else ''}"


def _permuted(ins: Inputs, dim: int, perm: torch.Tensor) -> Inputs:
    n = len(perm)

    def move(_label: str, t: torch.Tensor) -> torch.Tensor:
        if -t.dim() <= dim < t.dim() and t.shape[dim] == n:
            return t.index_select(dim, perm.to(t.device))
        return t.clone()

    return ins.map(move)


def _strided(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous tensor (every other element of a wider one)."""
    if t.dim() == 0:
        return t.clone()
    wide = torch.empty((*t.shape[:-1], t.shape[-1] * 2), dtype=t.dtype, device=t.device)
    out = wide[..., ::2]
    out.copy_(t)
    return out


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 5 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.clone()


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
class _Comparison:
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
