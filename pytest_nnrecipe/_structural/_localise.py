"""Where a forbidden dependency starts (run only when a structural check fails).

The forward runs again under a watch that notes every op (a ``TorchFunctionMode``: the op's
name, the modules it ran in, which tensors it read and which it made) and every module
(forward pre-hooks and hooks). It runs once as given, once more to measure the rerun noise of
each tensor, and once per checked unit with that unit's inputs changed (the perturbation of
the check's own pass, :func:`pytest_nnrecipe._dependency.perturb`). Every tensor of the
forward with a dimension of as many units as the check has then has its own dependency
matrix: which of its units moved beyond that tensor's noise when input unit ``j`` changed. It
carries a forbidden dependency when that matrix has one under every reading of its unit
dimensions (an attention score ``(B, T, T)`` has two: queries and keys).

From the checked output the trace follows the op that made each tensor back to the first op
none of whose inputs carries a forbidden dependency; tensors without a unit dimension
(``x.view(G, -1)``, a mean over time) cannot be read, so the ops that made them from clean
tensors are part of the start too. The innermost module those ops all ran in is where the
dependency starts; the ops are what introduced it, the matrix of that module's output is its
pattern (what the likely cause is derived from, :mod:`._evidence`).

Cost: ``2 + units`` forwards of the model under the watch (a Python call per op), on failure
only; the time is stated in the message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .. import _dependency as dep
from .._inputs import Inputs

#: How far the trace follows ops whose tensors have no unit dimension (they cannot be read).
MAX_UNREAD = 24
#: Ops of the culprit module after the start that the evidence keeps (a mask after a softmax).
MAX_LATER = 16


@dataclasses.dataclass(frozen=True)
class Search:
    """What the localisation needs from the check: the model run, the inputs, the units.

    ``input_dim(source)``: the unit dimension of an input (``None``: it has none);
    ``prefer``: the dimensions a tensor's units are read from first (the output's, the
    inputs'); ``frame``: ``(allowed, checked)`` over ``size x size`` units."""

    run: dep.Runner
    ins: Inputs
    sources: dict[str, dep.Source]
    modules: list[torch.nn.Module]
    size: int
    chosen: list[int]
    frame: tuple[np.ndarray, np.ndarray]
    input_dim: Callable[[dep.Source], int | None]
    prefer: tuple[int, ...]
    seed: int
    names: dict[int, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where the forbidden dependency starts.

    ``name``: the qualified name of the innermost module the starting ops ran in (``None``:
    outside every module, a plain callable); ``module``: that module; ``ops``: the ops that
    introduced it, in forward order; ``earlier``/``later``: the ops of that module before
    and after them;
    ``matrix``: the forbidden dependencies of the module's output (rows: its units, columns:
    the input units), ``modules``: every module the starting ops ran in, innermost last;
    ``tensors``, ``forwards``, ``seconds``: what the search cost."""

    name: str | None
    module: torch.nn.Module | None
    ops: tuple[str, ...]
    earlier: tuple[str, ...]
    later: tuple[str, ...]
    matrix: np.ndarray
    modules: tuple[tuple[str, torch.nn.Module], ...]
    tensors: int
    forwards: int
    seconds: float

    def where(self) -> str:
        """``blocks.1.ln (LayerNorm over (12, 16))``, or ``the model's forward``."""
        if self.module is None:
            return "the model's forward (outside every module)"
        label = self.name or "the model itself"
        return f"{label} ({describe(self.module)})"

    def op_text(self) -> str:
        if not self.ops:
            return ""
        word = "op" if len(self.ops) == 1 else "ops"
        return f"{word} {' -> '.join(self.ops)}"

    def cost(self) -> str:
        return (
            f"localised by perturbation: {self.forwards} forwards, {self.tensors} tensors "
            f"compared, {self.seconds:.2g} s, run only on failure"
        )


def describe(m: torch.nn.Module) -> str:
    """A module's type with what matters to the checks: ``LayerNorm over (12, 16)``,
    ``Conv1d(kernel_size=3, dilation=4, padding=4)``, ``LSTM(batch_first=False, ...)``."""
    kind = type(m).__name__
    if isinstance(m, torch.nn.LayerNorm):
        return f"{kind} over {tuple(m.normalized_shape)}"
    if isinstance(m, torch.nn.modules.conv._ConvNd):
        k, d = m.kernel_size[0], m.dilation[0]
        pad = m.padding if isinstance(m.padding, str) else m.padding[0]
        return f"{kind}(kernel_size={k}, dilation={d}, padding={pad!r})"
    if isinstance(m, torch.nn.RNNBase):
        return f"{kind}(batch_first={m.batch_first}, bidirectional={m.bidirectional})"
    if isinstance(m, torch.nn.MultiheadAttention):
        return f"{kind}(batch_first={m.batch_first})"
    if isinstance(m, torch.nn.GroupNorm):
        return f"{kind}({m.num_groups} groups)"
    return kind


