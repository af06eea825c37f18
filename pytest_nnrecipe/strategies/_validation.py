"""Argument checks shared by the strategies: each bad value raises ``InvalidArgument`` with
``name=value`` and what would be valid, when the strategy is made (not when it is drawn)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from hypothesis.errors import InvalidArgument

Shape = tuple[int, ...]


def _check_int(value: object, name: str, *, at_least: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"Expected an int but got {name}={value!r} ({type(value).__name__})")
    if at_least is not None and value < at_least:
        raise InvalidArgument(f"{name}={value!r} must be at least {at_least}")
    return int(value)


def _bounds(
    name: str,
    lo: object,
    hi: object,
    *,
    default_lo: int,
    span: int,
    floor: int,
) -> tuple[int, int]:
    """Validate ``min_<name>``/``max_<name>``; ``max`` defaults to ``min + span``."""
    lo = default_lo if lo is None else _check_int(lo, f"min_{name}", at_least=floor)
    hi = lo + span if hi is None else _check_int(hi, f"max_{name}", at_least=floor)
    if lo > hi:
        raise InvalidArgument(f"Cannot have max_{name}={hi!r} < min_{name}={lo!r}")
    return lo, hi


def _fixed_or_bounds(
    name: str,
    fixed: object,
    lo: object,
    hi: object,
    *,
    default_lo: int,
    span: int,
) -> tuple[int, int]:
    """``name=n`` fixes a size; otherwise it is drawn within ``min_<name>``/``max_<name>``."""
    if fixed is None:
        return _bounds(name, lo, hi, default_lo=default_lo, span=span, floor=1)
    if lo is not None or hi is not None:
        raise InvalidArgument(
            f"Pass either {name}={fixed!r} (a fixed size) or min_{name}=/max_{name}= "
            f"(a drawn size), not both; got min_{name}={lo!r}, max_{name}={hi!r}"
        )
    n = _check_int(fixed, name, at_least=1)
    return n, n


def _check_max_elements(max_elements: object, smallest: Sequence[int], what: str) -> int:
    cap = _check_int(max_elements, "max_elements", at_least=1)
    need = math.prod(max(d, 1) for d in smallest)
    if need > cap:
        raise InvalidArgument(
            f"The smallest {what} allowed by the bounds, {tuple(smallest)}, has {need} elements, "
            f"more than max_elements={cap}: raise max_elements or lower the min_* bounds"
        )
    return cap


def _multiple_bounds(name: str, lo: int, hi: int, multiple_of: int) -> tuple[int, int]:
    """Round ``[lo, hi]`` inwards to multiples of ``multiple_of``."""
    lo_m = -(-lo // multiple_of) * multiple_of
    hi_m = hi // multiple_of * multiple_of
    if lo_m > hi_m:
        raise InvalidArgument(
            f"No multiple of multiple_of={multiple_of} lies within min_{name}={lo} and "
            f"max_{name}={hi}: widen the bounds"
        )
    return lo_m, hi_m


def _check_shape(shape: object, name: str) -> Shape:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise InvalidArgument(
            f"Expected a tuple of ints or a strategy of shapes but got {name}={shape!r}"
        )
    for i, n in enumerate(shape):
        _check_int(n, f"{name}[{i}]", at_least=0)
    return tuple(int(n) for n in shape)
