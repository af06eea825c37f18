"""The transforms the checks compare under: a user's transform applied to a copy, a
derangement along a dimension drawn from the test's seed, non-contiguous and channels-last
copies."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from .. import _context
from .._inputs import Inputs
from ._comparison import Variant


def same(out: torch.Tensor) -> torch.Tensor:
    return out


def check_callable(fn: Any, name: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{name}={fn!r} must be a callable: {name}=lambda x: x.flip(-1), for example."
        )


def applied(transform: Callable[[Any], Any], inputs: Any) -> Inputs:
    """The transformed inputs, given a copy (the user's tensors stay as they are)."""
    copy = Inputs.of(inputs).map(lambda _label, t: t.clone())
    given: Any = copy.args[0] if copy.single else copy.args if not copy.kwargs else copy.kwargs
    if isinstance(inputs, list):
        given = list(copy.args)
    try:
        out = transform(given)
    except Exception as e:
        raise ValueError(
            f"transform= raised {type(e).__name__}: {e}; it takes the inputs as given (a "
            "tensor, a tuple or a dict, like inputs=) and returns them transformed."
        ) from e
    return Inputs.of(out, name="transform(inputs)")


@dataclasses.dataclass(frozen=True)
class Permutation:
    """A permutation of ``dim`` that moves every element (a derangement, drawn from the
    test's seed), applied to a copy of the inputs: every tensor with ``dim`` of the first
    one's length is permuted the same way."""

    dim: int
    order: torch.Tensor
    inputs: Inputs

    @classmethod
    def drawn(cls, ins: Inputs, dim: int) -> Permutation:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim={dim!r} must be an int (the dimension of the set's elements).")
        fits = [t for _label, t in ins.tensors() if -t.dim() <= dim < t.dim()]
        if not fits:
            raise ValueError(
                f"dim={dim} is out of range for every input; pass the set's dimension."
            )
        n = int(fits[0].shape[dim])
        if n < 2:
            raise ValueError(
                f"dim={dim} has {n} element (shape {tuple(fits[0].shape)}); a permutation "
                "needs at least 2. Pass the dimension of the set's elements."
            )
        ctx = _context.current()
        gen = torch.Generator().manual_seed(0 if ctx is None or ctx.seed is None else ctx.seed)
        order = torch.randperm(n, generator=gen)
        while not bool((order != torch.arange(n)).all()):
            order = torch.randperm(n, generator=gen)

        def move(_label: str, t: torch.Tensor) -> torch.Tensor:
            if -t.dim() <= dim < t.dim() and t.shape[dim] == n:
                return t.index_select(dim, order.to(t.device))
            return t.clone()

        return cls(dim, order, ins.map(move))

    @property
    def describe(self) -> str:
        shown = self.order[:8].tolist()
        more = " ..." if len(self.order) > 8 else ""
        return f"a permutation along dim={self.dim} (order {shown}{more})"

    def variant(self, expect: Callable[[torch.Tensor], torch.Tensor]) -> Variant:
        """Compared: the output of the permuted inputs against ``expect(output)``."""
        return ("permutation", self.inputs, expect, same)


def strided(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous tensor (every other element of a wider one)."""
    if t.dim() == 0:
        return t.clone()
    wide = torch.empty((*t.shape[:-1], t.shape[-1] * 2), dtype=t.dtype, device=t.device)
    out = wide[..., ::2]
    out.copy_(t)
    return out


def channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 5 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last_3d)
    return t.clone()