# --------------------------------------------------------------------------------------------
# The watch


@dataclasses.dataclass
class _Op:
    name: str
    stack: tuple[str, ...]  # the modules it ran in, outermost first
    reads: list[int]  # tensors it read (indices of what earlier ops made)
    makes: list[int]


class _Watch(torch.overrides.TorchFunctionMode):
    """Notes each op and the tensors it made; in a compared run, which units moved."""

    def __init__(self, search: Search) -> None:
        super().__init__()
        self.search = search
        self.stack: list[str] = []
        self.ops: list[_Op] = []
        self.made: list[torch.Tensor] = []  # kept alive during a run: ids stay unique
        self.maker: dict[int, int] = {}
        self.outputs: dict[str, list[int]] = {}  # module name -> tensors of its output
        self.base: list[torch.Tensor] | None = None
        self.floors: list[float] = []
        self.compare: Callable[[int, torch.Tensor], None] | None = None

    def reset(self) -> None:
        self.stack, self.ops, self.made, self.maker, self.outputs = [], [], [], {}, {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if dep.paused():
            return result
        made = [t for t in dep.tensors_in(result) if isinstance(t, torch.Tensor)]
        if not made:
            return result
        reads = [
            self.maker[id(t)]
            for t in dep.tensors_in([*args, *(kwargs or {}).values()])
            if id(t) in self.maker
        ]
        op = _Op(dep.op_name(func), tuple(self.stack), reads, [])
        for t in made:
            k = len(self.made)
            self.made.append(t)
            self.maker[id(t)] = k
            op.makes.append(k)
            if self.compare is not None:
                self.compare(k, t)
        self.ops.append(op)
        return result

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        handles = []
        for root, name_of in self._named():
            for name, m in root.named_modules():
                full = ".".join(p for p in (name_of, name) if p)

                def enter(_m: Any, _a: Any, full: str = full) -> None:
                    self.stack.append(full)

                def leave(_m: Any, _a: Any, out: Any, full: str = full) -> None:
                    if self.stack and self.stack[-1] == full:
                        self.stack.pop()
                    found = [self.maker[id(t)] for t in dep.tensors_in(out) if id(t) in self.maker]
                    self.outputs.setdefault(full, found)

                handles.append(m.register_forward_pre_hook(enter))
                handles.append(m.register_forward_hook(leave, always_call=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _named(self) -> list[tuple[torch.nn.Module, str]]:
        return [(m, self.search.names.get(id(m), "")) for m in self.search.modules]

    def modules(self) -> dict[str, torch.nn.Module]:
        out = {}
        for root, name_of in self._named():
            for name, m in root.named_modules():
                out[".".join(p for p in (name_of, name) if p)] = m
        return out


# --------------------------------------------------------------------------------------------
# The search


@dataclasses.dataclass
class _Table:
    """Per tensor of the forward: its unit dimensions and, per reading, the moved units."""

    dims: list[list[int]]
    moved: list[np.ndarray]  # (readings, size, size)
    changed: list[bool]

    def dirty(self, k: int, forbidden: np.ndarray) -> bool:
        dims = self.dims[k]
        return bool(dims) and all(bool((m & forbidden).any()) for m in self.moved[k])

    def unread(self, k: int) -> bool:
        return not self.dims[k] and self.changed[k]


def localise(search: Search) -> Origin | None:
    """Where the forbidden dependency starts, or ``None`` when no tensor shows one."""
    start = time.perf_counter()
    watch = _Watch(search)
    gen = torch.Generator().manual_seed(search.seed)
    with watch.hooked(), torch.no_grad(), dep.no_inference_fastpath():
        out = _run(watch, search.ins, search.run)
        ops, outputs, base = watch.ops, watch.outputs, watch.made
        watch.base = [t.detach().clone() for t in base]
        table = _Table(
            dims=[_unit_dims(t, search) for t in watch.base],
            moved=[],
            changed=[False] * len(base),
        )
        table.moved = [np.zeros((len(d), search.size, search.size), bool) for d in table.dims]
        watch.floors = [0.0] * len(base)
        watch.compare = lambda k, t: _floor(watch, k, t)
        _run(watch, search.ins, search.run)
        forwards = 2
        for j in search.chosen:
            watch.compare = lambda k, t, j=j: _moved(watch, table, k, t, j)
            _run(
                watch,
                dep.perturb(search.ins, search.sources, _unit_mask(search, j), gen),
                search.run,
            )
            forwards += 1
    allowed, checked = search.frame
    forbidden = ~allowed & checked
    end = next((k for k, t in enumerate(base) if t is out), None)
    dirty = [k for k in range(len(base)) if table.dirty(k, forbidden)]
    if not dirty:
        return None
    if end is None or not table.dirty(end, forbidden):
        end = dirty[-1]
    chain, first = _trace(ops, table, end, forbidden)
    stacks = [ops[i].stack for i in chain]
    common = _common(stacks)
    named = watch.modules()
    name = common[-1] if common else None
    module = named.get(name) if name is not None else None
    culprit_out = [k for k in outputs.get(name or "", []) if table.dirty(k, forbidden)]
    shown = culprit_out[0] if culprit_out else first
    matrix = table.moved[shown][0] & forbidden
    span = [o for o in ops if name is None or name in o.stack or name == ""]
    last = max(chain)
    later = [o.name for i, o in enumerate(ops) if i > last and o in span][:MAX_LATER]
    earlier = [o.name for i, o in enumerate(ops) if i < min(chain) and o in span][-MAX_LATER:]
    inner: list[tuple[str, torch.nn.Module]] = []
    for s in stacks:
        if s and s[-1] in named and all(s[-1] != n for n, _m in inner):
            inner.append((s[-1], named[s[-1]]))
    return Origin(
        name=name,
        module=module,
        ops=tuple(ops[i].name for i in chain),
        earlier=tuple(earlier),
        later=tuple(later),
        matrix=matrix,
        modules=tuple(inner),
        tensors=sum(1 for d in table.dims if d),
        forwards=forwards,
        seconds=time.perf_counter() - start,
    )


def _run(watch: _Watch, inputs: Inputs, run: dep.Runner) -> torch.Tensor:
    watch.reset()
    with watch:
        out = run(inputs)
    return out


def _unit_dims(t: torch.Tensor, search: Search) -> list[int]:
    """The dimensions of ``t`` that could hold the units, the preferred ones first."""
    dims = [d for d in range(t.dim()) if t.shape[d] == search.size]
    first = [p % t.dim() for p in search.prefer if t.dim() and -t.dim() <= p < t.dim()]
    return sorted(dims, key=lambda d: (d not in first, d))


def _floor(watch: _Watch, k: int, t: torch.Tensor) -> None:
    """The rerun noise of tensor ``k`` (0.0 where reruns are bitwise identical)."""
    base = watch.base
    if base is None or k >= len(base) or base[k].shape != t.shape:
        return
    diff = dep.difference(t.detach(), base[k])
    if diff.numel():
        watch.floors[k] = max(watch.floors[k], float(diff.nan_to_num(posinf=0.0).max()))


def _moved(watch: _Watch, table: _Table, k: int, t: torch.Tensor, j: int) -> None:
    """Which units of tensor ``k`` moved (per reading) when input unit ``j`` changed."""
    base = watch.base
    if base is None or k >= len(base) or base[k].shape != t.shape:
        return
    diff = dep.difference(t.detach(), base[k]) > dep.NOISE_MULTIPLE * watch.floors[k]
    if not bool(diff.any()):
        return
    table.changed[k] = True
    for r, d in enumerate(table.dims[k]):
        table.moved[k][r, :, j] = dep.any_nonzero(diff, [d]).numpy()


def _unit_mask(search: Search, j: int) -> Callable[[dep.Source, torch.Tensor], Any]:
    def mask(src: dep.Source, t: torch.Tensor) -> torch.Tensor | None:
        d = search.input_dim(src)
        if d is None:
            return None
        shape = [1] * t.dim()
        shape[d] = t.shape[d]
        m = torch.zeros(t.shape[d], dtype=torch.bool)
        m[j] = True
        return m.view(shape)

    return mask


def _trace(ops: list[_Op], table: _Table, end: int, forbidden: np.ndarray) -> tuple[list[int], int]:
    """The ops that start the forbidden dependency of tensor ``end`` (forward order), and the
    first tensor that shows it."""
    maker = {k: i for i, o in enumerate(ops) for k in o.makes}
    k = end
    while True:
        op = maker.get(k)
        if op is None:
            return [], k
        dirty = [r for r in ops[op].reads if r != k and table.dirty(r, forbidden)]
        if not dirty:
            break
        k = dirty[0]
    chain = {op}
    frontier = [r for r in ops[op].reads if table.unread(r)]
    while frontier and len(chain) < MAX_UNREAD:
        r = frontier.pop()
        i = maker.get(r)
        if i is None or i in chain:
            continue
        chain.add(i)
        frontier.extend(x for x in ops[i].reads if table.unread(x))
    return sorted(chain), k


def _common(stacks: list[tuple[str, ...]]) -> tuple[str, ...]:
    if not stacks:
        return ()
    out: list[str] = []
    for level in zip(*stacks, strict=False):
        if all(x == level[0] for x in level):
            out.append(level[0])
        else:
            break
    return tuple(out)
