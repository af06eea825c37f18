"""The engine behind the structural checks: which outputs depend on which inputs.

Both structural checks ask one question along one axis (samples for batch mixing, steps for
causality): does output unit ``i`` depend on input unit ``j``? Two ways to answer it:

* **by gradient** (``method="grad"``): backprop a random cotangent from a set of output units
  and see which input units receive a non-zero gradient. Exact: with no computational path
  the gradient is exactly zero, whatever the scale of the activations. A non-finite gradient
  decides nothing and is reported as *inconclusive*. Integer inputs (token ids) get their
  gradient at the output of the ``nn.Embedding`` modules that read them (forward hooks).
* **by perturbation** (``method="perturb"``): change the inputs of some units, run the model
  again at the same batch shape, and see which untouched output units changed. Same shapes
  mean the same kernels, so an independent output comes out bitwise identical; a tolerance
  (:func:`tolerance`) absorbs non-deterministic kernels only.

Group testing makes "all pairs" cheap: :func:`sperner_codes` gives every unit a code word so
that every ordered pair of distinct units is separated by some bit; one pass per bit then
covers every pair. This module holds the mechanics (codes, runs, reductions, perturbations);
``_verdict`` holds what a check found and how it is told; the checks hold the strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from . import _outputs
from ._inputs import Inputs

METHODS = ("auto", "grad", "perturb")
#: Relative tolerance of perturbation comparisons, by output dtype, times the largest finite
#: magnitude of the baseline output. Same-shape reruns are bitwise identical on CPU; these only
#: absorb non-deterministic GPU kernels (atomics, TF32) and stay far below a real dependency.
RTOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2,
}
RTOL_CUDA_FLOAT32 = 1e-4
#: How many cotangents (or perturbed copies) go through the model at once when computing the
#: exact matrix after a failure.
EXACT_CHUNK = 16
#: Vector-Jacobian products per batched backward: each one adds the backward's temporaries,
#: so this bounds the check's peak memory to a small multiple of one forward+backward.
GRAD_CHUNK = 3


# --------------------------------------------------------------------------------------------
# Arguments


def check_model(model: Any) -> None:
    if isinstance(model, torch.nn.Module) or callable(model):
        return
    raise TypeError(
        f"model= must be a torch.nn.Module or a callable taking the inputs; got "
        f"{type(model).__name__}. Pass the network itself (or lambda x: net(x, ...))."
    )


def check_method(method: Any) -> None:
    if method not in METHODS:
        raise ValueError(
            f"method={method!r} is not one of {', '.join(map(repr, METHODS))}; use 'grad' "
            "(backprop, float inputs), 'perturb' (any inputs) or 'auto'."
        )


def selection(value: Any, n: int, *, name: str, unit: str, minimum: int = 2) -> list[int]:
    """``None`` -> all of ``range(n)``; an int k -> the first k; a sequence -> those indices."""
    if value is None:
        chosen = list(range(n))
    elif isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be an int count or a sequence of {unit} indices.")
    elif isinstance(value, int):
        if not minimum <= value <= n:
            raise ValueError(
                f"{name}={value} must be between {minimum} and the number of {unit}s ({n})."
            )
        chosen = list(range(value))
    else:
        try:
            raw = [int(v) for v in value]
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}={value!r} must be an int count or a sequence of {unit} indices."
            ) from None
        bad = [v for v in raw if not -n <= v < n]
        if bad:
            raise ValueError(
                f"{name}= holds {unit} indices {bad} outside 0..{n - 1}; pass indices of "
                f"the {n} {unit}s."
            )
        chosen = sorted({v % n for v in raw})
        if len(chosen) < minimum:
            raise ValueError(
                f"{name}= selects {len(chosen)} {unit}(s); at least {minimum} are needed to "
                "form a pair."
            )
    return chosen


def covered(chosen: Sequence[int], n: int, unit: str) -> str:
    if len(chosen) == n:
        return f"all {n} {unit}s"
    return f"{len(chosen)} of {n} {unit}s ({_ranges(chosen)})"


def _ranges(idx: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = idx[0]
    for v in [*idx[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    text = ",".join(parts)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------
# The model under check


def modules_of(model: Any) -> list[torch.nn.Module]:
    """The modules a check must put in eval mode and restore: the model, or those it closes over."""
    if isinstance(model, torch.nn.Module):
        return [model]
    found: list[torch.nn.Module] = []
    candidates: list[Any] = [getattr(model, "__self__", None), getattr(model, "func", None)]
    candidates += list(getattr(model, "args", ()) or ())
    candidates += list((getattr(model, "keywords", None) or {}).values())
    for cell in getattr(model, "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            candidates.append(cell.cell_contents)
    if not hasattr(model, "__code__") and hasattr(model, "__dict__"):
        candidates += list(vars(model).values())
    for c in candidates:
        if isinstance(c, torch.nn.Module) and all(c is not f for f in found):
            found.append(c)
    return found


@contextlib.contextmanager
def frozen(modules: Sequence[torch.nn.Module], *, train: bool) -> Iterator[None]:
    """Set the mode and stop parameter gradients (the caller restores both via ``untouched``)."""
    for m in modules:
        m.train(train)
        for p in m.parameters():
            p.requires_grad_(False)
    yield


def mode_of(modules: Sequence[torch.nn.Module], train: bool) -> str:
    if not modules:
        return "as given (a callable with no module found)"
    return "train" if train else "eval"


@dataclasses.dataclass
class Runner:
    """Calls the model and selects the checked output; reseeds torch so that every call draws
    the same random numbers (dropout in train mode, noise layers), and hands the model fresh
    copies of the inputs, so a model that writes into its input (``x.mul_(2)``) neither
    changes the user's tensors nor the baseline that later calls are compared with."""

    model: Callable[..., Any]
    output: Any
    seed: int

    def __call__(self, inputs: Inputs) -> torch.Tensor:
        torch.default_generator.manual_seed(self.seed)  # torch.manual_seed is slow: lazy devices
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(self.seed)
        fresh = inputs.map(lambda _label, t: t.clone())
        return _outputs.select(fresh.call(self.model), self.output)


