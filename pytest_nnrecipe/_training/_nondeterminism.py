"""Where two runs that should agree part, and the evidence for why: the tools behind
``assert_deterministic``'s failure message, used only once the runs have differed.

- :class:`Trace`: every module's inputs and outputs in the order the forward produces them
  (forward pre-hooks and hooks); :func:`first_split` finds the first event where two traces
  differ: a module whose output differs while its inputs agree, or a module whose input
  already differs (made by its parent's own code).
- :func:`state_of` / :func:`changed`: a module's own buffers, parameters and plain attributes
  before and after a call (a counter, a cache: state carried from call to call).
- :func:`generators` / :func:`advanced`: private generators held by the model
  (``torch.Generator``, ``random.Random``, NumPy ``Generator``/``RandomState``) whose state a
  call advanced: randomness that ``torch.manual_seed`` and ``--nn-seed`` do not reach.
- :class:`OpWatch`: the CUDA ops known to be non-deterministic (atomic adds and their
  backwards) that ran, with the module they ran in.
- :func:`deterministic_kernels`: run a block under ``torch.use_deterministic_algorithms(True,
  warn_only=True)`` and keep torch's warnings about ops with no deterministic implementation;
  the flags are restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

#: aten ops (name without the trailing ``_``) that are non-deterministic on CUDA by default
#: (torch.use_deterministic_algorithms' documentation) -> what makes them so. ``True`` in the
#: second field: torch has a deterministic implementation it uses under the flag; ``False``:
#: none, torch raises (warns with warn_only) under the flag.
CUDA_NONDETERMINISTIC: dict[str, tuple[str, bool]] = {
    "index_add": ("atomic adds (also the backward of index_select, repeat_interleave)", True),
    "scatter_add": ("atomic adds (also the backward of gather)", True),
    "scatter_reduce": ("atomic reductions", True),
    "scatter": ("writes to duplicate indices in any order", True),
    "index_copy": ("writes to duplicate indices in any order", True),
    "put": ("atomic adds", False),
    "convolution_backward": ("cuDNN may pick a non-deterministic algorithm", True),
    "max_pool3d_with_indices_backward": ("atomic adds", True),
    "replication_pad1d_backward": ("atomic adds", True),
    "replication_pad2d_backward": ("atomic adds", True),
    "replication_pad3d_backward": ("atomic adds", True),
    "avg_pool3d_backward": ("atomic adds", False),
    "_adaptive_avg_pool2d_backward": ("atomic adds", False),
    "_adaptive_avg_pool3d_backward": ("atomic adds", False),
    "adaptive_max_pool2d_backward": ("atomic adds", False),
    "fractional_max_pool2d_backward": ("atomic adds", False),
    "fractional_max_pool3d_backward": ("atomic adds", False),
    "max_unpool2d": ("writes to duplicate indices in any order", False),
    "max_unpool3d": ("writes to duplicate indices in any order", False),
    "upsample_linear1d_backward": ("atomic adds", False),
    "upsample_bilinear2d_backward": ("atomic adds", False),
    "upsample_bicubic2d_backward": ("atomic adds", False),
    "upsample_trilinear3d_backward": ("atomic adds", False),
    "reflection_pad1d_backward": ("atomic adds", False),
    "reflection_pad2d_backward": ("atomic adds", False),
    "reflection_pad3d_backward": ("atomic adds", False),
    "nll_loss2d_forward": ("atomic adds", False),
    "_ctc_loss_backward": ("atomic adds", False),
    "_embedding_bag_backward": ("atomic adds", False),
    "_embedding_bag_dense_backward": ("atomic adds", False),
    "grid_sampler_2d_backward": ("atomic adds", False),
    "grid_sampler_3d_backward": ("atomic adds", False),
    "histc": ("atomic adds", False),
    "bincount": ("atomic adds (with weights)", False),
    "median": ("which of equal values is picked", False),
    "cumsum": ("a parallel scan (floating point)", False),
}


@dataclasses.dataclass(frozen=True)
class Event:
    """One module's inputs (``kind="input"``) or outputs (``"output"``) in one forward."""

    module: str  # qualified name, "" for the model itself
    type: str
    kind: str
    parent: str | None  # the module whose forward called this one (None for the model)
    tensors: tuple[Any, ...]


