"""The one driver of every structural check: what a check declares, and everything else.

A structural check asks, along one axis (samples for batch mixing, steps for causality),
whether output unit ``i`` depends on input unit ``j`` where that is forbidden. It declares
(:class:`Declaration`) what a unit is (an :class:`Axis`), which pairs are allowed, how it
names a pair (its :class:`Words`), its two ways of answering (by gradient, by perturbation)
and its likely causes; the driver (:func:`check`) does the rest, in this order:

1. validate the arguments (``TypeError``/``ValueError`` naming them) and normalise the inputs;
2. prepare the model: eval mode (or train), parameters frozen, everything restored afterwards
   (``_state.untouched``), the batch that entered the model captured;
3. run: ``method="auto"`` picks grad for float inputs and for token ids an ``nn.Embedding``
   reads where perturbation could not be exact (``_dependency.auto_method``), falls back to
   perturbation when no gradient reaches the inputs or gradients are not finite, and confirms
   by perturbation when the forward cut the gradient path; once, or once per variant (e.g.
   each attention backend); a pass that saw changes it could not tell from rerun noise says
   so (a ``PrecisionWarning``);
4. record what it saw for the report and the pictures;
5. fail with the one message of every structural check (headline, evidence, the rerun noise,
   location, cause, reproduction, the dependency matrix), or return what it measured.

The engine (codes, runs, reductions, perturbations) is :mod:`pytest_nnrecipe._dependency`;
what a run found is a :class:`~._verdict.Verdict`.
"""

from __future__ import annotations

import dataclasses
import textwrap
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from .. import _context, _messages, _state, _text_pictures
from .. import _dependency as dep
from .._inputs import Inputs
from .._records import DependencyRecord, model_name
from .._results import DependencyResult
from ._evidence import Evidence
from ._localise import Origin, Search, describe, localise
from ._verdict import (
    Verdict,
    confirm_cut,
    module_types,
    percent,
    strength_text,
    warn_within_noise,
)

R = TypeVar("R", bound=DependencyResult)


@dataclasses.dataclass(frozen=True)
class Axis:
    """What a unit is: a sample along the batch, or a step along time.

    ``unit`` is what the selecting argument (``unit + "s"``: ``samples=``, ``positions=``)
    picks; ``label`` names the matrix's rows and columns (``output <label>``,
    ``input <label>``); ``count(ins, request, batch_size)`` is the number of units, after
    checking that there are enough.
    """

    name: str
    unit: str
    label: str
    count: Callable[[Inputs, Request, int], int]
    #: the unit dimension of an input (``None``: it has none), and of the checked output
    input_dim: Callable[[dep.Source], int | None]
    output_dim: Callable[[Setup], int | None]
    #: the argument a user may have left at its default by mistake (``batch_dim=1``)
    alternative: Alternative

    @property
    def argument(self) -> str:
        return self.unit + "s"


@dataclasses.dataclass(frozen=True)
class Alternative:
    """An axis argument a user may have left at its default by mistake, suggested when the
    check failed with ``default``, the dependency starts in a module whose layout expects
    ``value`` (``fits``: a time-major LSTM, a channels-first convolution) and the check passes
    with ``value``; ``layout``: how the message names that layout."""

    argument: str
    default: int
    value: int
    fits: Callable[[torch.nn.Module], bool]
    layout: str

    def suggested(self, origin: Origin | str | None) -> torch.nn.Module | None:
        """The module where the dependency starts, if its layout fits the alternative."""
        if not isinstance(origin, Origin):
            return None
        mods = [m for _n, m in origin.modules] + [origin.module]
        return next((m for m in mods if m is not None and self.fits(m)), None)


@dataclasses.dataclass(frozen=True)
class Words:
    """How a check names what it checks and finds.

    ``pair``: a forbidden pair in the headline, ``short``: in the list of the worst (formats of
    ``{i}``, the output unit, and ``{j}``, the input unit); ``checked``: the pairs it checks;
    ``found``: the label of the forbidden pairs it found; ``train_norm``: the likely cause when
    the model runs in train mode with a BatchNorm (``{norm}``, its class).
    """

    pair: str
    short: str
    checked: str
    found: str
    train_norm: str

    @classmethod
    def table(cls, text: str) -> Words:
        """Words from a table of ``name: words`` entries, one a line; longer words continue on
        the lines below, indented further (``train norm`` is ``train_norm``)."""
        entries: dict[str, list[str]] = {}
        last: list[str] = []
        for line in textwrap.dedent(text).strip("\n").splitlines():
            name, sep, words = line.partition(":")
            if line[:1].isspace() or not sep:
                last.append(line.strip())
                continue
            last = entries.setdefault(name.strip().replace(" ", "_"), [])
            last.append(words.strip())
        fields = [f.name for f in dataclasses.fields(cls)]
        if sorted(entries) != sorted(fields):
            raise ValueError(f"a Words table has the entries {fields}; got {list(entries)}.")
        return cls(**{name: " ".join(parts) for name, parts in entries.items()})