@contextlib.contextmanager
def first_batch(model: Any, inputs: Inputs) -> Iterator[dict[str, Any]]:
    """Capture the batch that enters ``model`` (detached, on the CPU) for the record: the
    first tensor a forward pre-hook sees at the user's batch shape, else the first input."""
    holder: dict[str, Any] = {}
    first = inputs.tensors()
    shape = None
    if first:
        holder["batch"] = first[0][1].detach().cpu()
        shape = first[0][1].shape
    handle = None
    if isinstance(model, torch.nn.Module):

        def hook(_m: Any, args: Any, kwargs: Any) -> None:
            if holder.get("hooked"):
                return
            for v in (*args, *kwargs.values()):
                if isinstance(v, torch.Tensor):
                    if v.shape == shape:
                        with _unwatched():
                            holder["batch"] = v.detach().cpu()
                        holder["hooked"] = True
                    return

        handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield holder
    finally:
        if handle is not None:
            handle.remove()


# --------------------------------------------------------------------------------------------
# Sources: the input tensors and the axes they carry


@dataclasses.dataclass(frozen=True)
class Source:
    label: str
    batch_dim: int
    time_dim: int | None  # None: the tensor has no time axis (static per sample)

    def mask_shape(self, t: torch.Tensor) -> list[int]:
        shape = [1] * t.dim()
        shape[self.batch_dim] = t.shape[self.batch_dim]
        if self.time_dim is not None:
            shape[self.time_dim] = t.shape[self.time_dim]
        return shape


def sources_of(
    inputs: Inputs, batch_dim: int, time_dim: int | None, steps: int | None
) -> dict[str, Source]:
    out = {}
    for label, t in inputs.tensors():
        bd = batch_dim % t.dim()
        td = None
        if time_dim is not None and -t.dim() <= time_dim < t.dim():
            cand = time_dim % t.dim()
            if cand != bd and t.shape[cand] == steps:
                td = cand
        out[label] = Source(label, bd, td)
    return out


