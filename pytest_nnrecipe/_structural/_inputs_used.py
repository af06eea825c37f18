"""``assert_inputs_used``: every input the model is given influences its output.

An input the model ignores is a silent bug: the classic is the ``attention_mask`` a wrapper
takes and never passes on to the encoder, or a feature column a wrong slice drops. Each input
tensor (each positional argument, each dict entry; with ``feature_dim=``, each feature column
of the float inputs) is decided with the dependency engine of the structural checks
(:mod:`.._dependency`), in two passes:

1. **Gradient** (float inputs): one forward with the inputs as gradient leaves (the model's
   parameters frozen), one backward of a random cotangent over the whole output. A non-zero
   gradient proves the input (column) is used. A zero gradient proves nothing on its own: the
   forward may cut the gradient path (``x > 0``, ``.detach()``) and still read the values.
2. **Perturbation** (integer and boolean inputs, and whatever the gradient did not show): the
   input's values are changed (floats by noise of their own spread, integer ids to other ids
   present in the tensor, 0/1 masks and booleans flipped, keeping each row's first position so
   that a mask stays valid) and the model runs again; the output is compared with a baseline
   run under the engine's :class:`~.._dependency.Comparison`: bitwise where reruns are
   bitwise identical, else above a multiple of the measured rerun noise.

An input is unused only when its gradient is zero (or does not apply) and changing it changed
no output value. Cost: one forward and backward (float inputs), two forwards for the baseline
and the rerun noise, and one forward per input (or column) the gradient did not show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch

from .. import _context, _messages, _state
from .. import _dependency as dep
from .._inputs import Inputs
from .._records import InputsUsedRecord, model_name
from .._results import InputsUsed

CHECK = "assert_inputs_used"
#: Changes tried before an input that is not 0/1 counts as unused (only an input that looks
#: unused gets more than one).
TRIES = 3


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One thing checked: an input (``column`` None) or one feature column of it."""

    label: str
    name: str
    floating: bool
    column: int | None = None
    dim: int | None = None  # the dimension a column is taken along

    @property
    def shown(self) -> str:
        if self.column is None:
            return self.name
        return f"{self.name} column {self.column}"


def assert_inputs_used(
    model: Any,
    inputs: Any,
    *,
    output: Any = None,
    feature_dim: int | None = None,
    ignore: Iterable[str] | str = (),
    train: bool = False,
    msg: str | None = None,
) -> InputsUsed:
    """Every input tensor influences the output: each positional argument, each dict entry
    (``input_ids``, ``attention_mask``, ``token_type_ids``, ``pixel_values``, ...) and, with
    ``feature_dim``, each feature column of the float inputs. ``ignore``: names of inputs that
    ride along unused on purpose (``"labels"``, or ``"inputs[1]"`` for a positional one);
    ``output`` picks the tensor compared (default: the tensor, ``logits``, or the first
    tensor); ``train``: run in train mode (dropout reseeded for every call)."""
    __tracebackhide__ = True
    dep.check_model(model)
    ins = Inputs.of(inputs, model=model if isinstance(model, torch.nn.Module) else None)
    tensors = ins.tensors()
    if not tensors:
        raise ValueError("inputs= holds no tensor; pass the batch the model takes as input.")
    if not isinstance(train, bool):
        raise TypeError(f"train={train!r} must be True or False.")
    names = _names(ins)
    ignored = _ignored(ignore, names)
    units = _units(ins, names, ignored, feature_dim)
    ctx = _context.current()
    seed = ctx.seed if ctx is not None and ctx.seed is not None else 0
    modules = dep.modules_of(model)
    runner = dep.Runner(model, output, seed)
    mode = dep.mode_of(modules, train)
    with (
        _state.untouched(*modules),
        dep.frozen(modules, train=train),
        dep.no_inference_fastpath(),
    ):
        shown = _by_gradient(runner, ins, units, seed)
        rest = [u for u in units if u not in shown]
        noise, moved, tried = None, [], {}
        if rest:
            with torch.no_grad():
                comparison = dep.Comparison(runner, ins)
                comparison.measure([])
                gen = torch.Generator().manual_seed(seed)
                for unit in rest:
                    tried[unit] = _perturbed(comparison, ins, unit, gen)
                    if tried[unit][0]:
                        moved.append(unit)
                noise = comparison.noise()
    unused = [u for u in units if u not in shown and u not in moved]
    _context.record(
        InputsUsedRecord(
            check=CHECK,
            model=model_name(model),
            passed=not unused,
            inputs=len({u.label for u in units}),
            columns=sum(u.column is not None for u in units),
            unused=", ".join(u.shown for u in unused)[:80] or None,
            mode=mode,
        )
    )
    if unused:
        raise _failure(unused, units, tried, noise, mode, msg)
    return InputsUsed(
        inputs=tuple(dict.fromkeys(u.name for u in units)),
        by_gradient=tuple(u.shown for u in units if u in shown),
        by_perturbation=tuple(u.shown for u in moved),
        ignored=tuple(name for label, name in names.items() if label in ignored),
        columns=sum(u.column is not None for u in units),
        mode=mode,
        noise=noise,
    )


