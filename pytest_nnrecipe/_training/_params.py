"""``assert_params_update``: every trainable parameter learns.

One forward, backward and optimiser step on a copy (train mode, the test's seed). Every
parameter with ``requires_grad=True`` must get a gradient that exists, is finite and is not
all zeros, and its value must change in the step. The message names each parameter that does
not: a detached branch or an unused layer gets no gradient at all; a bias followed by
BatchNorm gets a zero one (exactly, or within rounding: below 1e-6 of the largest gradient
norm — Adam would still move it, on noise); a parameter left out of the optimiser does not change.
``ignore=`` takes names or glob patterns (``"head.*"``) of intended exceptions; a pattern
that matches no trainable parameter is an error (a typo would silently check nothing).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .. import _messages, _text_pictures
from .._results import ParamsUpdate
from .._state import untouched
from . import _fit, _suspects

if TYPE_CHECKING:  # pragma: no cover
    from .._types import LossFunction, ModelInputs, OptimizerFactory, OutputSelector

CHECK = "assert_params_update"
#: A gradient whose norm is below this share of the largest parameter's gradient norm is zero
#: in all but rounding (a bias before BatchNorm gets ~1e-9 of the others).
ZERO_GRADIENT = 1e-6


def assert_params_update(
    model: torch.nn.Module,
    inputs: ModelInputs,
    targets: Any,
    loss_fn: LossFunction,
    *,
    ignore: Sequence[str] = (),
    optimizer: OptimizerFactory | None = None,
    output: OutputSelector = None,
    msg: str | None = None,
) -> ParamsUpdate:
    """Every trainable parameter gets a finite, non-zero gradient and changes in one step."""
    __tracebackhide__ = True
    problem = _fit.prepare(CHECK, model, inputs, targets, loss_fn, output)
    patterns = [ignore] if isinstance(ignore, str) else list(ignore)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"ignore={ignore!r} must be parameter names or glob patterns (str).")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in trainable)]
    if unmatched:
        raise ValueError(
            f"ignore={patterns!r}: {unmatched} match no trainable parameter; the names are "
            f"{_short_list(trainable)}."
        )
    ignored = [n for n in trainable if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    checked = [n for n in trainable if n not in ignored]
    grads: dict[str, Any] = {}
    called: set[str] = set()

    def watch(net: Any) -> None:
        for mod_name, module in net.named_modules():
            module.register_forward_hook(lambda *_a, _n=mod_name: called.add(_n))

    def look(step: int, net: Any) -> None:
        if step == 0:
            for name, p in net.named_parameters():
                grads[name] = None if p.grad is None else p.grad.detach().clone()

    with untouched(model):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        run = _fit.train(
            model, problem, steps=1, optimizer=optimizer, after_backward=look, on_copy=watch
        )
        after = dict(run.model.named_parameters())
        problems: list[tuple[str, str]] = []
        sizes = [float(g.norm()) for g in grads.values() if g is not None and g.isfinite().all()]
        tiny = ZERO_GRADIENT * max(sizes, default=0.0)
        for name in checked:
            g = grads.get(name)
            if g is None:
                owner = name.rsplit(".", 1)[0] if "." in name else ""
                if owner not in called:
                    problems.append((name, "no gradient: its module never ran in forward (unused)"))
                else:
                    problems.append((name, "no gradient: ran in forward, cut off from the loss"))
            elif not torch.isfinite(g).all():
                bad = int((~torch.isfinite(g)).sum())
                problems.append((name, f"non-finite gradient ({bad} of {g.numel()} values)"))
            elif float(g.norm()) <= tiny:
                shown = (
                    "exactly zero"
                    if not g.any()
                    else f"numerically zero (norm {float(g.norm()):.1g})"
                )
                problems.append((name, f"gradient is zero ({shown})"))
            elif torch.equal(before[name], after[name].detach()):
                problems.append((name, "value unchanged after one step (grad is fine)"))
    passed = not problems
    _fit.record_run(problem, run, passed, failing=[n for n, _ in problems])
    if passed:
        return ParamsUpdate(tuple(checked), tuple(ignored), run.losses[0])
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    table = _text_pictures.table([(n, str(shapes[n]), why) for n, why in problems], shrink=0)
    return_cause = _cause(problems)
    raise _messages.fail(
        CHECK,
        f"{len(problems)} of {len(checked)} trainable parameters do not learn: "
        + ", ".join(n for n, _ in problems[:6])
        + (" ..." if len(problems) > 6 else "")
        + ".",
        msg=msg,
        evidence=([f"ignored: {', '.join(ignored)}"] if ignored else [])
        + _suspects.constant_init(model),
        cause=return_cause,
        facts={"optimizer": run.optimizer, "steps": 1, "mode": "train"},
        picture="parameter, shape, problem after one step:\n" + table,
    )


def _cause(problems: list[tuple[str, str]]) -> str:
    kinds = {why.split(" (")[0] for _, why in problems}
    parts = []
    unused = _owners(problems, "(unused)")
    cut = _owners(problems, "cut off from the loss")
    if unused:
        parts.append(
            f"unused: {', '.join(unused[:6])} never ran in forward — a layer defined in "
            "__init__ but not called (or called on another code path)"
        )
    if cut:
        parts.append(
            f"detached: {', '.join(cut[:6])} ran but no gradient came back — its output is "
            "cut off from the loss by .detach(), torch.no_grad(), .data or a non-differentiable "
            "op (argmax, .item(), integer casts); or it feeds only outputs the loss never "
            "sees (an auxiliary head that output= leaves out, trained by another loss)"
        )
    if "gradient is zero" in kinds:
        parts.append(
            "zero gradient: the path is there but carries nothing — a bias before "
            "BatchNorm/LayerNorm, a multiplication by zero, a dead ReLU or a saturated gate"
        )
    if any(k.startswith("non-finite") for k in kinds):
        parts.append("non-finite gradient: an overflow or a division by zero in the backward")
    if any(k.startswith("value unchanged") for k in kinds):
        parts.append(
            "unchanged value: the parameter is missing from the optimiser's param groups, "
            "or its learning rate is 0"
        )
    return "; ".join(parts) + ". Pass ignore= for intended exceptions."


def _owners(problems: list[tuple[str, str]], marker: str) -> list[str]:
    """The modules (in order of appearance) of the parameters whose problem names ``marker``."""
    return list(
        dict.fromkeys(
            n.rsplit(".", 1)[0] if "." in n else n for n, why in problems if marker in why
        )
    )


def _short_list(names: list[str]) -> str:
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