@dataclasses.dataclass(frozen=True)
class Declaration:
    """What one structural check declares, in this order; :func:`check` does everything else.

    ``check``: its public name; ``axis``: what a unit is; ``words``: how it names pairs;
    ``allowed(rows, cols)``: which (output unit, input unit) pairs are allowed (all others are
    forbidden); ``passes``: its two ways of answering, by gradient and by perturbation;
    ``likely_cause(evidence)``: what the evidence (:class:`~._evidence.Evidence`: the verdict
    and where the dependency starts) points at, or ``None`` when no known signature matches
    (a train-mode BatchNorm is the driver's to name, in the check's words).
    """

    check: str
    axis: Axis
    words: Words
    allowed: Callable[[int, int], np.ndarray]
    passes: tuple[Callable[[Setup], Verdict], Callable[[Setup], Verdict]]
    likely_cause: Callable[[Evidence], str | None]


@dataclasses.dataclass(frozen=True)
class Variants:
    """A check that runs under variants (e.g. attention backends) and reports each.

    ``names``: the variants to run, each through ``run(name, device, decide)``, which returns
    ``decide()`` under that variant or why it cannot run here; ``None``: run once, as
    configured, reported as ``"default"``. ``argument``/``value``: the argument that names
    them, as given.
    """

    names: tuple[str, ...] | None
    run: Callable[[str, torch.device, Callable[[], Verdict]], Verdict | str]
    argument: str  # "sdpa_backends"
    value: Any
    noun: str  # "backend"
    kind: str  # "attention backend"
    verb: str  # what a forbidden pair does in a variant's summary: "leak"
    holds: str  # a variant's summary when nothing is forbidden: "causal"

    def summary(self, v: Verdict | str) -> str:
        """One variant's outcome in a few words."""
        if isinstance(v, str):
            return v
        bad = int(v.violations.sum())
        if bad:
            return f"{self.verb}s {bad} of {v.n_forbidden} pairs"
        if v.undecided.any():
            return f"inconclusive for {int(v.undecided.sum())} pairs"
        return self.holds

    def none_ran(self, device: torch.device, why: dict[str, Verdict | str]) -> ValueError:
        """The misuse error when no variant could run (each says why)."""
        return ValueError(
            f"{self.argument}={self.value!r}: no {self.noun} could run the model on {device} "
            f"({'; '.join(f'{k}: {v}' for k, v in why.items())}). Pass {self.noun}s "
            f"available on this device, or {self.argument}=None."
        )


@dataclasses.dataclass(frozen=True)
class Request:
    """One call of a structural check: the user's arguments, as given. The arguments every
    structural check takes come first (``model`` to ``msg``), then the units it selects and the
    output's batch dimension, then what only some checks take."""

    model: Any
    inputs: Any
    batch_dim: int = 0
    output: Any = None
    method: str = "auto"
    train: bool = False
    msg: str | None = None
    units: int | Sequence[int] | None = None  # samples= / positions=
    output_batch_dim: int | None = None
    time_dim: int | None = None
    output_time_dim: int | None = None
    max_batch: int | None = None
    variants: Variants | None = None


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything one way of answering needs: the model run, the inputs, the units."""

    run: dep.Runner
    ins: Inputs
    sources: dict[str, dep.Source]
    modules: list[torch.nn.Module]
    batch: int  # the batch size
    size: int  # units along the axis: the batch size, or the sequence's steps
    chosen: list[int]  # the units whose pairs are checked (``samples=``/``positions=``)
    obd: int  # the output's batch dimension
    otd: int | None  # the output's time dimension (time axis only)
    seed: int
    max_batch: int  # copies of a sequence per pass (time axis)
    allowed: Callable[[int, int], np.ndarray]  # (output units, input units) -> allowed pairs

    def frame(self, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(allowed, checked)`` over ``rows`` output units (default: as many as inputs):
        the declared pattern, and the pairs among the chosen units."""
        rows = self.size if rows is None else rows
        inside_cols = np.zeros(self.size, dtype=bool)
        inside_cols[self.chosen] = True
        inside_rows = np.zeros(rows, dtype=bool)
        inside_rows[[p for p in self.chosen if p < rows]] = True
        return self.allowed(rows, self.size), np.outer(inside_rows, inside_cols)