def index_batch(inputs: Inputs, sources: dict[str, Source], index: torch.Tensor) -> Inputs:
    """The inputs with the batch replaced by ``inputs[index]`` along each batch dimension."""
    return inputs.map(lambda label, t: t.index_select(sources[label].batch_dim, index.to(t.device)))


def output_dim(out: torch.Tensor, dim: int, *, size: int, name: str, what: str) -> int:
    if out.dim() == 0 or not -out.dim() <= dim < out.dim() or out.shape[dim] != size:
        if out.dim() == 0:
            hint = (
                "it is a scalar (a loss or a sum over the batch?); pass output= to pick a "
                "per-sample tensor of what the model returns"
            )
        else:
            fits = [d for d in range(out.dim()) if out.shape[d] == size]
            hint = (
                f"pass {name}={fits[0]} if its {what} is there (e.g. (T, B, ...) outputs from "
                f"(B, T, ...) inputs), or output= to pick another tensor of what it returns"
                if fits
                else f"no dimension has size {size}: the model may reduce over the batch, or "
                f"output= should pick another tensor of what it returns"
            )
        raise ValueError(
            f"the checked output (shape {tuple(out.shape)}) has no {what} of size {size} at "
            f"{name}={dim}; {hint}."
        )
    return dim % out.dim()


# --------------------------------------------------------------------------------------------
# Group testing