def _names(ins: Inputs) -> dict[str, str]:
    """label -> how the user names the input: the dict key, or ``inputs[i]``."""
    out = {}
    for i, (label, _value) in enumerate(ins.items()):
        out[label] = list(ins.kwargs)[i - len(ins.args)] if i >= len(ins.args) else label
    return out


def _ignored(ignore: Any, names: dict[str, str]) -> set[str]:
    if isinstance(ignore, str):
        ignore = (ignore,)
    try:
        wanted = list(ignore)
    except TypeError:
        raise TypeError(
            f"ignore={ignore!r} must be a name or a sequence of input names, e.g. "
            "ignore=('labels',)."
        ) from None
    by_name = {name: label for label, name in names.items()} | {label: label for label in names}
    bad = [w for w in wanted if not isinstance(w, str) or w not in by_name]
    if bad:
        raise ValueError(
            f"ignore={tuple(wanted)!r} names {bad[0]!r}, which is not one of the inputs "
            f"({', '.join(repr(n) for n in names.values())}); pass the names of inputs that "
            "ride along unused."
        )
    return {by_name[w] for w in wanted}


def _units(
    ins: Inputs, names: dict[str, str], ignored: set[str], feature_dim: int | None
) -> list[_Unit]:
    if feature_dim is not None and (
        isinstance(feature_dim, bool) or not isinstance(feature_dim, int)
    ):
        raise TypeError(f"feature_dim={feature_dim!r} must be an int dimension, e.g. -1.")
    units: list[_Unit] = []
    split = 0
    for label, t in ins.tensors():
        if label in ignored:
            continue
        float_ = t.is_floating_point() or t.is_complex()
        if (
            feature_dim is not None
            and float_
            and t.dim() >= 2
            and -t.dim() <= feature_dim < t.dim()
        ):
            if feature_dim % t.dim() != 0:
                split += 1
                dim = feature_dim % t.dim()
                units.extend(_Unit(label, names[label], True, c, dim) for c in range(t.shape[dim]))
                continue
        units.append(_Unit(label, names[label], float_))
    if feature_dim is not None and not split:
        shapes = ", ".join(f"{names[k]} {tuple(t.shape)}" for k, t in ins.tensors())
        raise ValueError(
            f"feature_dim={feature_dim} splits no float input into columns ({shapes}); pass "
            "the dimension of the features (not the batch's), e.g. feature_dim=-1."
        )
    if not units:
        raise ValueError("ignore= leaves no input to check; drop the names of inputs to check.")
    return units


def _by_gradient(runner: dep.Runner, ins: Inputs, units: list[_Unit], seed: int) -> set[_Unit]:
    """The units a non-zero, finite gradient shows used (float inputs only)."""
    floats = {u.label for u in units if u.floating}
    if not floats:
        return set()
    leaves: dict[str, torch.Tensor] = {}

    def as_leaf(label: str, t: torch.Tensor) -> torch.Tensor:
        if label not in floats:
            return t
        leaves[label] = t.detach().clone().requires_grad_(True)
        return leaves[label]

    with torch.enable_grad():
        out = runner(ins.map(as_leaf))
        if not (out.is_floating_point() or out.is_complex()) or not out.requires_grad:
            return set()
        grads = torch.autograd.grad(
            out, list(leaves.values()), dep.cotangent(out.shape, out, seed), allow_unused=True
        )
    by_label = dict(zip(leaves, grads, strict=True))
    shown = set()
    for unit in units:
        g = by_label.get(unit.label)
        if g is None or not bool(torch.isfinite(g).all()):
            continue
        if unit.column is not None and unit.dim is not None:
            g = g.select(unit.dim, unit.column)
        if bool((g != 0).any()):
            shown.add(unit)
    return shown


