"""The likely cause of a leak: cheap reruns that read the evidence (the mask all ones,
inverted, as ``bool``; the per-position states before a pooling)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ... import _dependency as dep
from ._case import Case, label
from ._leaks import Found, by_perturbation, perturbed


def likely_cause(case: Case, found: Found) -> str | None:
    """What the evidence supports, tested in this order: the mask changes nothing; the model
    given the inverted mask ignores the padding; given the mask as ``bool`` it does; a pooled
    output whose per-position states before the pooling do (not) depend on the padding."""
    shown = label(case.where)
    if not _mask_matters(case):
        return (
            f"the mask does not reach the output: the outputs are the same with {shown} as "
            "given and with every position marked real, so it is not passed on to the layers "
            "that mix positions (attention_mask= / key_padding_mask= of the attention, the "
            "pooling). Pass it to every layer that reads across positions."
        )
    inverted = (case.given == 0).to(case.given.dtype)
    if _passes(case, inverted, found.pooled):
        return (
            f"a mask with the wrong polarity: given {shown} inverted (1 at padding), the "
            "model ignores the padding and the check passes, so it reads the mask the other "
            "way round: it keeps the positions the mask marks as padding and drops the real "
            "ones. nn.MultiheadAttention's key_padding_mask wants True at padding (pass "
            "~mask.bool()); a pooling wants the mask as 1 at real positions."
        )
    if case.given.dtype != torch.bool and _passes(case, case.given != 0, found.pooled):
        return (
            f"a mask of the wrong dtype: {shown} is {case.given.dtype} and the check passes "
            "with the same mask as bool. A float attn_mask is added to the attention scores "
            "(0 and 1 added, nothing masked); pass a bool mask, or an additive one with "
            "-inf at padding."
        )
    if found.pooled:
        before = _states_leak(case)
        columns = np.nonzero(found.leaks.any(0))[0].tolist()
        if before is False and len(columns) == 1:
            p = columns[0]
            return (
                f"a pooling that reads one position, {p}, which is padding in "
                f"{int(found.leaks[:, p].sum())} sample(s): the states before the pooling do "
                "not depend on the padding, the pooled output does, through position "
                f"{p} only (a [CLS]/first-token pooler under left padding, a last-token one "
                "under right padding). Pad on the side the pooler does not read, or pool "
                "the first/last real position."
            )
        if before is False:
            return (
                "a pooling over padded positions: the per-position states before the pooling "
                "do not depend on the padding, the pooled output does. Pool over real "
                "positions only: (h * m[..., None]).sum(1) / m.sum(1, keepdim=True) with m "
                "the mask, or take the first/last real position (not position 0 or -1 "
                "under left/right padding)."
            )
        if before is True:
            return (
                "a layer before the pooling reads padded positions: the per-position states "
                "the pooling reads already depend on the padding; the mask does not reach "
                "that layer, or reaches it with the wrong polarity or dtype (attention without "
                "attention_mask / key_padding_mask, a convolution or normalisation over time)."
            )
    return None


def _output_pair(case: Case, mask: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The output with ``mask`` and its rerun noise floor (0.0 when reruns are identical)."""
    run = case.runner(mask)
    first = run(case.content)
    floor = float(dep.difference(run(case.content), first).max())
    return first, floor


def _mask_matters(case: Case) -> bool:
    """Does the output change when every position is marked real?"""
    with torch.no_grad():
        base, floor = _output_pair(case, case.given)
        ones = case.given.new_ones(case.given.shape)
        other = case.runner(ones)(case.content)
    if other.shape != base.shape:
        return True
    return bool((dep.difference(other, base) > dep.NOISE_MULTIPLE * floor).any())


def _passes(case: Case, mask: torch.Tensor, pooled: bool) -> bool:
    """Would the check pass with ``mask`` given to the model (the real positions unchanged)?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return not by_perturbation(case, mask, pooled).leaks.any()
    except (ValueError, RuntimeError, TypeError, IndexError):
        return False


class _LastStates(torch.overrides.TorchFunctionMode):
    """Keeps the last float tensor a forward makes with the mask's samples and positions at
    ``batch_dim`` and ``time_dim``: the per-position states a pooling reads."""

    def __init__(self, case: Case) -> None:
        super().__init__()
        self.case = case
        self.last: torch.Tensor | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        b, t = self.case.dims
        batch, steps = self.case.real.shape
        if (
            isinstance(out, torch.Tensor)
            and out.is_floating_point()
            and out.dim() >= 3
            and out.shape[b] == batch
            and out.shape[t] == steps
        ):
            self.last = out.detach().clone()
        return out


def _states_leak(case: Case) -> bool | None:
    """Do the last per-position states of the forward depend on the padding, at real
    positions? ``None``: the forward makes no such tensor."""
    run = case.runner(case.given)
    gen = torch.Generator().manual_seed(case.seed + 2)
    seen = []
    with torch.no_grad():
        for inputs in (case.content, case.content, perturbed(case, ~case.real, gen)):
            capture = _LastStates(case)
            with capture:
                run(inputs)
            seen.append(capture.last)
    if any(s is None for s in seen) or len({tuple(s.shape) for s in seen}) > 1:  # type: ignore[union-attr]
        return None
    first, again, moved = (s for s in seen if s is not None)
    floor = float(dep.difference(again, first).max())
    diff = dep.difference(moved, first)
    real = case.laid_out(case.real, diff, case.dims).to(diff.device)
    return bool(((diff > dep.NOISE_MULTIPLE * floor) & real).any())