def sperner_codes(n: int) -> torch.Tensor:
    """``(n, m)`` bool: distinct code words of weight ``m // 2`` (no word contains another),
    with the smallest such ``m``. For ``i != j`` some bit is 1 in ``i`` and 0 in ``j``."""
    m = 1
    while math.comb(m, m // 2) < n:
        m += 1
    m = max(m, 2)
    words = []
    for combo in itertools.combinations(range(m), m // 2):
        words.append([b in combo for b in range(m)])
        if len(words) == n:
            break
    return torch.tensor(words, dtype=torch.bool)


# --------------------------------------------------------------------------------------------
# Gradients


def cotangent(shape: Sequence[int], like: torch.Tensor, seed: int) -> torch.Tensor:
    """Random weights in [0.5, 1.5): no exact cancellation between output elements."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(tuple(shape), generator=gen) + 0.5).to(like.device, like.dtype)


@dataclasses.dataclass
class Leaf:
    tensor: torch.Tensor
    source: Source


def backprop(
    run: Runner,
    inputs: Inputs,
    sources: dict[str, Source],
    make_cotangent: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    modules: Sequence[torch.nn.Module],
    *,
    batched: bool,
    check_output: Callable[[torch.Tensor], None] | None = None,
    cuts: list[str] | None = None,
) -> list[tuple[torch.Tensor, Source]]:
    """One forward, then vector-Jacobian products with the cotangents ``weights * masks``,
    where ``weights, masks = make_cotangent(out)``.

    Float inputs get their gradient directly; integer inputs at the output of each
    ``nn.Embedding`` that reads them. With ``batched`` the cotangent has a leading dimension of
    independent products, run as one batched backward (a loop where an op lacks a batching
    rule), :data:`GRAD_CHUNK` products per backward to bound memory. Returns
    ``(gradient, source)`` pairs, the gradient with that leading dimension. With ``cuts`` the
    forward runs under :func:`watch_cuts`, and the first op that cut the path is appended.
    """
    leaves: list[Leaf] = []
    shapes = {}
    for label, t in inputs.tensors():
        if not (t.is_floating_point() or t.is_complex()):
            shapes[tuple(t.shape)] = sources[label]

    def as_leaf(label: str, t: torch.Tensor) -> torch.Tensor:
        if not (t.is_floating_point() or t.is_complex()):
            return t
        leaf = t.detach().requires_grad_(True)  # shares storage; the model gets a copy
        leaves.append(Leaf(leaf, sources[label]))
        return leaf.clone()  # a non-leaf, so in-place ops in the model stay legal

    def embedding_hook(_m: Any, args: Any, out: Any) -> Any:
        idx = args[0] if args else None
        if not isinstance(idx, torch.Tensor) or not isinstance(out, torch.Tensor):
            return None
        src = shapes.get(tuple(idx.shape))
        if src is None or not out.is_floating_point():
            return None
        with _unwatched():
            leaf = out.detach().requires_grad_(True)
            leaves.append(Leaf(leaf, src))
            return leaf.clone()

    handles = []
    if shapes:
        for module in modules:
            for sub in module.modules():
                if isinstance(sub, torch.nn.Embedding):
                    handles.append(sub.register_forward_hook(embedding_hook))
    try:
        with torch.enable_grad():
            if cuts is None:
                out = run(inputs.map(as_leaf))
            else:
                with watch_cuts() as watch:
                    out = run(inputs.map(as_leaf))
                if watch.cut is not None:
                    cuts.append(watch.cut)
    finally:
        for h in handles:
            h.remove()
    if check_output is not None:
        check_output(out)
    reached = {leaf.source.label for leaf in leaves}
    missed = [src.label for src in shapes.values() if src.label not in reached]
    if missed:
        raise ValueError(
            f"method='grad' cannot reach {', '.join(missed)}: integer inputs get their gradient "
            "at the output of an nn.Embedding module that reads them, and none did. Use "
            "method='perturb' (or 'auto')."
        )
    weights, masks = make_cotangent(out)
    tensors = [leaf.tensor for leaf in leaves]
    n = masks.shape[0] if batched else None
    lead = [] if n is None else [n]
    if not tensors or not out.requires_grad:
        return [(torch.zeros(*lead, *leaf.tensor.shape), leaf.source) for leaf in leaves]
    if not out.is_floating_point():
        raise ValueError(
            f"method='grad' needs a float output to backprop from; the checked output is "
            f"{out.dtype}. Use method='perturb', or output= to pick the logits."
        )
    if n is None:
        grads = list(torch.autograd.grad(out, tensors, weights.mul_(masks), allow_unused=True))
    else:
        pieces = [
            _batched_grad(out, tensors, weights.unsqueeze(0) * masks[a : a + GRAD_CHUNK])
            for a in range(0, n, GRAD_CHUNK)
        ]
        grads = [
            None if pieces[0][k] is None else torch.cat([p[k] for p in pieces])  # type: ignore[misc]
            for k in range(len(tensors))
        ]
    result = []
    for leaf, g in zip(leaves, grads, strict=True):
        if g is None:
            g = torch.zeros(*lead, *leaf.tensor.shape, device=leaf.tensor.device)
        result.append((g, leaf.source))
    return result


def _batched_grad(
    out: torch.Tensor, tensors: list[torch.Tensor], cot: torch.Tensor
) -> Sequence[torch.Tensor | None]:
    """Vector-Jacobian products for each cotangent in ``cot`` (leading dimension), batched
    when every op has a batching rule, else one at a time; the graph is kept for more."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.autograd.grad(
                out, tensors, cot, retain_graph=True, allow_unused=True, is_grads_batched=True
            )
    except RuntimeError:  # an op without a batching rule: one product at a time
        rows = [
            torch.autograd.grad(out, tensors, c, retain_graph=True, allow_unused=True) for c in cot
        ]
        return [
            None if rows[0][k] is None else torch.stack([r[k] for r in rows])
            for k in range(len(tensors))
        ]


class _CutWatch(torch.overrides.TorchFunctionMode):
    """Notes the first op that takes a tensor on the gradient path and returns one off it.

    Parameters are frozen during a check, so only what derives from the inputs requires grad;
    an op that turns such a tensor into one that does not (``.detach()``, ``.data``, work under
    ``torch.no_grad()``, ``argmax``/``argsort``/comparisons/integer casts, ``.item()``), or
    into one whose derivative is zero (``round``, ``floor``, ``sign``), may carry a dependency
    that no gradient shows. Ops that only read shapes (``zeros_like``, ``new_zeros``) are not
    cuts. The check's own hooks run :func:`_unwatched`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cut: str | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if self.cut is None and not _PAUSED:
            name = getattr(func, "__name__", "") or ""
            if not (name.endswith("_like") or name.startswith("new_")) and _on_path(args, kwargs):
                if name.rstrip("_") in _CUTTING or any(
                    isinstance(r, torch.Tensor) and not r.requires_grad for r in _tensors(result)
                ):
                    self.cut = _op_name(func)
        return result


_PAUSED: list[bool] = []


@contextlib.contextmanager
def _unwatched() -> Iterator[None]:
    """The check's own ops inside the forward (hooks) are not the model's cuts."""
    _PAUSED.append(True)
    try:
        yield
    finally:
        _PAUSED.pop()


#: Ops whose result leaves the gradient path although it is a tensor that requires grad
#: (zero derivative almost everywhere) or is not a tensor at all (Python scalars).
_CUTTING = {
    *("round", "floor", "ceil", "trunc", "fix", "sign", "sgn", "heaviside"),
    *("item", "tolist", "__float__", "__int__", "__index__", "__bool__", "numpy"),
}


def _tensors(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _tensors(item)]
    return [value] if isinstance(value, torch.Tensor) else []


def _on_path(args: Any, kwargs: Any) -> bool:
    return any(t.requires_grad for t in _tensors(list(args) + list((kwargs or {}).values())))


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", repr(func))
    if name == "__get__":  # a property such as Tensor.data
        name = getattr(getattr(func, "__self__", None), "__name__", "attribute")
    return name


@contextlib.contextmanager
def watch_cuts() -> Iterator[_CutWatch]:
    """Within the block, ``watch.cut`` names the first op that cut the gradient path, if any."""
    with _CutWatch() as watch:
        yield watch


def has_embedding_reader(modules: Sequence[torch.nn.Module]) -> bool:
    return any(isinstance(s, torch.nn.Embedding) for m in modules for s in m.modules())


# --------------------------------------------------------------------------------------------
# Reductions to units


@dataclasses.dataclass
class Units:
    """Per-unit summary of a tensor: any finite non-zero, any non-finite, largest magnitude."""

    nonzero: torch.Tensor
    nonfinite: torch.Tensor
    magnitude: torch.Tensor

    def __or__(self, other: Units) -> Units:
        return Units(
            self.nonzero | other.nonzero,
            self.nonfinite | other.nonfinite,
            torch.maximum(self.magnitude, other.magnitude),
        )


def _flat(t: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
    keep = list(keep)
    rest = [d for d in range(t.dim()) if d not in keep]
    return t.permute(*keep, *rest).reshape(*[t.shape[d] for d in keep], -1)


def any_nonzero(t: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
    """Per unit over ``keep``: any entry that is not exactly zero (NaN and Inf included)."""
    return _flat(t != 0, keep).any(-1).cpu()


def units(t: torch.Tensor, keep: Sequence[int]) -> Units:
    """Reduce ``t`` to the dimensions ``keep`` (in that order)."""
    x = _flat(t, keep)
    finite = torch.isfinite(x)
    mag = x.abs().masked_fill(~finite, 0)
    return Units(
        ((x != 0) & finite).any(-1).cpu(),
        (~finite).any(-1).cpu(),
        mag.amax(-1).float().cpu(),
    )


# --------------------------------------------------------------------------------------------
# Perturbations


def tolerance(out: torch.Tensor) -> tuple[float, float]:
    """``(rtol, absolute tolerance)`` for comparing reruns of ``out``'s computation."""
    if not out.is_floating_point():
        return 0.0, 0.0
    rtol = RTOL.get(out.dtype, 1e-5)
    if out.dtype == torch.float32 and out.device.type != "cpu":
        rtol = RTOL_CUDA_FLOAT32
    finite = out[torch.isfinite(out)]
    scale = float(finite.abs().max()) if finite.numel() else 1.0
    return rtol, rtol * (scale or 1.0)


def changes(
    new: torch.Tensor, base: torch.Tensor, keep: Sequence[int], tol: float
) -> tuple[Units, float]:
    """Which units of ``new`` differ from ``base`` by more than ``tol`` (NaN vs NaN is equal),
    and the largest difference that stayed within the tolerance."""
    if new.shape != base.shape:
        raise ValueError(
            f"the checked output changed shape from {tuple(base.shape)} to {tuple(new.shape)} "
            "when only input values changed; pass output= to pick a tensor of fixed shape."
        )
    same = new == base
    if new.is_floating_point():
        same |= torch.isnan(new) & torch.isnan(base)
        diff = (new - base).abs().float()
    else:
        diff = (new.long() - base.long()).abs().float()
    moved = ~same & ~(diff <= tol)  # a NaN difference counts as moved
    slight_mask = ~same & ~moved
    slight = float(diff[slight_mask].max()) if bool(slight_mask.any()) else 0.0
    size = torch.nan_to_num(diff, nan=0.0, posinf=0.0).masked_fill(~moved, 0)
    flag = _flat(moved, keep)
    summary = Units(
        flag.any(-1).cpu(),
        torch.zeros(flag.shape[:-1], dtype=torch.bool),
        _flat(size, keep).amax(-1).cpu(),
    )
    return summary, slight


def check_repeatable(
    run: Runner, inputs: Inputs, base: torch.Tensor, keep: Sequence[int], tol: float
) -> None:
    """Perturbation compares calls; a model that answers the same inputs differently on a
    second call (state kept between calls, random numbers the check cannot reseed) would show
    dependencies that are not there. Raise a ``ValueError`` that says so instead."""
    again = run(inputs)
    moved, _slight = changes(again, base, keep, tol)
    if bool(moved.nonzero.any()):
        diff = float(moved.magnitude.max())
        raise ValueError(
            f"model= gives different outputs for the same inputs on two calls (by up to "
            f"{diff:.3g}), so changing inputs and comparing outputs (method='perturb') cannot "
            "tell what depends on what. Likely: state kept between calls (a cache, a running "
            "state, a counter) or random numbers from a generator the check cannot reseed "
            "(a torch.Generator of its own, dropout on a non-default device RNG). Make the "
            "forward a function of its inputs (reset the state, e.g. model=lambda x: "
            "net(x, state=None)), or use method='grad'."
        )


def perturb(
    inputs: Inputs,
    sources: dict[str, Source],
    mask: Callable[[Source, torch.Tensor], torch.Tensor | None],
    gen: torch.Generator,
) -> Inputs:
    """Inputs with the entries selected by ``mask(source, tensor)`` (a bool tensor over the
    batch / time dimensions, shaped to broadcast) changed: floats by noise of their own
    spread, integers to another value present in the tensor, booleans flipped."""

    def change(label: str, t: torch.Tensor) -> torch.Tensor:
        m = mask(sources[label], t)
        if m is None or not bool(m.any()):
            return t
        return torch.where(m.to(t.device), new_values(t, gen), t)

    return inputs.map(change)


@contextlib.contextmanager
def no_inference_fastpath() -> Iterator[None]:
    """Run the perturbation forwards on the kernels of training and of the gradient method.

    Under ``no_grad`` ``nn.MultiheadAttention``/``nn.TransformerEncoderLayer`` take a native
    inference fast path, which on CPU with a mask is several times slower (and never what the
    gradient method sees); the setting is global, so it is restored afterwards.
    """
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def new_values(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    if t.dtype == torch.bool:
        return ~t
    if t.is_floating_point() or t.is_complex():
        finite = t[torch.isfinite(t)].detach()
        spread = float(finite.float().std()) if finite.numel() > 1 else 0.0
        if not math.isfinite(spread) or spread == 0.0:
            spread = float(finite.abs().max()) if finite.numel() else 1.0
        noise = torch.randn(t.shape, generator=gen).to(t.device, t.dtype)
        return t + noise * (spread or 1.0)
    uniq = torch.unique(t)
    if uniq.numel() == 1:
        v = int(uniq[0])
        return t + (1 if v <= 0 else -1)
    pos = torch.searchsorted(uniq, t.contiguous())
    shift = torch.randint(1, uniq.numel(), t.shape, generator=gen).to(t.device)
    return uniq[(pos + shift) % uniq.numel()]
