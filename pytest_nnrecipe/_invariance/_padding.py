"""``assert_padding_invariant``: more padding changes nothing at the real positions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .._inputs import Inputs
from .._results import Invariance
from .._structural._padding._case import split_mask
from ._comparison import Comparison

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Model, ModelInputs, OutputSelector


def assert_padding_invariant(
    model: Model,
    inputs: ModelInputs,
    *,
    mask: str | int = "attention_mask",
    extra: int = 2,
    side: str = "right",
    time_dim: int = 1,
    pad_value: float = 0,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that ``extra`` more padded positions (on ``side``) change nothing at the real
    positions: per-position outputs there, or the pooled output, within the model's measured
    rounding error at this precision (both shapes rerun in float64).

    Args:
        model, inputs, output, train, msg: as :func:`assert_invariant`; ``inputs`` hold the
            mask (``1``/``True`` at real positions).
        mask: the mask's key in dict inputs, or its index in positional ones.
        extra: how many padded positions to add (``>= 1``).
        side: ``"right"`` (after the sequence) or ``"left"`` (before it).
        time_dim: the dimension of positions; every input with the mask's length there is
            padded, the mask with 0, the others with ``pad_value`` (the pad token id, or 0.0).
    """
    __tracebackhide__ = True
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
        raise ValueError(f"extra={extra!r} must be a positive int (padded positions to add).")
    if side not in ("right", "left"):
        raise ValueError(f"side={side!r} must be 'right' or 'left'.")
    if isinstance(time_dim, bool) or not isinstance(time_dim, int):
        raise TypeError(f"time_dim={time_dim!r} must be an int (the dimension of positions).")
    ins = Inputs.of(inputs, model=model)
    given, _where, _rest = split_mask(ins, mask)
    if given.dim() != 2 or not -2 <= time_dim < 2:
        raise ValueError(
            f"the mask inputs[{mask!r}] has shape {tuple(given.shape)}; it must be 2-D (B, T) "
            f"with positions at time_dim={time_dim}."
        )
    steps = int(given.shape[time_dim])
    real = given != 0  # as the mask: (B, T), or (T, B) for time_dim=0
    if time_dim % 2 == 0:
        real = real.T  # (B, T)

    def pad(_label: str, t: torch.Tensor) -> torch.Tensor:
        if not -t.dim() <= time_dim < t.dim() or t.shape[time_dim] != steps:
            return t.clone()
        shape = list(t.shape)
        shape[time_dim] = extra
        value = 0 if t is given else pad_value
        block = torch.full(shape, value, dtype=t.dtype, device=t.device)
        parts = (t, block) if side == "right" else (block, t)
        return torch.cat(parts, time_dim)

    start = 0 if side == "right" else extra

    def real_only(out: torch.Tensor, length: int, offset: int) -> torch.Tensor:
        if not -out.dim() <= time_dim < out.dim() or out.shape[time_dim] != length:
            return out  # pooled: one output per sample
        out = out.narrow(time_dim, offset, steps)
        shape = [1] * out.dim()
        batch_dim = 1 if time_dim % 2 == 0 else 0  # the mask is (B, T), or (T, B)
        shape[batch_dim], shape[time_dim] = real.shape
        keep = real.reshape(shape) if batch_dim < time_dim % out.dim() else real.T.reshape(shape)
        return torch.where(keep.to(out.device), out, torch.zeros((), dtype=out.dtype))

    comparison = Comparison(
        "assert_padding_invariant",
        model,
        inputs,
        output,
        train,
        msg,
        describe=f"{extra} more padded position(s) on the {side}",
    )
    variant = (
        f"{side} padding",
        ins.map(pad),
        lambda a: real_only(a, steps, 0),
        lambda b: real_only(b, steps + extra, start),
    )
    return comparison.run([variant])
