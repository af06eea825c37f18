"""``assert_deterministic``: the recipe's "fix random seed", as a check.

1. Forward: a copy of the model (train mode, so dropout draws) runs twice on the same inputs,
   every global generator seeded from the test's seed before each call (what ``--nn-seed``
   and ``seed_everything`` do). Every tensor of the output must be bitwise identical. Both
   calls go through one copy: state the model carries from call to call shows up here.
2. Training, with ``targets`` and ``loss_fn``: two copies each train ``steps`` steps with the
   shared loop (``_fit.train``, the same seed); the loss after every update, every gradient
   and every parameter after every update must be bitwise identical in both runs.

What is compared is only what a seed promises: the same code, inputs and seed, on the same
machine. The costs: two forwards, then two runs of ``steps`` steps (``steps + 1`` forwards
and ``steps`` backwards each); the search for where and why runs part happens only on
failure (:mod:`._nondeterminism`): the first module whose output differs (forward hooks),
the first step and parameter, and the evidence for a cause: a private generator that
advanced, state that changed during a call, CUDA ops known to be non-deterministic, and
whether the runs agree once ``torch.use_deterministic_algorithms(True)`` is on.

Randomness the check cannot see: the data order of a loader (pass the batch itself), and
anything that is the same within one process but not across processes (``hash()`` of
strings under ``PYTHONHASHSEED``, the iteration order of a set of strings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .. import _context, _messages, _rng
from .._inputs import Inputs
from .._outputs import select
from .._records import DeterminismRecord, model_name
from .._results import Determinism
from .._state import untouched
from . import _fit
from . import _nondeterminism as _why

CHECK = "assert_deterministic"
#: The fix for non-deterministic kernels, as the message gives it.
KERNEL_FIX = (
    "run with --nn-deterministic, or call torch.use_deterministic_algorithms(True) with "
    "CUBLAS_WORKSPACE_CONFIG=:4096:8 set before CUDA starts (and "
    "torch.backends.cudnn.benchmark=False)"
)


def assert_deterministic(
    model: Any,
    inputs: Any,
    targets: Any = None,
    loss_fn: Any = None,
    *,
    steps: int = 3,
    optimizer: Any = None,
    output: Any = None,
    msg: str | None = None,
) -> Determinism:
    """From the same seed, two forwards give bitwise-identical outputs; with ``targets`` and
    ``loss_fn``, two short training runs on copies give identical losses, gradients and
    parameters after each of ``steps`` updates. ``optimizer``: a factory ``params ->
    torch.optim.Optimizer`` (default Adam, lr=1e-2); ``output`` picks the tensor to compare
    (default: every tensor the model returns)."""
    __tracebackhide__ = True
    import torch

    plan = _plan(model, inputs, targets, loss_fn, output)
    steps = _fit.positive_int("steps", steps)
    if plan.problem is None and optimizer is not None:
        raise ValueError(
            "optimizer= is used only by the training runs, which need targets= and loss_fn=; "
            "pass them too, or drop optimizer= to compare forwards only."
        )
    compared_steps = steps if plan.problem is not None else 0
    facts: dict[str, Any] = {
        "steps": compared_steps,
        "mode": "train",
        "deterministic_algorithms": "on" if torch.are_deterministic_algorithms_enabled() else "off",
    }
    with untouched(model):
        net = _fit.copy_model(model)
        net.train()
        first, second = _forward(net, plan), _forward(net, plan)
        parted = _parted(first, second)
        if parted is not None:
            _context.record(_record(model, False, part="forward"))
            label, diff = parted
            found = _explain_forward(net, plan)
            raise _messages.fail(
                CHECK,
                f"two forward passes from the same seed differ: {label}: {diff.text()}.",
                msg=msg,
                evidence=found.evidence,
                cause=found.cause,
                facts=facts,
            )
        losses: tuple[float, ...] = ()
        tensors = len(first)
        if plan.problem is not None:
            runs = _Runs(plan.problem, steps, optimizer)
            part = runs.compare()
            if part is not None:
                _context.record(_record(model, False, part="training", step=part.step))
                found = runs.explain(part)
                raise _messages.fail(
                    CHECK,
                    part.headline(),
                    msg=msg,
                    evidence=found.evidence,
                    cause=found.cause,
                    facts={**facts, "optimizer": runs.optimizer_name},
                    picture=runs.picture(),
                )
            losses, tensors = tuple(runs.losses), tensors + runs.compared
    _context.record(_record(model, True, steps=compared_steps))
    return Determinism(
        output_values=sum(t.numel() for t in first),
        steps=compared_steps,
        losses=losses,
        tensors=tensors,
        deterministic_algorithms=facts["deterministic_algorithms"] == "on",
    )


def _record(model: Any, passed: bool, **fields: Any) -> DeterminismRecord:
    return DeterminismRecord(check=CHECK, model=model_name(model), passed=passed, **fields)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The validated arguments; ``problem`` is None without targets and a loss."""

    model: Any
    inputs: Inputs
    output: Any
    seed: int
    problem: _fit.Problem | None