def _perturbed(
    comparison: dep.Comparison, ins: Inputs, unit: _Unit, gen: torch.Generator
) -> tuple[bool, str]:
    """(the output moved, what was changed) for one unit."""
    t = dict(ins.tensors())[unit.label]
    select = torch.ones(t.shape, dtype=torch.bool)
    if unit.column is not None and unit.dim is not None:
        dim = unit.dim
        select = torch.zeros(t.shape, dtype=torch.bool)
        select.select(dim, unit.column).fill_(True)
        what = f"noise added to column {unit.column} along dim {dim}"
    elif _zero_one(t) and t.dim() >= 2:
        select[..., 0] = False  # each row keeps its first position: a mask stays valid
        what = (
            f"its 0/1 values flipped at {int(select.sum())} of {t.numel()} entries (the first "
            "position of each row kept)"
        )
    elif t.is_floating_point() or t.is_complex():
        what = "noise of its own spread added to every value"
    elif _zero_one(t):
        what = "its 0/1 values flipped"
    else:
        what = "every value changed to another value present in it"
    floating = t.is_floating_point() or t.is_complex()
    tries = 1 if _zero_one(t) else TRIES
    for attempt in range(tries):
        # a second try of a float input flips its signs (a model that reads only x > 0 may
        # not notice noise), later ones draw anew
        new = -t if floating and attempt == 1 else dep.new_values(t, gen)
        changed = torch.where(select.to(t.device), new, t)

        def swap(label: str, value: torch.Tensor, changed: torch.Tensor = changed) -> torch.Tensor:
            return changed if label == unit.label else value

        try:
            units = comparison.moved(ins.map(swap))
        except (RuntimeError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{unit.shown} could not be changed validly ({what}: the model raised "
                f"{type(exc).__name__}: {str(exc)[:200]}); pass it in ignore= if it may not "
                "change, or a batch with more varied values."
            ) from exc
        if bool(units.nonzero.any()):
            return True, what
    if tries > 1:
        what += f", {tries} times ({'noise, its signs flipped, noise again' if floating else 'each a new draw'})"
    return False, what


def _zero_one(t: torch.Tensor) -> bool:
    if t.dtype == torch.bool:
        return True
    if t.is_floating_point() or t.is_complex():
        return False
    return bool(((t == 0) | (t == 1)).all())


def _failure(
    unused: list[_Unit],
    units: list[_Unit],
    tried: dict[_Unit, tuple[bool, str]],
    noise: dep.RerunNoise | None,
    mode: str,
    msg: str | None,
) -> AssertionError:
    listed = ", ".join(u.shown for u in unused)
    headline = (
        f"{listed} {'does' if len(unused) == 1 else 'do'} not influence the output "
        f"({len(unused)} of {len(units)} checked)."
    )
    evidence = []
    for unit in unused[:8]:
        grad = (
            "its gradient is exactly 0 everywhere"
            if unit.floating
            else "no gradient applies (integer/boolean values)"
        )
        changed = tried.get(unit, (False, "not changed"))[1]
        evidence.append(f"{unit.shown}: {grad}; changed ({changed}): no output value moved.")
    if len(unused) > 8:
        evidence.append(f"... and {len(unused) - 8} more.")
    if noise is not None:
        evidence.append(noise.text())
    return _messages.fail(
        CHECK,
        headline,
        evidence=evidence,
        cause=_cause(unused[0]),
        facts={"mode": mode},
        msg=msg,
    )


def _cause(unit: _Unit) -> str:
    name = unit.name.lower()
    if unit.column is not None:
        return (
            f"feature column {unit.column} of {unit.name} is dropped before it reaches the "
            "output: a slice one short (x[:, :-1], x[..., :k]), a zeroed weight or a mask."
        )
    if "mask" in name:
        return (
            f"{unit.name} is never read: not passed on to the encoder? (a wrapper whose "
            f"forward takes {unit.name} but calls the encoder without it)."
        )
    if name in ("labels", "label", "targets", "target", "y"):
        return (
            f"{unit.name} feeds only the loss, not the output: if that is meant, pass "
            f"ignore=({unit.name!r},)."
        )
    return (
        f"{unit.name} is never read: an argument the forward accepts but does not pass on, or "
        "a branch that overwrites it. If it rides along on purpose, pass "
        f"ignore=({unit.name!r},)."
    )