@dataclasses.dataclass(frozen=True)
class Finding:
    """What a passing check measured (the check turns it into its public result)."""

    verdict: Verdict
    mode: str
    chosen: tuple[int, ...]
    pairs: int
    variants: dict[str, str]

    def result(self, cls: Callable[..., R], **fields: Any) -> R:
        """The check's public result: the matrix, what was checked, how, and ``fields``."""
        v = self.verdict
        return cls(
            matrix=v.depends,
            checked=v.checked,
            method=v.method,
            mode=self.mode,
            pairs=self.pairs,
            noise=v.noise,
            **fields,
        )


def check(decl: Declaration, req: Request) -> Finding:
    """Run the structural check ``decl`` on ``req``: fail with its message, or say what it
    measured (see the module docstring for the steps)."""
    __tracebackhide__ = True
    setup, method = _prepare(decl, req)
    verdicts, batch, origin = _run(decl, setup, req, method)
    ran = {k: v for k, v in verdicts.items() if isinstance(v, Verdict)}
    for v in ran.values():
        warn_within_noise(decl.check, v)
    device = setup.ins.tensors()[0][1].device
    if not ran and req.variants is not None:
        raise req.variants.none_ran(device, verdicts)
    failing = [k for k, v in ran.items() if v.violations.any() or v.undecided.any()]
    shown = ran[failing[0]] if failing else next(iter(ran.values()))
    variants = req.variants
    summary = {} if variants is None else {k: variants.summary(v) for k, v in verdicts.items()}
    mode = dep.mode_of(setup.modules, req.train)
    record = DependencyRecord(
        check=decl.check,
        model=_model_label(req.model),
        passed=not failing,
        matrix=shown.depends.copy(),
        allowed=shown.allowed.copy(),
        inconclusive=shown.undecided.copy() if shown.undecided.any() else None,
        method=shown.method,
        mode=mode,
        batch=batch,
        batch_dim=req.batch_dim,
        time_dim=req.time_dim,
        unit=decl.axis.label,
        backends=None if variants is None else summary,
    )
    _context.record(record)
    allowed = decl.allowed(setup.size, setup.size)
    pairs = int((~allowed[np.ix_(setup.chosen, setup.chosen)]).sum())
    if failing:
        facts = {"method": shown.method, "device": device, "mode": mode}
        hint = _alternative(decl, req, origin)
        told = _Told(shown, failing, summary, facts, pairs, origin, hint)
        raise AssertionError(_message(decl, told, req, setup))
    return Finding(shown, mode, tuple(setup.chosen), pairs, summary)


def _prepare(decl: Declaration, req: Request) -> tuple[Setup, str]:
    """Check the arguments (``TypeError``/``ValueError`` naming them); the setup of the runs
    and the method ``"auto"`` stands for (``_dependency.auto_method``)."""
    dep.check_model(req.model)
    dep.check_method(req.method)
    ins = Inputs.of(req.inputs, model=req.model)
    n, _labels = ins.batched(req.batch_dim)
    axis = decl.axis
    size = axis.count(ins, req, n)
    chosen = dep.selection(req.units, size, name=axis.argument, unit=axis.unit)
    timed = req.time_dim is not None
    sources = dep.sources_of(ins, req.batch_dim, req.time_dim, size if timed else None)
    modules = dep.modules_of(req.model)
    carriers = [t for label, t in ins.tensors() if axis.name == "batch" or _timed(sources[label])]
    all_float = all(t.is_floating_point() for t in carriers)
    if req.method == "grad" and not all_float and not dep.has_embedding_reader(modules):
        raise ValueError(
            "method='grad' needs float inputs or integer inputs read by nn.Embedding modules "
            "of the model; no gradient reaches these integer inputs. Use method='perturb'."
        )
    ctx = _context.current()
    seed = 0 if ctx is None or ctx.seed is None else ctx.seed
    otd = None
    if timed:
        otd = req.time_dim if req.output_time_dim is None else req.output_time_dim
    setup = Setup(
        run=dep.Runner(req.model, req.output, seed),
        ins=ins,
        sources=sources,
        modules=modules,
        batch=n,
        size=size,
        chosen=chosen,
        obd=req.batch_dim if req.output_batch_dim is None else req.output_batch_dim,
        otd=otd,
        seed=seed,
        max_batch=req.max_batch or n,
        allowed=decl.allowed,
    )
    method = req.method if req.method != "auto" else dep.auto_method(all_float, modules)
    return setup, method


