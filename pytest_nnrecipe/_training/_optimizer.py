"""``assert_optimizer_covers``: the optimizer you train with holds exactly the parameters that
should learn.

The training checks build their own optimizer on a copy of the model, so they cannot see
yours. Three silent bugs live there, each found here by identity, without a forward:

* a trainable parameter missing from every param group (the optimizer was built before the
  head was replaced or a layer unfrozen): it gets gradients and never moves;
* a frozen parameter (``requires_grad=False``, or named in ``frozen=``) held by a group;
* a tensor that is not a parameter of the model (a stale copy: the old head's weights),
  or one parameter held twice (it is updated twice per step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch

from .. import _context, _messages
from .._records import OptimizerRecord, model_name
from .._results import OptimizerCoverage

CHECK = "assert_optimizer_covers"


@dataclasses.dataclass(frozen=True)
class _Found:
    """What is wrong: parameter names, and the shapes of the stale tensors."""

    missing: list[str]
    frozen_held: list[str]
    twice: list[str]
    stale: list[tuple[int, ...]]

    @property
    def wrong(self) -> bool:
        return bool(self.missing or self.frozen_held or self.twice or self.stale)


#: Names listed in a message before "... and N more".
SHOWN = 6


def assert_optimizer_covers(
    model: Any,
    optimizer: Any,
    *,
    frozen: Iterable[str] | str = (),
    msg: str | None = None,
) -> OptimizerCoverage:
    """Every parameter of ``model`` with ``requires_grad=True`` is in exactly one of
    ``optimizer``'s param groups; no frozen parameter is (``requires_grad=False``, or named in
    ``frozen``: parameter names or the names of modules whose parameters stay fixed, e.g.
    ``frozen=("bert.embeddings",)``); and no group holds a tensor that is not a parameter of
    the model (a stale copy)."""
    __tracebackhide__ = True
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model= must be the torch.nn.Module you train; got {type(model).__name__}."
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        hint = (
            " (a factory? pass the optimizer instance you train with: "
            "optimizer=torch.optim.AdamW(model.parameters()))"
            if callable(optimizer)
            else ""
        )
        raise TypeError(
            f"optimizer= must be a torch.optim.Optimizer instance{hint}; got "
            f"{type(optimizer).__name__}."
        )
    named = dict(model.named_parameters())
    declared = _declared(frozen, model, named)
    names = {id(p): n for n, p in named.items()}
    held: dict[int, list[int]] = {}  # id -> the groups holding it
    tensors: dict[int, Any] = {}
    for g, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            held.setdefault(id(p), []).append(g)
            tensors[id(p)] = p
    trainable = [n for n, p in named.items() if p.requires_grad and n not in declared]
    missing = [n for n in trainable if id(named[n]) not in held]
    frozen_held = [
        n for n, p in named.items() if id(p) in held and (not p.requires_grad or n in declared)
    ]
    twice = [names.get(i, "?") for i, gs in held.items() if len(gs) > 1 and i in names]
    stale = [tuple(tensors[i].shape) for i in held if i not in names]
    found = _Found(missing, frozen_held, twice, stale)
    passed = not found.wrong
    _context.record(
        OptimizerRecord(
            check=CHECK,
            model=model_name(model),
            passed=passed,
            trainable=len(trainable),
            missing=len(missing),
            frozen_held=len(frozen_held),
            twice=len(twice),
            stale=len(stale),
        )
    )
    if not passed:
        raise _failure(model, optimizer, found, msg)
    return OptimizerCoverage(
        trainable=len(trainable),
        groups=len(optimizer.param_groups),
        frozen=tuple(n for n, p in named.items() if not p.requires_grad or n in declared),
    )


def _declared(frozen: Any, model: Any, named: dict[str, Any]) -> set[str]:
    """The parameter names ``frozen=`` declares fixed (names or module prefixes)."""
    if isinstance(frozen, str):
        frozen = (frozen,)
    try:
        wanted = list(frozen)
    except TypeError:
        raise TypeError(
            f"frozen={frozen!r} must be parameter or module names, e.g. frozen=('encoder',)."
        ) from None
    out: set[str] = set()
    for w in wanted:
        if not isinstance(w, str):
            raise TypeError(f"frozen= holds {w!r}; pass parameter or module names (str).")
        hits = [n for n in named if n == w or n.startswith(w + ".")]
        if not hits:
            modules = [n for n, _ in model.named_children()]
            raise ValueError(
                f"frozen={tuple(wanted)!r} names {w!r}, which is no parameter or module of "
                f"{type(model).__name__} (its top-level modules: {', '.join(modules) or 'none'}); "
                "pass names as model.named_parameters() gives them."
            )
        out.update(hits)
    return out


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" ... and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _prefix(names: list[str]) -> str | None:
    """The module all ``names`` live in (``classifier``), if they share one."""
    parts = [n.split(".")[:-1] for n in names]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common) or None


def _module(where: str | None, otherwise: str = "part of the model") -> str:
    return f"module {where!r}" if where else otherwise


def _failure(model: Any, optimizer: Any, found: _Found, msg: str | None) -> AssertionError:
    missing, frozen_held, twice, stale = found.missing, found.frozen_held, found.twice, found.stale
    kind = type(optimizer).__name__
    parts = []
    evidence = []
    causes = []
    if missing:
        parts.append(f"{len(missing)} trainable parameter{'s' * (len(missing) != 1)} missing")
        evidence.append(
            f"Not in any param group (they get gradients and never move): {_listed(missing)}."
        )
    if stale:
        evidence.append(
            f"Held but not parameters of the model ({len(stale)}, shapes "
            f"{', '.join(map(str, stale[:SHOWN]))}): stale tensors the optimizer updates in "
            "vain."
        )
        parts.append(f"{len(stale)} stale tensor{'s' * (len(stale) != 1)} held")
    if missing and stale:
        where = _prefix(missing)
        causes.append(
            f"the optimizer was built before {_module(where)} was replaced (it "
            "still holds the old module's tensors); build it after the last change to the "
            "model."
        )
    elif missing:
        where = _prefix(missing)
        causes.append(
            f"the optimizer was built before {_module(where, 'these parameters')} "
            f"{'was' if where else 'were'} added or unfrozen (requires_grad_(True)), or from "
            "a filtered list that leaves them out; build it after the last change."
        )
    elif stale:
        causes.append(
            "the optimizer was built on another model (a copy, a deepcopy made before "
            "training) or before a module was replaced; build it on the model you train."
        )
    if frozen_held:
        evidence.append(
            "Frozen (requires_grad=False or named in frozen=) but held by the optimizer: "
            f"{_listed(frozen_held)}."
        )
        parts.append(f"{len(frozen_held)} frozen parameter{'s' * (len(frozen_held) != 1)} held")
        causes.append(
            "built from model.parameters() before or without the freeze: pass only the "
            "trainable ones, [p for p in model.parameters() if p.requires_grad] (weight decay "
            "or a later unfreeze would move them)."
        )
    if twice:
        evidence.append(f"Held by more than one param group: {_listed(twice)}.")
        parts.append(f"{len(twice)} parameter{'s' * (len(twice) != 1)} held twice")
        causes.append("overlapping param groups: each parameter belongs in one group.")
    trainable = sum(p.requires_grad for p in model.parameters())
    return _messages.fail(
        CHECK,
        f"{kind} does not hold exactly the trainable parameters of {type(model).__name__}: "
        f"{'; '.join(parts)} ({trainable} trainable, {len(optimizer.param_groups)} param "
        f"group{'s' * (len(optimizer.param_groups) != 1)}).",
        evidence=evidence,
        cause=" ".join(causes),
        msg=msg,
    )
