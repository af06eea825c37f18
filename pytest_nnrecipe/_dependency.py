"""The engine behind the structural checks: which outputs depend on which inputs.

Both structural checks ask one question along one axis (samples for batch mixing, steps for
causality): does output unit ``i`` depend on input unit ``j``? Two ways to answer it:

* **by gradient** (``method="grad"``): backprop a random cotangent from a set of output units
  and see which input units receive a non-zero gradient. Exact at any precision: with no
  computational path the gradient is exactly zero, whatever the scale of the activations
  (float16, whose small numbers round to zero early, gets a second pass with scaled
  cotangents). A non-finite gradient decides nothing and is reported as *inconclusive*.
  Integer inputs (token ids) get their gradient at the output of the ``nn.Embedding``
  modules that read them (forward hooks). One forward serves every product (:class:`Graph`).
* **by perturbation** (``method="perturb"``): change the inputs of some units, run the model
  again at the same batch shape, and see which untouched output units changed. Same shapes
  mean the same kernels, so on deterministic kernels an independent output comes out
  bitwise identical and any change is a dependency; where reruns of the same inputs differ,
  the threshold is a multiple of that measured noise, never a per-dtype tolerance
  (:class:`Comparison`).

Group testing makes "all pairs" cheap: :func:`sperner_codes` gives every unit a code word so
that every ordered pair of distinct units is separated by some bit; one pass per bit then
covers every pair. This module holds the mechanics (codes, runs, gradients, reductions,
perturbations, what a callable reaches);
``_verdict`` holds what a check found and how it is told; the checks hold the strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from . import _outputs
from ._inputs import Inputs

METHODS = ("auto", "grad", "perturb")


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


@dataclasses.dataclass
class Reached:
    """What a model reaches, each with where it was found (``"closure variable 'net' of
    <lambda>"``): ``modules``; ``tensors`` it closes over or takes as defaults or partial
    arguments; ``stranded`` tensors it reads as globals or attributes of an object."""

    modules: list[tuple[str, torch.nn.Module]] = dataclasses.field(default_factory=list)
    tensors: list[tuple[str, torch.Tensor]] = dataclasses.field(default_factory=list)
    stranded: list[tuple[str, torch.Tensor]] = dataclasses.field(default_factory=list)


#: How many callables deep :func:`reach` looks (a partial of a closure over a bound method...).
REACH_DEPTH = 4


def reach(model: Any) -> Reached:
    """The modules and tensors a model reaches: the model itself if it is a module; for any
    other callable what its closure cells, defaults, ``functools.partial`` function and
    arguments, bound object (``net.forward``), attributes (an object with ``__call__``) and the
    globals its code names hold, looking into tuples, lists, dicts and further callables."""
    found = Reached()
    seen: set[int] = set()

    def visit(obj: Any, where: str, depth: int, *, held: bool = True) -> None:
        if isinstance(obj, torch.nn.Module):
            if all(obj is not m for _w, m in found.modules):
                found.modules.append((where, obj))
            return
        if isinstance(obj, torch.Tensor):
            (found.tensors if held else found.stranded).append((where, obj))
            return
        if id(obj) in seen or depth > REACH_DEPTH or isinstance(obj, type):
            return
        seen.add(id(obj))
        if isinstance(obj, (tuple, list)):
            for i, v in enumerate(obj):
                visit(v, f"{where}[{i}]", depth + 1, held=held)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                visit(v, f"{where}[{k!r}]", depth + 1, held=held)
        elif isinstance(obj, functools.partial):
            visit(obj.func, f"the function of {where}", depth + 1)
            for i, v in enumerate(obj.args):
                visit(v, f"argument {i} of {where}", depth + 1)
            for k, v in obj.keywords.items():
                visit(v, f"argument {k}= of {where}", depth + 1)
        elif isinstance(obj, types.MethodType):
            visit(obj.__self__, f"the object {obj.__name__}() is bound to", depth + 1)
            attributes(obj.__self__, depth)
        elif isinstance(obj, types.FunctionType):
            function(obj, depth)
        elif callable(obj):
            attributes(obj, depth)

    def function(fn: types.FunctionType, depth: int) -> None:
        name = fn.__name__
        code = fn.__code__
        for var, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            with contextlib.suppress(ValueError):  # an empty cell
                visit(cell.cell_contents, f"closure variable {var!r} of {name}", depth + 1)
        positional = code.co_varnames[: code.co_argcount]
        for var, value in zip(positional[::-1], (fn.__defaults__ or ())[::-1], strict=False):
            visit(value, f"default {var}= of {name}", depth + 1)
        for var, value in (fn.__kwdefaults__ or {}).items():
            visit(value, f"default {var}= of {name}", depth + 1)
        for var in code.co_names:
            value = fn.__globals__.get(var)
            if isinstance(value, (torch.nn.Module, torch.Tensor)):
                visit(value, f"global {var!r} read by {name}", depth + 1, held=False)

    def attributes(obj: Any, depth: int) -> None:
        if isinstance(obj, torch.nn.Module) or not hasattr(obj, "__dict__"):
            return
        for var, value in vars(obj).items():
            visit(value, f"attribute {var!r} of {type(obj).__name__}", depth + 1, held=False)

    visit(model, "model", 0)
    return found


def modules_of(model: Any) -> list[torch.nn.Module]:
    """The modules a check must put in eval mode and restore: the model, or those it reaches."""
    if isinstance(model, torch.nn.Module):
        return [model]
    return [m for _where, m in reach(model).modules]


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
                        with unwatched():
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
    """Random weights in [0.5, 1.5): no exact cancellation between output elements. Drawn on
    ``like``'s device (a generator of its own, so the global ones are not touched)."""
    try:
        gen = torch.Generator(device=like.device).manual_seed(seed)
        weights = torch.rand(tuple(shape), generator=gen, device=like.device)
    except RuntimeError:  # a device without generators of its own
        weights = torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed))
    return (weights + 0.5).to(like.device, like.dtype)