def _run(
    decl: Declaration, setup: Setup, req: Request, method: str, locate: bool = True
) -> tuple[dict[str, Verdict | str], Any, Origin | str | None]:
    """Each variant's verdict (or why it could not run), the batch that entered the model and,
    when a variant failed, where the dependency starts (:func:`._localise.localise`; a ``str``
    says why it could not be found); the model in eval mode (or train), its parameters frozen,
    all of it restored afterwards."""
    verdicts: dict[str, Verdict | str] = {}
    origin: Origin | str | None = None
    device = setup.ins.tensors()[0][1].device

    def decide() -> Verdict:
        return _decide(decl, setup, method, req.method == "auto")

    named = req.variants.names if req.variants is not None else None
    with (
        _state.untouched(*setup.modules),
        dep.frozen(setup.modules, train=req.train),
        dep.first_batch(req.model, setup.ins) as holder,
    ):
        if req.variants is None or named is None:
            verdicts["default"] = decide()
        else:
            for name in named:
                verdicts[name] = req.variants.run(name, device, decide)
        failing = [
            k
            for k, v in verdicts.items()
            if isinstance(v, Verdict) and (v.violations.any() or v.undecided.any())
        ]
        if locate and failing and verdicts[failing[0]].violations.any():  # type: ignore[union-attr]
            origin = _origin(decl, setup, req, failing[0])
    return verdicts, holder.get("batch"), origin


def _origin(decl: Declaration, setup: Setup, req: Request, variant: str) -> Origin | str | None:
    """Where the forbidden dependency starts, under the failing ``variant``; never masks the
    failure: a search that breaks says why instead."""
    axis = decl.axis
    search = Search(
        run=setup.run,
        ins=setup.ins,
        sources=setup.sources,
        modules=setup.modules,
        size=setup.size,
        chosen=setup.chosen,
        frame=setup.frame(),
        input_dim=axis.input_dim,
        prefer=tuple(d for d in (axis.output_dim(setup),) if d is not None),
        seed=setup.seed,
        names=_module_names(req.model),
    )
    device = setup.ins.tensors()[0][1].device
    try:
        if req.variants is None or req.variants.names is None:
            return localise(search)
        found = req.variants.run(variant, device, lambda: localise(search))  # type: ignore[arg-type,return-value]
        return found if not isinstance(found, str) else None  # type: ignore[return-value]
    except Exception as e:  # the message must still come: say why the search stopped
        return f"{type(e).__name__}: {str(e)[:120]}"


def _model_label(model: Any) -> str:
    """The report's name of the model: its class; for a callable, the class of the first
    module it reaches and the callable (``GRU (lambda in test_lm)``)."""
    name = model_name(model)
    if isinstance(model, torch.nn.Module):
        return name
    reached = dep.reach(model).modules
    return f"{type(reached[0][1]).__name__} ({name})" if reached else name


def _module_names(model: Any) -> dict[int, str]:
    """The names the message gives the modules a model reaches: ``""`` for the model itself,
    the variable a callable reads them from (``net`` for ``lambda x: net(x)``)."""
    if isinstance(model, torch.nn.Module):
        return {id(model): ""}
    names = {}
    for where, m in dep.reach(model).modules:
        quoted = where.split("'")
        names[id(m)] = quoted[1] if len(quoted) > 2 else where
    return names


def _alternative(decl: Declaration, req: Request, origin: Origin | str | None) -> str | None:
    """Why the axis argument was likely given wrong (``batch_dim=1`` for a time-major model),
    when the evidence says so: the dependency starts in a module of the other layout, and the
    check passes with the other value (run again, without localisation or record)."""
    alt = decl.axis.alternative
    module = alt.suggested(origin)
    if getattr(req, alt.argument) != alt.default or module is None:
        return None
    changed: dict[str, Any] = {alt.argument: alt.value, "variants": None}
    other = dataclasses.replace(req, **changed)
    try:
        setup, method = _prepare(decl, other)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verdicts, _batch, _origin = _run(decl, setup, other, method, locate=False)
    except (ValueError, TypeError, RuntimeError, IndexError):
        return None
    ran = [v for v in verdicts.values() if isinstance(v, Verdict)]
    if not ran or any(v.violations.any() or v.undecided.any() for v in ran):
        return None
    return (
        f"the check passes with {alt.argument}={alt.value}, and the dependency starts in a "
        f"{describe(module)}, which expects {alt.layout}: if the inputs are laid out that way, "
        f"pass {alt.argument}={alt.value} (the default {alt.argument}={alt.default} reads "
        "another dimension)."
    )