def shown(name: str, type_name: str) -> str:
    """``\\`body.0\\` (Linear)``, or ``the model (Net)`` for the root."""
    return f"`{name}` ({type_name})" if name else f"the model ({type_name})"


class Trace:
    """Records every module's inputs and outputs (detached copies) during the ``at_call``-th
    call of the model (counting from 0; ``None``: every call); :meth:`remove` unhooks."""

    def __init__(self, net: Any, *, at_call: int | None = None) -> None:
        self.events: list[Event] = []
        self.stack: list[str] = []
        self.types = {name: type(m).__name__ for name, m in net.named_modules()}
        self.at_call = at_call
        self.calls = -1
        self.handles = []
        for name, module in net.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._post(name), with_kwargs=True))

    @property
    def active(self) -> bool:
        return self.at_call is None or self.calls == self.at_call

    @property
    def current(self) -> str | None:
        """The innermost module running now (None outside the recorded call)."""
        return self.stack[-1] if self.stack and self.active else None

    def _pre(self, name: str) -> Any:
        def hook(_module: Any, args: Any, kwargs: Any) -> None:
            if name == "" and not self.stack:
                self.calls += 1
            if self.active:
                parent = self.stack[-1] if self.stack else None
                self.events.append(
                    Event(name, self.types[name], "input", parent, tensors_in((args, kwargs)))
                )
            self.stack.append(name)

        return hook

    def _post(self, name: str) -> Any:
        def hook(_module: Any, _args: Any, _kwargs: Any, out: Any) -> None:
            if self.stack:
                self.stack.pop()
            if self.active:
                parent = self.stack[-1] if self.stack else None
                self.events.append(Event(name, self.types[name], "output", parent, tensors_in(out)))

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@dataclasses.dataclass(frozen=True)
class Split:
    """Where two traces first differ, and by how much."""

    event: Event
    previous: Event | None  # the last event on which the traces agreed
    difference: Difference | None  # None: the runs took different paths (other modules)
    other: Event | None = None  # with difference None: what the second run did instead

    @property
    def culprit(self) -> str:
        """The module whose own code made the difference."""
        if self.event.kind == "output":
            return self.event.module
        return self.event.parent if self.event.parent is not None else self.event.module

    def describe(self, types: Mapping[str, str]) -> str:
        ev = self.event
        if self.difference is None:
            other = self.other
            went = "ended" if other is None else f"reached the {other.kind} of `{other.module}`"
            return (
                f"the two runs take different paths: the first reaches the {ev.kind} of "
                f"{shown(ev.module, ev.type)} where the second {went}; the code of "
                f"{shown(self.culprit, types.get(self.culprit, '?'))} branches differently."
            )
        size = self.difference.text()
        if ev.kind == "output":
            return (
                f"first difference: the output of {shown(ev.module, ev.type)} ({size}), while "
                "its inputs agree: made inside it."
            )
        after = (
            f"after the {self.previous.kind} of `{self.previous.module or 'the model'}` agreed"
            if self.previous is not None
            else "at the start"
        )
        parent = self.culprit
        return (
            f"first difference: the input of {shown(ev.module, ev.type)} ({size}), {after}: "
            f"made in the forward of {shown(parent, types.get(parent, '?'))}, by its own code "
            "before it calls this module."
        )


def first_split(a: Trace, b: Trace) -> Split | None:
    """The first event at which ``a`` and ``b`` differ (or take different paths); None if
    they agree everywhere."""
    previous = None
    for i, ea in enumerate(a.events):
        eb = b.events[i] if i < len(b.events) else None
        if eb is None or (eb.module, eb.kind) != (ea.module, ea.kind):
            return Split(ea, previous, None, eb)
        diff = compare(ea.tensors, eb.tensors)
        if diff is not None:
            return Split(ea, previous, diff)
        previous = ea
    if len(b.events) > len(a.events):
        return Split(b.events[len(a.events)], previous, None, None)
    return None


@dataclasses.dataclass(frozen=True)
class Difference:
    """How two tensors (or lists of tensors) differ."""

    values: int  # values that differ
    total: int
    largest: float  # the largest absolute difference among finite values (nan: none)
    scale: float  # the largest absolute value of the first run's tensor
    note: str = ""  # shape/dtype mismatch, non-finite values

    def text(self) -> str:
        if self.note:
            return self.note
        rel = f", {self.largest / self.scale:.1e} of its largest value" if self.scale else ""
        return f"{self.values} of {self.total} values differ, by up to {self.largest:.3g}{rel}"