def _plan(model: Any, inputs: Any, targets: Any, loss_fn: Any, output: Any) -> _Plan:
    import torch

    if (targets is None) != (loss_fn is None):
        given, missing = ("targets", "loss_fn") if loss_fn is None else ("loss_fn", "targets")
        raise ValueError(
            f"{given}= is given without {missing}=: the training runs need both. Pass "
            f"{missing}= too, or neither to compare forwards only."
        )
    if targets is not None:
        problem = _fit.prepare(CHECK, model, inputs, targets, loss_fn, output)
        return _Plan(model, problem.inputs, output, problem.seed, problem)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model= must be a torch.nn.Module for {CHECK} (it runs a copy, with hooks on "
            f"its modules to find where runs part); got {type(model).__name__}."
        )
    ctx = _context.current()
    seed = ctx.seed if ctx is not None and ctx.seed is not None else 0
    return _Plan(model, Inputs.of(inputs, model=model), output, seed, None)


def _forward(net: Any, plan: _Plan) -> tuple[Any, ...]:
    """The tensors of one forward of ``net`` on fresh copies of the inputs, every global
    generator seeded from the test's seed first."""
    import torch

    _rng.seed_all(plan.seed)
    with torch.no_grad():
        raw = plan.inputs.map(lambda _label, t: t.clone()).call(net)
    if plan.output is not None:
        return (select(raw, plan.output).detach().clone(),)
    found = _why.tensors_in(raw)
    if not found:
        raise ValueError(
            f"the model returned {type(raw).__name__} with no tensor in it; pass output= (a "
            "key, an index or a callable out -> Tensor) to say what to compare."
        )
    return found