def _timed(src: dep.Source) -> bool:
    return src.time_dim is not None


def _decide(decl: Declaration, setup: Setup, method: str, auto: bool) -> Verdict:
    """One run of the check: by gradient or by perturbation; with ``auto``, perturbation also
    when no gradient reaches the inputs or gradients are inconclusive, and to confirm a
    gradient path the forward cut."""
    by_grad, by_perturbation = decl.passes
    if method == "grad":
        try:
            verdict = by_grad(setup)
        except dep.Unreachable:
            if not auto:
                raise
            return by_perturbation(setup)
        if auto and verdict.undecided.any() and not verdict.violations.any():
            verdict = by_perturbation(setup)
            verdict.method = "perturb (grad was inconclusive: non-finite gradients)"
        elif auto and verdict.cut and not verdict.violations.any():
            verdict = confirm_cut(verdict, lambda: by_perturbation(setup))
        return verdict
    return by_perturbation(setup)


def _likely_cause(decl: Declaration, told: _Told, setup: Setup, train: bool) -> str:
    """The check's likely cause from the evidence, or what was seen when nothing matches; a
    train-mode BatchNorm is named in the check's words."""
    mods = module_types(setup.modules)
    norms = [m for m in mods if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if train and norms:
        return decl.words.train_norm.format(norm=type(norms[0]).__name__)
    origin = told.origin if isinstance(told.origin, Origin) else None
    evidence = Evidence(told.shown, origin)
    return decl.likely_cause(evidence) or evidence.seen(decl.axis.label)


@dataclasses.dataclass(frozen=True)
class _Told:
    """What the failure message tells: the verdict shown, the failing variants, each
    variant's summary, the facts of the "Checked:" line and how many pairs were checked."""

    shown: Verdict
    failing: list[str]
    summary: dict[str, str]
    facts: dict[str, Any]
    pairs: int
    origin: Origin | str | None
    hint: str | None


def _message(decl: Declaration, told: _Told, req: Request, setup: Setup) -> str:
    """The failure message every structural check shares (see ``_messages.compose``)."""
    v = told.shown
    cause = _likely_cause(decl, told, setup, req.train)
    if told.hint is not None:
        cause = f"{told.hint} Otherwise: {cause}"
    covered = dep.covered(setup.chosen, setup.size, decl.axis.unit)

    def arrow(i: int, j: int) -> str:
        return decl.words.short.format(i=i, j=j)

    n_bad = int(v.violations.sum())
    n_unk = int(v.undecided.sum())
    evidence = [f"{decl.words.found}: {percent(n_bad, v.n_forbidden)}"] if n_bad else []
    if n_bad:
        worst = ", ".join(
            arrow(i, j) if v.strength is None else f"{arrow(i, j)} ({s:.2g})"
            for i, j, s in v.worst()
        )
        scale = "" if v.strength is None else f" ({strength_text(v.method)})"
        evidence.append(f"Worst{scale}: {worst}")
        i, j = v.worst(1)[0][:2]
        title = decl.words.pair.format(i=i, j=j) + _under(req.variants, told.failing) + "."
    else:
        rows_u, cols_u = np.nonzero(v.undecided)
        output, _, input_ = arrow(int(rows_u[0]), int(cols_u[0])).partition(" <- ")
        title = (
            f"inconclusive: the gradient of {output} with respect to {input_} is not finite "
            "(NaN/Inf), so whether it depends on it cannot be decided."
        )
        cause = (
            "the forward pass produces NaN/Inf for these inputs, or an op has an infinite "
            "derivative here (sqrt or log at 0, x/0). Fix the model or inputs, or pass "
            "method='perturb', which compares outputs instead of gradients."
        )
    if n_unk:
        evidence.append(
            f"Inconclusive (non-finite gradient, neither allowed nor shown to leak): "
            f"{percent(n_unk, v.n_forbidden)}"
        )
    if v.note:
        evidence.append(v.note)
    if v.noise is not None:
        evidence.append(v.noise.text())
    if req.variants is not None and req.variants.names:
        kinds = req.variants.kind[0].upper() + req.variants.kind[1:] + "s"
        evidence.append(f"{kinds}: " + "; ".join(f"{k}: {s}" for k, s in told.summary.items()))
    evidence.append(f"Covered: {covered} ({told.pairs} {decl.words.checked})")
    if isinstance(told.origin, Origin):
        o = told.origin
        ops = f", at {o.op_text()}" if o.ops else ""
        evidence.append(f"Where: it starts in {o.where()}{ops} ({o.cost()})")
    elif n_bad:
        why = told.origin or "no tensor of the forward shows it under every reading"
        evidence.append(f"Where: not localised ({why})")
    label = decl.axis.label
    picture = _text_pictures.dependency_matrix(
        v.depends,
        v.allowed,
        rows=f"output {label}",
        cols=f"input {label}",
        inconclusive=v.undecided,
    )
    return _messages.compose(
        decl.check,
        title,
        msg=req.msg,
        evidence=evidence,
        cause=cause,
        facts=told.facts,
        picture=picture,
    )


def _under(variants: Variants | None, failing: list[str]) -> str:
    """`` under the math and flash attention backends``: where it failed, when it ran per variant."""
    if variants is None or not variants.names:
        return ""
    return f" under the {' and '.join(failing)} {variants.kind}" + ("s" if len(failing) > 1 else "")


# --- the axes ---------------------------------------------------------------------------------


def _sample_count(ins: Inputs, request: Request, n: int) -> int:
    if n < 2:
        raise ValueError(
            f"inputs= have batch size {n} along batch_dim={request.batch_dim}; batch mixing "
            "needs at least 2 samples. Pass a batch of 2 or more (or the right batch_dim=)."
        )
    return n


def _step_count(ins: Inputs, request: Request, n: int) -> int:
    time_dim, batch_dim = request.time_dim, request.batch_dim
    for label, t in ins.tensors():
        if isinstance(time_dim, bool) or not isinstance(time_dim, int):
            raise TypeError(f"time_dim={time_dim!r} must be an int (a dimension of {label}).")
        if -t.dim() <= time_dim < t.dim():
            if time_dim % t.dim() == batch_dim % t.dim():
                raise ValueError(
                    f"time_dim={time_dim} and batch_dim={batch_dim} name the same dimension of "
                    f"{label} (shape {tuple(t.shape)}); pass the dimension that indexes steps."
                )
            steps = int(t.shape[time_dim])
            if steps < 2:
                raise ValueError(
                    f"{label} has {steps} step along time_dim={time_dim} (shape "
                    f"{tuple(t.shape)}); causality needs a sequence of at least 2 steps. "
                    "Pass a longer sequence or the right time_dim=."
                )
            return steps
    shapes = ", ".join(f"{label} {tuple(t.shape)}" for label, t in ins.tensors())
    raise ValueError(
        f"time_dim={time_dim} is out of range for every input ({shapes}); pass the dimension "
        "that indexes steps."
    )


def _seq_first(m: torch.nn.Module) -> bool:
    """A module that reads dim 0 as time: an RNN or attention without ``batch_first=True``."""
    if isinstance(m, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
        m = m.self_attn
    kinds = (torch.nn.RNNBase, torch.nn.MultiheadAttention)
    return isinstance(m, kinds) and not getattr(m, "batch_first", False)


def _channels_first(m: torch.nn.Module) -> bool:
    """A module that reads dim 1 as channels and the last as steps: a 1-d convolution."""
    return isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.modules.conv._ConvNd))


#: Units are samples: the inputs' (and outputs') batch dimension.
SAMPLES = Axis(
    "batch",
    unit="sample",
    label="sample",
    count=_sample_count,
    input_dim=lambda src: src.batch_dim,
    output_dim=lambda setup: setup.obd,
    alternative=Alternative(
        "batch_dim", 0, 1, fits=_seq_first, layout="time-major inputs (T, B, ...)"
    ),
)
#: Units are steps: the inputs' (and outputs') time dimension (``time_dim=``).
STEPS = Axis(
    "time",
    unit="position",
    label="step",
    count=_step_count,
    input_dim=lambda src: src.time_dim,
    output_dim=lambda setup: setup.otd,
    alternative=Alternative(
        "time_dim", 1, -1, fits=_channels_first, layout="channels-first inputs (B, C, T)"
    ),
)