@dataclasses.dataclass
class Leaf:
    tensor: torch.Tensor
    source: Source


class Unreachable(ValueError):
    """``method="grad"`` cannot reach an input: an integer input no ``nn.Embedding`` reads."""


#: Vector-Jacobian products per batched backward never exceed this many.
MAX_CHUNK = 64
#: A batched backward takes at most this share of the device's free memory...
FREE_MEMORY_SHARE = 0.5
#: ...and at most this multiple of the memory the forward keeps for the backward, so that the
#: check's peak stays within a small multiple of one forward+backward...
GRAPH_MULTIPLE = 2.0
#: ...or this many bytes, where that is more: small models batch freely.
SMALL_BUDGET = 64 * 2**20


def products_per_backward(
    rows: int, *, saved: int, largest: int, per_row: int, free: int | None
) -> int:
    """How many vector-Jacobian products to run as one batched backward.

    Each product adds about three times the largest tensor the forward saved (an op's
    gradient in and out, and its temporaries) plus its own cotangent and input gradients
    (``per_row`` bytes). Together they stay within ``GRAPH_MULTIPLE`` x the saved graph (or
    ``SMALL_BUDGET``, if more) and ``FREE_MEMORY_SHARE`` of the free memory (``None``:
    unknown, no bound).
    """
    each = max(3 * largest + per_row, 1)
    budget = max(GRAPH_MULTIPLE * max(saved, each), SMALL_BUDGET)
    if free is not None:
        budget = min(budget, FREE_MEMORY_SHARE * free)
    return int(max(1, min(rows, MAX_CHUNK, budget // each)))


#: Products per backward found cheapest, by the shape of the graph (device, output, leaves): the
#: first graph of a shape times a few sizes (:meth:`Graph._fastest`), later ones reuse it.
_FASTEST: dict[tuple[Any, ...], int] = {}


def batched_products(device: torch.device) -> bool:
    """Whether products may run as batched backwards on ``device`` (all but the shapes-only
    "meta" device); :meth:`Graph.products` then times both ways once and keeps the cheaper."""
    return device.type != "meta"


def free_memory(device: torch.device) -> int | None:
    """Bytes free for tensors on ``device``: the driver's free memory plus what the caching
    allocator holds unused; ``None`` where unknown."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


@contextlib.contextmanager
def gradient_kernels(modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """cuDNN off for the check's forward when the model has an RNN (``nn.LSTM``/``GRU``/
    ``RNN``): cuDNN's RNN backward runs only in training mode and has no batching rule, while
    the native kernels have both. Restored afterwards, with every other cuDNN setting kept."""
    if not any(isinstance(s, torch.nn.RNNBase) for m in modules for s in m.modules()):
        yield
        return
    cudnn = torch.backends.cudnn
    with cudnn.flags(
        enabled=False,
        benchmark=cudnn.benchmark,
        deterministic=cudnn.deterministic,
        allow_tf32=cudnn.allow_tf32,
    ):
        yield


def _narrow(dtype: torch.dtype) -> bool:
    """A float format whose smallest numbers are far above float32's (float16): gradients
    round to exactly zero much sooner."""
    if not dtype.is_floating_point:
        return False
    return torch.finfo(dtype).tiny > torch.finfo(torch.float32).tiny


@dataclasses.dataclass
class Graph:
    """One forward of the model with gradient leaves at its inputs, and vector-Jacobian
    products from it: as many as the check needs, one forward for all of them.

    Float inputs are leaves themselves; integer inputs (token ids) get their leaf at the
    output of each ``nn.Embedding`` that reads them (a forward hook), found by following the
    ids through the ops that keep them as they are (``clone``, ``view`` to the same shape,
    ``to``). Any other op on the ids (``ids == pad``, ``ids.roll``, ``ids[:, 1:]``) carries a
    dependency that no gradient shows, and is noted as a cut (``cut``) like ``.detach()``.
    """

    out: torch.Tensor
    leaves: list[Leaf]
    cut: str | None
    saved: int  # bytes the forward keeps for the backward
    largest: int  # the largest of those tensors
    seed: int
    batched: bool
    #: cotangents are multiplied by this (float16: see :meth:`rescale`)
    scale: float = 1.0
    #: the largest finite gradient magnitude seen so far (float16 only)
    peak: float = 0.0
    _weights: torch.Tensor | None = None
    _best: int = 1

    @classmethod
    def build(
        cls,
        run: Runner,
        inputs: Inputs,
        sources: dict[str, Source],
        modules: Sequence[torch.nn.Module],
        *,
        check_output: Callable[[torch.Tensor], Any] | None = None,
    ) -> Graph:
        """Run the forward; raise :class:`Unreachable` for an integer input no embedding reads."""
        leaves: list[Leaf] = []
        watch = _CutWatch()
        integers = []
        for label, t in inputs.tensors():
            if not (t.is_floating_point() or t.is_complex()):
                watch.follow(t, label)
                integers.append((label, tuple(t.shape)))
        shapes = dict(integers)

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
            label = watch.origin(idx)
            if label is None or tuple(idx.shape) != shapes[label] or not out.is_floating_point():
                return None
            with unwatched():
                leaf = out.detach().requires_grad_(True)
                leaves.append(Leaf(leaf, sources[label]))
                return leaf.clone()

        device = inputs.tensors()[0][1].device
        batched = batched_products(device)
        sizes: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            """Notes what the forward keeps for the backward (batched products are sized by
            it): activations on the gradient path, not the (frozen) parameters and buffers."""
            if t.requires_grad:
                with contextlib.suppress(RuntimeError):  # a tensor without storage
                    storage = t.untyped_storage()
                    sizes[storage.data_ptr()] = storage.nbytes()
            return t

        handles = []
        if integers:
            for module in modules:
                for sub in module.modules():
                    if isinstance(sub, torch.nn.Embedding):
                        handles.append(sub.register_forward_hook(embedding_hook))
        try:
            with (
                torch.enable_grad(),
                gradient_kernels(modules),
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
                if batched
                else contextlib.nullcontext(),
                watch,
            ):
                out = run(inputs.map(as_leaf))
        finally:
            for h in handles:
                h.remove()
        if check_output is not None:
            check_output(out)
        reached = {leaf.source.label for leaf in leaves}
        missed = [label for label, _shape in integers if label not in reached]
        if missed:
            raise Unreachable(
                f"method='grad' cannot reach {', '.join(missed)}: integer inputs get their "
                "gradient at the output of an nn.Embedding module that reads them as they are, "
                "and none did. Use method='perturb' (or 'auto')."
            )
        if not leaves:
            raise Unreachable(
                "method='grad' found no input that gradients reach (integer inputs not read "
                "by an nn.Embedding of the model); use method='perturb'."
            )
        if out.requires_grad and not out.is_floating_point():
            raise ValueError(
                f"method='grad' needs a float output to backprop from; the checked output is "
                f"{out.dtype}. Use method='perturb', or output= to pick the logits."
            )
        return cls(
            out=out,
            leaves=leaves,
            cut=watch.cut,
            saved=sum(sizes.values()),
            largest=max(sizes.values(), default=0),
            seed=run.seed,
            batched=batched,
        )

    def __post_init__(self) -> None:
        #: float16 somewhere between the inputs and the output (see :meth:`rescale`)
        self.narrow = any(
            _narrow(t.dtype) for t in [self.out, *(leaf.tensor for leaf in self.leaves)]
        )

    def weights(self) -> torch.Tensor:
        if self._weights is None:
            self._weights = cotangent(self.out.shape, self.out, self.seed)
            if self.scale != 1.0:
                self._weights = self._weights * self.scale
        return self._weights

    def products(
        self, masks: torch.Tensor, reduce: Callable[[torch.Tensor, Source], Units | None]
    ) -> Units:
        """For each row of ``masks`` (``(k, ...)``, broadcasting against the output), the
        vector-Jacobian product with cotangent ``weights * mask``, reduced per leaf by
        ``reduce(gradient with a leading dimension, source)`` and combined over the leaves.

        Rows run as batched backwards of at most what memory allows
        (:func:`products_per_backward`), as many per backward as costs least per product: a
        batched backward is cheap where kernels are small or launch-bound (GPUs), no cheaper
        where they are large, slower where vmap handles an op badly (convolutions on the CPU).
        The first graph of a shape finds out (:meth:`_fastest`); later ones reuse it."""
        rows = masks.shape[0]
        limit = 1
        if self.batched and rows > 1:
            per_row = self.out.numel() * self.out.element_size() + sum(
                leaf.tensor.numel() * leaf.tensor.element_size() for leaf in self.leaves
            )
            limit = products_per_backward(
                rows,
                saved=self.saved,
                largest=self.largest,
                per_row=per_row,
                free=free_memory(self.out.device),
            )
        parts: list[Units] = []
        start = 0
        key = self._shape_key()
        if limit > 1 and key not in _FASTEST:
            start = self._fastest(masks, reduce, limit, parts)
            if len(_FASTEST) > 256:
                _FASTEST.clear()
            _FASTEST[key] = self._best if self.batched else 1
        size = min(_FASTEST.get(key, 1), limit) if self.batched else 1
        for a in range(start, rows, size):
            parts.append(self._chunk(masks[a : a + size], reduce))
        return Units.cat(parts)

    def _shape_key(self) -> tuple[Any, ...]:
        return (
            self.out.device,
            self.out.dtype,
            tuple(self.out.shape),
            tuple((tuple(leaf.tensor.shape), leaf.tensor.dtype) for leaf in self.leaves),
        )

    def _fastest(
        self,
        masks: torch.Tensor,
        reduce: Callable[[torch.Tensor, Source], Units | None],
        limit: int,
        parts: list[Units],
    ) -> int:
        """Run the first rows in backwards of growing size (1, 2, ..., the halves, all, up to
        ``limit``), timed, until a size costs more per product than a smaller one; note the
        cheapest in ``self._best``. Returns how many rows ran."""
        rows = masks.shape[0]
        sizes = sorted({1 << k for k in range(limit.bit_length())} | {-(-rows // 2), rows})
        best_cost, start = math.inf, 0
        self._best = 1
        for size in (s for s in sizes if s <= limit):
            batch = masks[start : start + size]
            if len(batch) < size or not self.batched:
                break

            def work(batch: torch.Tensor = batch) -> None:
                parts.append(self._chunk(batch, reduce))

            cost = self._clocked(work) / size
            start += size
            if cost >= best_cost:
                break
            best_cost, self._best = cost, size
        return start

    def _chunk(
        self, masks: torch.Tensor, reduce: Callable[[torch.Tensor, Source], Units | None]
    ) -> Units:
        cot = self.weights().unsqueeze(0) * masks.to(self.out.device, self.out.dtype)
        return self._reduced(self._vjp(cot), reduce, cot.shape[0])

    def _clocked(self, work: Callable[[], Any]) -> float:
        """Seconds ``work`` takes: on CUDA wall time with the queue drained before and after;
        on the CPU this process's CPU time (all its threads: the cost, whatever else runs)."""
        if self.out.device.type != "cuda":
            start = time.process_time()
            work()
            return time.process_time() - start
        torch.cuda.synchronize(self.out.device)
        start = time.perf_counter()
        work()
        torch.cuda.synchronize(self.out.device)
        return time.perf_counter() - start

    def _vjp(self, cot: torch.Tensor) -> list[torch.Tensor | None]:
        tensors = [leaf.tensor for leaf in self.leaves]
        if not self.out.requires_grad:
            return [None] * len(tensors)
        if self.batched and cot.shape[0] > 1:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # vmap's notes on ops without a rule
                    return list(
                        torch.autograd.grad(
                            self.out,
                            tensors,
                            cot,
                            retain_graph=True,
                            allow_unused=True,
                            is_grads_batched=True,
                        )
                    )
            except RuntimeError:  # an op without a batching rule (or memory): one at a time
                self.batched = False
        rows = [
            torch.autograd.grad(self.out, tensors, c, retain_graph=True, allow_unused=True)
            for c in cot
        ]
        return [
            None if rows[0][k] is None else torch.stack([r[k] for r in rows])
            for k in range(len(tensors))
        ]

    def _reduced(
        self,
        grads: list[torch.Tensor | None],
        reduce: Callable[[torch.Tensor, Source], Units | None],
        rows: int,
    ) -> Units:
        total: Units | None = None
        for leaf, g in zip(self.leaves, grads, strict=True):
            if g is None:
                g = torch.zeros(rows, *leaf.tensor.shape, device=leaf.tensor.device)
            elif self.scale != 1.0:
                # an overflow: +-inf is a path (a dependency), NaN (inf - inf, inf * 0) no evidence
                finite = torch.finfo(g.dtype).max
                g = g.nan_to_num(nan=0.0, posinf=finite, neginf=-finite)
            elif self.narrow:
                self.peak = max(self.peak, float(g.abs().nan_to_num(0.0, 0.0, 0.0).amax()))
            u = reduce(g, leaf.source)
            if u is not None:
                total = u if total is None else total | u
        if total is None:
            raise Unreachable(
                "method='grad' found no input with the axis the check needs among those "
                "gradients reach; use method='perturb'."
            )
        return total

    def rescale(self) -> bool:
        """float16 only: gradients smaller than 2**-24 round to exactly zero and would hide a
        small dependency. Scale the cotangents by a power of two (exact) so that the largest
        gradient seen nears the top of the range, as mixed-precision training scales its loss;
        then a product that overflows reads as +-inf where a path exists, and as NaN (no
        evidence, ignored) where infinities meet zeros. True if the products should rerun."""
        if self.scale != 1.0 or not self.narrow or not self.peak > 0:
            return False
        top = torch.finfo(torch.float16).max / 4
        ceiling = torch.finfo(self.out.dtype).max / 4 if self.out.is_floating_point() else top
        exponent = min(math.floor(math.log2(top / self.peak)), math.floor(math.log2(ceiling)))
        if exponent < 1:
            return False
        self.scale = 2.0**exponent
        self._weights = None
        return True

    def screen(
        self,
        masks: torch.Tensor,
        reduce: Callable[[torch.Tensor, Source], Units | None],
        forbidden: Callable[[Units], torch.Tensor],
    ) -> Units:
        """:meth:`products`, and in float16, when they show no forbidden dependency, again
        with rescaled cotangents (:meth:`rescale`); the two are combined."""
        found = self.products(masks, reduce)
        if not bool(forbidden(found).any()) and self.rescale():
            found = found | self.products(masks, reduce)
        return found


class _CutWatch(torch.overrides.TorchFunctionMode):
    """Notes the first op that takes a tensor on the gradient path and returns one off it.

    Parameters are frozen during a check, so only what derives from the inputs requires grad;
    an op that turns such a tensor into one that does not (``.detach()``, ``.data``, work under
    ``torch.no_grad()``, ``argmax``/``argsort``/comparisons/integer casts, ``.item()``), or
    into one whose derivative is zero (``round``, ``floor``, ``sign``), may carry a dependency
    that no gradient shows. Ops that only read shapes (``zeros_like``, ``new_zeros``) are not
    cuts. Integer inputs are followed (:meth:`follow`) through the ops that keep them as they
    are; any other op on them but ``embedding`` is a cut too. The check's own hooks run
    :func:`unwatched`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cut: str | None = None
        self._origin: dict[int, tuple[str, torch.Tensor]] = {}

    def follow(self, t: torch.Tensor, label: str) -> None:
        self._origin[id(t)] = (label, t)  # the tensor is kept alive: ids stay unique

    def origin(self, t: torch.Tensor) -> str | None:
        entry = self._origin.get(id(t))
        return entry[0] if entry is not None and entry[1] is t else None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if _PAUSED:
            return result
        if self._origin:
            labels = [self.origin(t) for t in tensors_in([*args, *(kwargs or {}).values()])]
            label = next((x for x in labels if x is not None), None)
            if label is not None:
                self._follow_ids(func, label, result)
        if self.cut is None:
            name = getattr(func, "__name__", "") or ""
            if not (name.endswith("_like") or name.startswith("new_")) and _on_path(args, kwargs):
                if name.rstrip("_") in _CUTTING or any(
                    isinstance(r, torch.Tensor) and not r.requires_grad for r in tensors_in(result)
                ):
                    self.cut = op_name(func)
        return result

    def _follow_ids(self, func: Any, label: str, result: Any) -> None:
        op = op_name(func)
        if op == "embedding":
            return
        outs = tensors_in(result)
        if not outs and op in _ID_METADATA:
            return
        if outs and op in _ID_KEEPING:
            for r in outs:
                self.follow(r, label)
            return
        if self.cut is None:
            self.cut = f"{op} on the integer {label}"


_PAUSED: list[bool] = []


def paused() -> bool:
    """Whether the check's own ops run now (inside :func:`unwatched`): no watch notes them."""
    return bool(_PAUSED)


@contextlib.contextmanager
def unwatched() -> Iterator[None]:
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
#: Ops that keep integer inputs as they are, so an embedding of the result still reads the
#: ids at the positions of the input (views to the same shape are checked at the embedding).
_ID_KEEPING = {
    *("clone", "contiguous", "detach", "to", "long", "int", "type", "cpu", "cuda", "data"),
    *("view", "reshape", "flatten", "unsqueeze", "squeeze"),
}
#: What may read integer inputs without using their values.
_ID_METADATA = {
    *("shape", "size", "dim", "ndim", "ndimension", "numel", "nelement", "__len__", "stride"),
    *("device", "dtype", "layout", "is_cuda", "is_floating_point", "is_complex", "get_device"),
    *("element_size", "is_contiguous", "storage_offset", "data_ptr", "requires_grad"),
    *("is_leaf", "grad_fn", "names", "__repr__", "__format__", "__str__", "__hash__"),
}


def tensors_in(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in tensors_in(item)]
    return [value] if isinstance(value, torch.Tensor) else []


def _on_path(args: Any, kwargs: Any) -> bool:
    return any(t.requires_grad for t in tensors_in(list(args) + list((kwargs or {}).values())))


def op_name(func: Any) -> str:
    name = getattr(func, "__name__", repr(func))
    if name == "__get__":  # a property such as Tensor.data
        name = getattr(getattr(func, "__self__", None), "__name__", "attribute")
    return name


def has_embedding_reader(modules: Sequence[torch.nn.Module]) -> bool:
    return any(isinstance(s, torch.nn.Embedding) for m in modules for s in m.modules())


def auto_method(all_float: bool, modules: Sequence[torch.nn.Module]) -> str:
    """``method="auto"``: gradients for float inputs. Token ids that an ``nn.Embedding`` reads
    get the gradient at its output (exact at any precision) where perturbation could not be
    exact: half precision, where a small change of an output rounds away, and accelerators,
    whose kernels may differ between reruns. On the CPU in float32/64 reruns are bitwise
    identical, perturbation sees any change an output can hold, and costs a forward per pass
    where gradients cost a backward."""
    if all_float:
        return "grad"
    half = (torch.float16, torch.bfloat16)
    for m in modules:
        for s in m.modules():
            if isinstance(s, torch.nn.Embedding) and (
                s.weight.dtype in half or s.weight.device.type != "cpu"
            ):
                return "grad"
    return "perturb"


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

    @staticmethod
    def cat(parts: Sequence[Units]) -> Units:
        """Units of consecutive rows (a leading dimension), joined."""
        if len(parts) == 1:
            return parts[0]
        return Units(
            torch.cat([p.nonzero for p in parts]),
            torch.cat([p.nonfinite for p in parts]),
            torch.cat([p.magnitude for p in parts]),
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
    mag = torch.where(finite, x.abs(), 0)
    return Units(
        (mag > 0).any(-1).cpu(),
        (~finite).any(-1).cpu(),
        mag.amax(-1).float().cpu(),
    )


def touched(t: torch.Tensor, keep: Sequence[int]) -> Units:
    """Per unit over ``keep``: any entry not exactly zero, finite or not (``nonzero``); for a
    screen that only needs to know whether to look closer."""
    flag = any_nonzero(t, keep)
    return Units(flag, torch.zeros_like(flag), torch.zeros(flag.shape))


# --------------------------------------------------------------------------------------------
# Perturbations


#: A change counts as a dependency when it exceeds this multiple of the noise floor: the
#: largest difference between reruns of the same inputs (when reruns differ at all).
NOISE_MULTIPLE = 4
#: Reruns of the unperturbed inputs that measure the noise floor once a rerun differed.
NOISE_RERUNS = 3


@dataclasses.dataclass(frozen=True)
class RerunNoise:
    """How finely a perturbation check could tell a dependency from rerun noise.

    ``floor``: the largest difference between reruns of the same inputs (0.0: bitwise
    identical, so any change counted); ``threshold``: a change counted as a dependency above it
    (``NOISE_MULTIPLE`` x ``floor``); ``scale``: the output's largest magnitude; ``within``:
    the largest change of an output the perturbed inputs must not reach that stayed within the
    threshold (inconclusive at this precision: not counted, not excluded), seen in
    ``within_runs`` of the ``compared`` perturbed runs.
    """

    floor: float
    threshold: float
    scale: float
    within: float = 0.0
    within_runs: int = 0
    compared: int = 0

    @property
    def exact(self) -> bool:
        return self.floor == 0.0

    def text(self) -> str:
        if self.exact:
            return (
                "Reruns of the unperturbed inputs are bitwise identical, so any change of an "
                "output counts, however small."
            )
        text = (
            f"Reruns of the unperturbed inputs differ by up to {self.floor:.3g} (noise floor: "
            f"non-deterministic kernels; {self.floor / (self.scale or 1.0):.2g} of the output's "
            f"largest magnitude {self.scale:.3g}); a change counts as a dependency above "
            f"{self.threshold:.3g} ({NOISE_MULTIPLE} x the floor)."
        )
        if self.within_runs:
            text += (
                f" Inconclusive at this precision: in {self.within_runs} of {self.compared} "
                f"perturbed runs, outputs the changed inputs must not reach moved by up to "
                f"{self.within:.3g}, within the noise: not counted, not excluded either "
                "(deterministic kernels, e.g. --nn-deterministic, or a wider dtype decide it)."
            )
        return text


class Comparison:
    """Perturbed runs against a baseline run, with a threshold from measured rerun noise.

    The unperturbed inputs run twice. Bitwise-identical reruns (the CPU, deterministic GPU
    kernels) make any change a dependency; before one is reported the baseline and the
    perturbed run are repeated, and if either comes out different the comparison turns to
    noise after all. Differing reruns are measured (:data:`NOISE_RERUNS`), and a change counts
    above :data:`NOISE_MULTIPLE` x the largest rerun difference, when the same perturbation
    shows it twice; smaller changes of forbidden outputs are kept as inconclusive
    (:class:`RerunNoise`). Reruns that differ by about the output's own size are no noise: a
    ``ValueError`` says the model is not a function of its inputs.
    """

    def __init__(self, run: Runner, inputs: Inputs) -> None:
        self.run = run
        self.inputs = inputs
        self.base = run(inputs)
        self.scale = _largest(self.base)
        self.keep: list[int] = []  # the output's unit dimensions, set by measure()
        self.floor = 0.0
        self.within = 0.0
        self.within_runs = 0
        self.compared = 0
        self._confirmed = False  # bitwise reruns confirmed once a forbidden output moved

    def measure(self, keep: Sequence[int]) -> None:
        """Rerun the unperturbed inputs: bitwise identical, or the noise floor measured;
        ``keep``: the output dimensions of the units compared (samples, steps)."""
        self.keep = list(keep)
        self._measure(self._diff(self.run(self.inputs)))

    @property
    def threshold(self) -> float:
        return NOISE_MULTIPLE * self.floor

    def noise(self) -> RerunNoise:
        return RerunNoise(
            self.floor, self.threshold, self.scale, self.within, self.within_runs, self.compared
        )

    def rebase(self, inputs: Inputs) -> torch.Tensor:
        """Compare against a run of other unperturbed ``inputs`` from now on (same noise)."""
        self.inputs = inputs
        self.base = self.run(inputs)
        self.scale = max(self.scale, _largest(self.base))
        return self.base

    def moved(self, perturbed: Inputs, watch: torch.Tensor | None = None) -> Units:
        """Which units (over ``keep``) of the run of ``perturbed`` moved beyond the threshold;
        ``watch`` (a bool tensor over the units): those that must not, confirmed as described
        in the class docstring, and counted as inconclusive when they moved within it."""
        out = self.run(perturbed)
        diff = self._diff(out)
        flag = self._flag(diff)
        if watch is not None and bool((flag & watch).any()):
            if self.floor == 0.0 and not self._confirmed:
                self._confirm_exact(perturbed, out)
            if self.floor > 0.0:  # noise: the same perturbation must show it again
                diff = torch.minimum(diff, self._diff(self.run(perturbed)))
            flag = self._flag(diff)
        if watch is not None:
            self.compared += 1
        if watch is not None and self.floor > 0.0:
            inside = _flat(diff.masked_fill(diff > self.threshold, 0.0), self.keep).amax(-1)
            inside = inside.cpu().masked_fill(~watch | flag, 0.0)
            if bool((inside > 0).any()):
                self.within_runs += 1
                self.within = max(self.within, float(inside.max()))
        size = diff.nan_to_num(nan=0.0, posinf=0.0).masked_fill(~(diff > self.threshold), 0.0)
        return Units(
            flag,
            torch.zeros(flag.shape, dtype=torch.bool),
            _flat(size, self.keep).amax(-1).cpu(),
        )

    def _flag(self, diff: torch.Tensor) -> torch.Tensor:
        return _flat(diff > self.threshold, self.keep).any(-1).cpu()

    def _diff(self, out: torch.Tensor) -> torch.Tensor:
        if out.shape != self.base.shape:
            raise ValueError(
                f"the checked output changed shape from {tuple(self.base.shape)} to "
                f"{tuple(out.shape)} when only input values changed; pass output= to pick a "
                "tensor of fixed shape."
            )
        return difference(out, self.base)

    def _measure(self, first: torch.Tensor) -> None:
        """``first``: the difference between two runs of the same inputs. If any, measure the
        noise floor over :data:`NOISE_RERUNS` reruns of the baseline."""
        if not bool((first > 0).any()):
            return
        diff = first
        for _ in range(NOISE_RERUNS - 1):
            diff = torch.maximum(diff, self._diff(self.run(self.inputs)))
        self.floor = float(diff.max())
        if not self.threshold < self.scale:
            raise ValueError(
                f"model= gives different outputs for the same inputs on two calls (by up to "
                f"{self.floor:.3g}, against outputs of up to {self.scale:.3g}: no kernel noise), "
                "so changing inputs and comparing outputs (method='perturb') cannot tell what "
                "depends on what. Likely: state kept between calls (a cache, a running state, "
                "a counter) or random numbers from a generator the check cannot reseed (a "
                "torch.Generator of its own, dropout on a non-default device RNG). Make the "
                "forward a function of its inputs (reset the state, e.g. model=lambda x: "
                "net(x, state=None)), or use method='grad'."
            )

    def _confirm_exact(self, perturbed: Inputs, out: torch.Tensor) -> None:
        """Reruns were identical and a forbidden output moved: repeat the baseline twice and
        the perturbed run once; any of them coming out different means the kernels are not
        deterministic after all, and the noise is measured."""
        for _ in range(2):
            self._measure(self._diff(self.run(self.inputs)))
            if self.floor > 0.0:
                return
        self._measure(difference(self.run(perturbed), out))
        self._confirmed = self.floor == 0.0


def difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise ``|a - b|`` as float32: 0 where equal (NaN and NaN too), inf where only
    one of them is NaN."""
    if a.is_floating_point() or a.is_complex():
        diff = (a - b).abs().float()
        same = (a == b) | (torch.isnan(a) & torch.isnan(b))
        return diff.masked_fill(same, 0.0).nan_to_num(nan=math.inf)
    return (a.long() - b.long()).abs().float()


def _largest(t: torch.Tensor) -> float:
    if not (t.is_floating_point() or t.is_complex()):
        return float(t.abs().max()) if t.numel() else 1.0
    finite = t[torch.isfinite(t)]
    return float(finite.abs().max()) if finite.numel() else 1.0


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