def compare(a: tuple[Any, ...] | Any, b: tuple[Any, ...] | Any) -> Difference | None:
    """None when ``a`` and ``b`` (tensors or tuples of tensors) are bitwise identical (NaNs
    where the other has NaNs count as identical); else the size of the difference."""
    import torch

    xs = a if isinstance(a, tuple) else (a,)
    ys = b if isinstance(b, tuple) else (b,)
    if len(xs) != len(ys):
        return Difference(0, 0, float("nan"), 0.0, f"{len(xs)} tensors against {len(ys)}")
    values = total = 0
    largest, scale = 0.0, 0.0
    for x, y in zip(xs, ys, strict=True):
        if x.shape != y.shape or x.dtype != y.dtype:
            return Difference(
                0,
                0,
                float("nan"),
                0.0,
                f"shape/dtype {tuple(x.shape)} {x.dtype} against {tuple(y.shape)} {y.dtype}",
            )
        if torch.equal(x, y):
            total += x.numel()
            continue
        if x.is_floating_point() or x.is_complex():
            same = (x == y) | (x.isnan() & y.isnan())
        else:
            same = x == y
        n = int((~same).sum())
        values += n
        total += x.numel()
        if n == 0:
            continue
        gap = (x.double() - y.double()).abs()[~same]
        gap = gap[torch.isfinite(gap)]
        if gap.numel():
            largest = max(largest, float(gap.max()))
        finite = x.double().abs()[torch.isfinite(x.double())]
        if finite.numel():
            scale = max(scale, float(finite.max()))
    if values == 0:
        return None
    return Difference(values, total, largest, scale)


def tensors_in(value: Any) -> tuple[Any, ...]:
    """Detached copies of the tensors in ``value`` (nested tuples, lists, dicts, outputs)."""
    import torch

    found: list[Any] = []

    def walk(v: Any, depth: int) -> None:
        if isinstance(v, torch.Tensor):
            found.append(v.detach().clone())
        elif depth > 6:
            return
        elif isinstance(v, (tuple, list)):
            for item in v:
                walk(item, depth + 1)
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item, depth + 1)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            for f in dataclasses.fields(v):
                walk(getattr(v, f.name), depth + 1)

    walk(value, 0)
    return tuple(found)


# --- state carried from call to call ------------------------------------------------------


def state_of(module: Any) -> dict[str, Any]:
    """A module's own state: buffers, parameters, and plain attributes (numbers, strings,
    tensors; the length of lists, dicts and sets). The running statistics of a BatchNorm in
    train mode are left out: they change by design and do not feed its train-mode output."""
    import torch

    state: dict[str, Any] = {}
    by_design = _running_stats(module)
    for kind, table in (("buffer", module._buffers), ("parameter", module._parameters)):
        for key, t in table.items():
            if t is not None and key not in by_design:
                state[f"{kind} {key}"] = t.detach().clone()
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, (bool, int, float, str)):
            state[f"attribute {key}"] = value
        elif isinstance(value, torch.Tensor):
            state[f"attribute {key}"] = value.detach().clone()
        elif isinstance(value, (list, dict, set)):
            state[f"attribute {key}"] = _Length(len(value))
    return state