def _parted(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[str, _why.Difference] | None:
    """The first output tensor that differs, labelled, with the size of the difference."""
    if len(a) != len(b):
        return "the output", _why.Difference(0, 0, 0.0, 0.0, f"{len(a)} tensors against {len(b)}")
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        diff = _why.compare(x, y)
        if diff is not None:
            label = "the output" if len(a) == 1 else f"output tensor {i}"
            return f"{label} {tuple(x.shape)}", diff
    return None


@dataclasses.dataclass(frozen=True)
class _Finding:
    evidence: list[str]
    cause: str


def _explain_forward(net: Any, plan: _Plan) -> _Finding:
    """Two more forwards with hooks (where), around the first the model's state, generators
    and ops (why); then two under deterministic algorithms (whether kernels explain it)."""
    import torch

    modules = dict(net.named_modules())
    types = {name: type(m).__name__ for name, m in modules.items()}
    states = {name: _why.state_of(m) for name, m in modules.items()}
    gens = _why.generators(net)
    trace_a = _why.Trace(net)
    watch = _why.OpWatch(trace_a)
    with watch:
        a = _forward(net, plan)
    trace_a.remove()
    moved = _why.advanced(gens, _why.generators(net))
    state_changes = {
        name: notes
        for name, m in modules.items()
        if (notes := _why.changed(states[name], _why.state_of(m)))
    }
    trace_b = _why.Trace(net)
    b = _forward(net, plan)
    trace_b.remove()
    split = _why.first_split(trace_a, trace_b)
    evidence = []
    if split is not None:
        evidence.append(split.describe(types))
    elif _parted(a, b) is None:
        evidence.append(
            "the difference did not recur in a second pair of forwards with hooks: it comes "
            "and goes, as a non-deterministic kernel's does."
        )
    kernels = _kernel_test(lambda: _parted(_forward(net, plan), _forward(net, plan)) is None)
    culprit = split.culprit if split is not None else None
    return _cause(
        _Evidence(evidence, culprit, types, moved, state_changes, watch, kernels),
        torch.are_deterministic_algorithms_enabled(),
    )


@dataclasses.dataclass(frozen=True)
class _Kernels:
    """Whether the runs agree under deterministic algorithms (None: not tried, they were
    on already) and torch's warnings about ops with no deterministic implementation."""

    agree: bool | None
    warnings: list[str]


def _kernel_test(agree: Callable[[], bool]) -> _Kernels:
    import torch

    if torch.are_deterministic_algorithms_enabled():
        return _Kernels(None, [])
    with _why.deterministic_kernels() as notes:
        result = agree()
    return _Kernels(result, notes)


@dataclasses.dataclass(frozen=True)
class _Evidence:
    lines: list[str]
    culprit: str | None
    types: dict[str, str]
    moved: list[str]  # private generators that advanced during a call
    state: dict[str, list[str]]  # module -> its own state that changed during a call
    ops: _why.OpWatch
    kernels: _Kernels
    look: str = ""  # where to look when no evidence names a module, e.g. " in the optimiser"


def _cause(ev: _Evidence, already_deterministic: bool) -> _Finding:
    """The likely source, named only with evidence, and its fix."""
    lines = list(ev.lines)
    ops = ev.ops.described(ev.types)
    if ops:
        lines.append("CUDA ops known to be non-deterministic ran: " + "; ".join(ops[:6]) + ".")
    if ev.kernels.warnings:
        lines.append("torch warns: " + "; ".join(ev.kernels.warnings[:4]) + ".")
    culprit = ev.culprit
    where = "" if culprit is None else f" in {_why.shown(culprit, ev.types.get(culprit, '?'))}"
    if ev.moved:
        return _Finding(
            lines,
            f"randomness from a generator that the seed does not reach: {', '.join(ev.moved)} "
            "advanced during one forward; torch.manual_seed (and --nn-seed) never reset it, "
            "so a clock-seeded one differs from run to run and any one differs from call to "
            "call. Fix: draw from torch's default generator (seeded by torch.manual_seed), or "
            "seed the generator from the run's seed when the run starts.",
        )
    state = ev.state.get(culprit, []) if culprit is not None else []
    if state:
        return _Finding(
            lines,
            f"state carried from call to call{where}: during one forward its "
            + "; ".join(state[:4])
            + ". Fix: compute it from the inputs instead, or keep it out of the forward (reset "
            "it before each run, update it outside the model).",
        )
    if ev.kernels.agree:
        seen = f" (seen: {', '.join(ev.ops.seen)})" if ev.ops.seen else ""
        return _Finding(
            lines,
            "non-deterministic kernels: with torch.use_deterministic_algorithms(True) the "
            f"runs agree{seen}. Fix: {KERNEL_FIX}.",
        )
    if ops or ev.kernels.warnings:
        return _Finding(
            lines,
            "ops with no deterministic implementation (listed above): even "
            "torch.use_deterministic_algorithms(True) leaves them non-deterministic. Fix: "
            "replace them (a sort-based or one-hot matmul formulation instead of atomics), "
            "or run them on the CPU.",
        )
    tried = (
        "deterministic algorithms were on already"
        if already_deterministic
        else "the difference persists with torch.use_deterministic_algorithms(True)"
    )
    if ev.kernels.agree is None and not already_deterministic:
        tried = "deterministic algorithms were not tried"
    return _Finding(
        lines,
        f"none found with evidence: no generator held by the model advanced, no state of "
        f"the module{where} changed, and {tried}. Look{where or ev.look} for randomness from outside "
        "torch's generators: the clock (time.time), os.urandom, uuid, a counter kept in a "
        "global or a class attribute, iteration over a set (hash order).",
    )


@dataclasses.dataclass(frozen=True)
class _Part:
    """Where two training runs first part: at step ``step``, in ``what``."""

    step: int
    what: str  # "loss", "gradients", "parameters"
    losses: tuple[float, float] | None = None
    differing: tuple[tuple[str, _why.Difference], ...] = ()
    checked: int = 0  # tensors compared at this step (gradients or parameters)
    all_names: tuple[str, ...] = ()  # every tensor compared at this step

    def headline(self) -> str:
        if self.what == "loss":
            a, b = self.losses or (float("nan"), float("nan"))
            return (
                f"two training runs from the same seed part at step {self.step}: the loss is "
                f"{a!r} in one and {b!r} in the other (bitwise different, {abs(a - b):.3g} "
                "apart)."
            )
        name, diff = self.differing[0]
        n, m = len(self.differing), self.checked
        if self.what == "gradients":
            return (
                f"two training runs from the same seed part at step {self.step}: the losses "
                f"agree but the gradients of {n} of {m} parameters differ, e.g. {name}: "
                f"{diff.text()}."
            )
        return (
            f"two training runs from the same seed part in update {self.step + 1}: losses and "
            f"gradients agree but {n} of {m} parameters differ after it, e.g. {name}: "
            f"{diff.text()}."
        )


class _Recorder:
    """``after_backward`` of one run: keeps each step's gradients and parameters (the
    reference run), or compares them with the reference's and keeps the first part."""

    def __init__(self, reference: _Recorder | None = None) -> None:
        self.reference = reference
        self.grads: list[dict[str, Any]] = []
        self.params: list[dict[str, Any]] = []  # after k updates, k = 1, 2, ...
        self.part: _Part | None = None
        self.compared = 0

    def __call__(self, step: int, net: Any) -> None:
        grads = {n: p.grad.detach().clone() for n, p in _trainable(net) if p.grad is not None}
        params = {n: p.detach().clone() for n, p in _trainable(net)}
        if step > 0:
            self._take("parameters", step - 1, params)
        self._take("gradients", step, grads)

    def finish(self, net: Any, updates: int) -> None:
        if updates > 0:
            self._take("parameters", updates - 1, {n: p.detach() for n, p in _trainable(net)})

    def _take(self, what: str, step: int, tensors: dict[str, Any]) -> None:
        store = self.grads if what == "gradients" else self.params
        if self.reference is None:
            store.append(tensors)
            return
        if self.part is not None:
            return
        ref_store = self.reference.grads if what == "gradients" else self.reference.params
        if step >= len(ref_store):
            return
        ref = ref_store[step]
        differing = []
        for name in ref.keys() | tensors.keys():
            if name not in ref or name not in tensors:
                differing.append(
                    (name, _why.Difference(0, 0, 0.0, 0.0, "a gradient in one run only"))
                )
                continue
            self.compared += 1
            diff = _why.compare(ref[name], tensors[name])
            if diff is not None:
                differing.append((name, diff))
        if differing:
            order = {n: i for i, n in enumerate(ref)}
            differing.sort(key=lambda item: order.get(item[0], len(order)))
            self.part = _Part(step, what, None, tuple(differing), len(ref), tuple(ref))


def _trainable(net: Any) -> list[tuple[str, Any]]:
    return [(n, p) for n, p in net.named_parameters() if p.requires_grad]


class _Runs:
    """Two training runs of ``steps`` updates on copies, compared step by step."""

    def __init__(self, problem: _fit.Problem, steps: int, optimizer: Any) -> None:
        self.problem = problem
        self.steps = steps
        self.optimizer = optimizer
        self.losses: list[float] = []
        self.other: list[float] = []
        self.compared = 0
        self.optimizer_name = ""

    def pair(
        self, on_copy: Callable[[Any], None] | None = None
    ) -> tuple[_fit.Run, _fit.Run, _Recorder]:
        first = _Recorder()
        run_a = self._run(first, on_copy)
        second = _Recorder(first)
        run_b = self._run(second, on_copy)
        return run_a, run_b, second

    def _run(self, recorder: _Recorder, on_copy: Callable[[Any], None] | None) -> _fit.Run:
        run = _fit.train(
            self.problem.model,
            self.problem,
            steps=self.steps,
            optimizer=self.optimizer,
            after_backward=recorder,
            on_copy=on_copy,
        )
        recorder.finish(run.model, run.updates)
        return run

    def compare(self) -> _Part | None:
        run_a, run_b, second = self.pair()
        self.losses, self.other = list(run_a.losses), list(run_b.losses)
        self.optimizer_name = run_a.optimizer
        self.compared = len(self.losses) + second.compared
        return _first_part(self.losses, self.other, second.part)

    def explain(self, part: _Part) -> _Finding:
        """Rerun the pair with hooks on the forward of step ``part.step`` and an op watch;
        then once more under deterministic algorithms."""
        import torch

        traces: list[_why.Trace] = []

        def attach(net: Any) -> None:
            traces.append(_why.Trace(net, at_call=part.step))

        first = _Recorder()
        with _why.OpWatch() as watch:
            run_a = self._run(first, attach)
        second = _Recorder(first)
        run_b = self._run(second, attach)
        types = {name: type(m).__name__ for name, m in run_a.model.named_modules()}
        again = _first_part(list(run_a.losses), list(run_b.losses), second.part)
        lines = []
        if again is None:
            lines.append(
                "the difference did not recur in a second pair of runs: it comes and goes, as "
                "a non-deterministic kernel's does."
            )
        culprit = None
        split = _why.first_split(traces[0], traces[1]) if part.what != "parameters" else None
        if split is not None:
            rounded = "the loss rounds to the same value, but " if part.what == "gradients" else ""
            lines.append(rounded + split.describe(types))
            culprit = split.culprit
        elif part.what == "gradients":
            lines.append(_gradient_origin(part, traces[0], types))
        elif part.what == "parameters":
            lines.append(
                "the gradients agree, so the optimiser's update itself is non-deterministic "
                f"({self.optimizer_name}); parameters: " + _listed(part.differing)
            )
        if part.what != "parameters" and len(part.differing) > 1:
            lines.append(f"{part.what} that differ: " + _listed(part.differing))

        look = (
            f" in the optimiser's step ({self.optimizer_name})" if part.what == "parameters" else ""
        )

        def pair_agrees() -> bool:
            a, b, rec = self.pair()
            return _first_part(list(a.losses), list(b.losses), rec.part) is None

        kernels = _kernel_test(pair_agrees)
        return _cause(
            _Evidence(lines, culprit, types, [], {}, watch, kernels, look),
            torch.are_deterministic_algorithms_enabled(),
        )

    def picture(self) -> str:
        from .. import _text_pictures

        rows = [("step", "loss, run 1", "loss, run 2", "")]
        for k in range(max(len(self.losses), len(self.other))):
            a = self.losses[k] if k < len(self.losses) else float("nan")
            b = self.other[k] if k < len(self.other) else float("nan")
            rows.append((str(k), repr(a), repr(b), "" if _same_float(a, b) else "differs"))
        return "the loss after each update in both runs:\n" + _text_pictures.table(rows)


def _first_part(a: list[float], b: list[float], tensors: _Part | None) -> _Part | None:
    """The earliest place two runs part: a loss at step k comes before the gradients of step
    k, which come before the parameters after update k + 1."""
    loss_step = next(
        (
            k
            for k in range(max(len(a), len(b)))
            if k >= len(a) or k >= len(b) or not _same_float(a[k], b[k])
        ),
        None,
    )
    if tensors is not None and (loss_step is None or tensors.step < loss_step):
        return tensors
    if loss_step is None:
        return None
    nan = float("nan")
    la = a[loss_step] if loss_step < len(a) else nan
    lb = b[loss_step] if loss_step < len(b) else nan
    return _Part(loss_step, "loss", (la, lb))


def _same_float(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


def _gradient_origin(part: _Part, trace: _why.Trace, types: dict[str, str]) -> str:
    """Gradients flow backwards: the parameter latest in forward order whose gradient differs
    is nearest to where the backward first differs."""
    order: dict[str, int] = {}
    for i, ev in enumerate(trace.events):
        if ev.kind == "output":
            order.setdefault(ev.module, i)
    names = [n for n, _ in part.differing]

    def owner(name: str) -> str:
        return name.rsplit(".", 1)[0] if "." in name else ""

    latest = max(names, key=lambda n: order.get(owner(n), -1))
    module = owner(latest)
    start = order.get(module, -1)
    agreeing = {owner(n) for n in part.all_names if n not in names}
    later = sorted((i, m) for m, i in order.items() if i > start)
    stop = next((i for i, m in later if m in agreeing), None)
    between = [
        m
        for i, m in later
        if (stop is None or i < stop) and m and m not in agreeing and not module.startswith(m + ".")
    ]
    between = between[:4]
    suspects = [_why.shown(m, types.get(m, "?")) for m in between]
    suspects.append(_why.shown(module, types.get(module, "?")) + " itself")
    return (
        "every module's output agrees in the forward; the backward parts first at "
        f"{latest} (the latest "
        "parameter in forward order whose gradient differs; those after it agree): the "
        f"non-deterministic op is in the backward of {' or '.join(suspects)}."
    )


def _listed(items: tuple[tuple[str, _why.Difference], ...]) -> str:
    shown = [f"{n} ({d.text()})" for n, d in items[:6]]
    return "; ".join(shown) + (f"; and {len(items) - 6} more" if len(items) > 6 else "")