@dataclasses.dataclass(frozen=True)
class _Length:
    n: int

    def __str__(self) -> str:
        return f"{self.n} items"


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two :func:`state_of` snapshots, e.g. ``attribute calls: 1 -> 2``."""
    import torch

    notes = []
    for key, old in before.items():
        new = after.get(key)
        if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor):
            diff = compare(old, new)
            if diff is not None:
                notes.append(f"{key} changed ({diff.text()})")
        elif old != new:
            notes.append(f"{key}: {old} -> {new}")
    notes.extend(f"{key} added" for key in after if key not in before)
    return notes


def _running_stats(module: Any) -> set[str]:
    import torch

    if isinstance(module, torch.nn.modules.batchnorm._NormBase) and module.training:
        return {"running_mean", "running_var", "num_batches_tracked"}
    return set()


# --- private generators -------------------------------------------------------------------


def generators(net: Any) -> dict[str, Any]:
    """``"module.attribute" -> state`` of every generator a module of ``net`` holds as an
    attribute: ``torch.Generator``, ``random.Random``, NumPy ``Generator``/``RandomState``."""
    import torch

    np: Any = sys.modules.get("numpy")
    np_kinds: tuple[type, ...] = ()
    if np is not None and hasattr(np, "random"):
        np_kinds = (np.random.Generator, np.random.RandomState)
    found: dict[str, Any] = {}
    for name, module in net.named_modules():
        for key, value in vars(module).items():
            where = f"{name}.{key}" if name else key
            if isinstance(value, torch.Generator):
                found[where] = ("torch.Generator", value.get_state().clone(), value)
            elif isinstance(value, random.Random):
                found[where] = ("random.Random", value.getstate(), value)
            elif np_kinds and isinstance(value, np_kinds):
                numpy_gen: Any = value
                state = (
                    numpy_gen.bit_generator.state
                    if isinstance(numpy_gen, np.random.Generator)
                    else numpy_gen.get_state(legacy=False)
                )
                found[where] = (f"numpy {type(value).__name__}", repr(state), value)
    return found


def advanced(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The generators whose state moved between two :func:`generators` snapshots, described."""
    import torch

    moved = []
    for where, (kind, old, gen) in before.items():
        new = after[where][1]
        same = torch.equal(old, new) if isinstance(old, torch.Tensor) else old == new
        if not same:
            seed = f", initial seed {gen.initial_seed()}" if kind == "torch.Generator" else ""
            moved.append(f"`{where}` ({kind}{seed})")
    return moved


# --- ops ----------------------------------------------------------------------------------


class OpWatch:
    """A dispatch mode that notes the ops of :data:`CUDA_NONDETERMINISTIC` run on CUDA
    tensors, with the module running at the time (from a :class:`Trace`, if given)."""

    def __init__(self, trace: Trace | None = None) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        watch = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(
                self, func: Any, types: Any, args: Any = (), kwargs: Any = None
            ) -> Any:
                kwargs = kwargs or {}
                watch.note(func, args, kwargs)
                return func(*args, **kwargs)

        self.trace = trace
        self.mode = _Mode()
        self.seen: dict[str, str | None] = {}  # "aten.op" -> module it first ran in

    def note(self, func: Any, args: Any, kwargs: Any) -> None:
        import torch
        from torch.utils._pytree import tree_leaves

        name = func.overloadpacket.__name__
        base = name[:-1] if name.endswith("_") and not name.endswith("__") else name
        if base not in CUDA_NONDETERMINISTIC:
            return
        if base == "scatter" and func._overloadname not in ("src", "reduce"):
            return  # scatter of a scalar value writes the same value whatever the order
        leaves = tree_leaves((args, kwargs))
        if not any(isinstance(t, torch.Tensor) and t.device.type == "cuda" for t in leaves):
            return
        key = f"aten.{name}"
        if key not in self.seen:
            self.seen[key] = self.trace.current if self.trace is not None else None

    def __enter__(self) -> OpWatch:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)

    def described(self, types: Mapping[str, str]) -> list[str]:
        out = []
        for key, module in self.seen.items():
            base = key.removeprefix("aten.").rstrip("_")
            why, fixable = CUDA_NONDETERMINISTIC.get(base, ("", False))
            where = "" if module is None else f" in {shown(module, types.get(module, '?'))}"
            flag = (
                "deterministic under torch.use_deterministic_algorithms(True)"
                if fixable
                else "no deterministic implementation on CUDA"
            )
            out.append(f"{key}{where}: {why}; {flag}")
        return out


@contextlib.contextmanager
def deterministic_kernels() -> Iterator[list[str]]:
    """Run the block with ``torch.use_deterministic_algorithms(True, warn_only=True)``; yields
    the list that collects torch's warnings about ops that have no deterministic
    implementation (one line each). The previous setting is restored."""
    import torch

    was, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield notes
        finally:
            torch.use_deterministic_algorithms(was, warn_only=warn_only)
    for w in caught:
        text = str(w.message)
        if "deterministic" in text:
            first = text.split(". ")[0].split("\n")[0]
            if first not in notes:
                notes.append(first)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
