"""Tensor strategies: elements from ``hypothesis.extra.numpy.arrays``, cast to torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as npst

from .. import _context
from ._shapes import image_shapes, sequence_shapes
from ._validation import Shape, _check_shape

#: Default element range of :func:`tensors` (the scale of normalised activations).
DEFAULT_MAGNITUDE = 10

# torch dtype -> (NumPy dtype generated, Hypothesis float width or None for non-floats)
_DTYPES: dict[torch.dtype, tuple[Any, int | None]] = {
    torch.float16: (np.float16, 16),
    torch.bfloat16: (np.float32, 32),  # drawn as float32 within bfloat16's grid, then cast
    torch.float32: (np.float32, 32),
    torch.float64: (np.float64, 64),
    torch.uint8: (np.uint8, None),
    torch.int8: (np.int8, None),
    torch.int16: (np.int16, None),
    torch.int32: (np.int32, None),
    torch.int64: (np.int64, None),
    torch.bool: (np.bool_, None),
}


def tensors(
    shape: int | Sequence[int] | st.SearchStrategy[Shape],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_nan: bool = False,
    allow_infinity: bool = False,
    allow_subnormal: bool = False,
    allow_huge: bool = False,
    allow_zero: bool = False,
) -> st.SearchStrategy[torch.Tensor]:
    """Tensors of ``shape`` (a shape, or a strategy of shapes such as :func:`image_shapes`).

    Elements are finite and lie in ``[min_value, max_value]``, by default ``[-10, 10]`` (the
    default bound that is not given moves so the range is never empty); integer dtypes take
    the same bounds, ``torch.bool`` takes none. Special values are mixed in only when asked,
    also outside the bounds: ``allow_nan``, ``allow_infinity`` (+-inf), ``allow_subnormal``
    (subnormal floats), ``allow_huge`` (the dtype's largest magnitudes), ``allow_zero``
    (0 and -0.0). ``float16``/``bfloat16`` tensors hold exactly the drawn values (bfloat16 is
    drawn as float32 on bfloat16's grid and cast).

    ``device=None`` means the running test's ``nn_device`` under the pytest plugin, else CPU,
    read when an example is drawn. The elements come from ``hypothesis.extra.numpy.arrays``,
    so a failing tensor shrinks towards a small shape filled with zeros.
    """
    shapes = _shape_strategy(shape)
    if not isinstance(dtype, torch.dtype) or dtype not in _DTYPES:
        names = ", ".join(str(d).replace("torch.", "") for d in _DTYPES)
        raise InvalidArgument(f"Unsupported dtype={dtype!r}; expected a torch dtype among {names}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise InvalidArgument(f"Expected a str or torch.device but got device={device!r}")
    flags = {
        "allow_nan": allow_nan,
        "allow_infinity": allow_infinity,
        "allow_subnormal": allow_subnormal,
        "allow_huge": allow_huge,
        "allow_zero": allow_zero,
    }
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidArgument(f"Expected a bool but got {name}={flag!r}")
    np_dtype, width = _DTYPES[dtype]
    elements = _elements(dtype, width, min_value, max_value, flags)
    return _tensors(npst.arrays(np_dtype, shapes, elements=elements), dtype, device)


@st.composite
def _tensors(
    draw: st.DrawFn,
    arrays: st.SearchStrategy[np.ndarray],
    dtype: torch.dtype,
    device: str | torch.device | None,
) -> torch.Tensor:
    # A composite rather than .map(): a falsifying example then prints as tensor([...]).
    return _to_tensor(draw(arrays), dtype, device)


def image_batches(
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    **shape: Any,
) -> st.SearchStrategy[torch.Tensor]:
    """Image batches: :func:`tensors` over :func:`image_shapes` (``**shape`` goes there)."""
    return tensors(
        image_shapes(**shape), dtype=dtype, device=device, min_value=min_value, max_value=max_value
    )


def sequence_batches(
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    **shape: Any,
) -> st.SearchStrategy[torch.Tensor]:
    """Sequence batches ``(batch, length, features)``: :func:`tensors` over
    :func:`sequence_shapes` (``**shape`` goes there)."""
    return tensors(
        sequence_shapes(**shape),
        dtype=dtype,
        device=device,
        min_value=min_value,
        max_value=max_value,
    )


def _shape_strategy(shape: object) -> st.SearchStrategy[Shape]:
    if isinstance(shape, st.SearchStrategy):
        return shape
    return st.just(_check_shape(shape, "shape"))


def _elements(
    dtype: torch.dtype,
    width: int | None,
    min_value: float | None,
    max_value: float | None,
    flags: dict[str, bool],
) -> st.SearchStrategy[Any]:
    if dtype is torch.bool:
        given = {"min_value": min_value, "max_value": max_value, **flags}
        bad = [f"{k}={v!r}" for k, v in given.items() if v is not None and v is not False]
        if bad:
            raise InvalidArgument(
                f"dtype=torch.bool takes no bounds or special values; got {', '.join(bad)}"
            )
        return st.booleans()
    if width is None:
        return _integer_elements(dtype, min_value, max_value, flags)
    return _float_elements(dtype, width, min_value, max_value, flags)


def _default_range(min_value: float | None, max_value: float | None) -> tuple[float, float]:
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or math.isnan(value)
        ):
            raise InvalidArgument(f"Expected a real number but got {name}={value!r}")
    lo = min_value
    hi = max_value
    if lo is None:
        lo = (
            -DEFAULT_MAGNITUDE
            if hi is None or hi >= -DEFAULT_MAGNITUDE
            else hi - 2 * DEFAULT_MAGNITUDE
        )
    if hi is None:
        hi = DEFAULT_MAGNITUDE if lo <= DEFAULT_MAGNITUDE else lo + 2 * DEFAULT_MAGNITUDE
    if lo > hi:
        raise InvalidArgument(f"Cannot have max_value={max_value!r} < min_value={min_value!r}")
    return lo, hi


def _integer_elements(
    dtype: torch.dtype, min_value: float | None, max_value: float | None, flags: dict[str, bool]
) -> st.SearchStrategy[int]:
    for name in ("allow_nan", "allow_infinity", "allow_subnormal"):
        if flags[name]:
            raise InvalidArgument(f"{name}=True needs a floating dtype, not dtype={dtype}")
    info = torch.iinfo(dtype)
    lo, hi = _default_range(min_value, max_value)
    if min_value is None:
        lo = max(lo, info.min)
    if max_value is None:
        hi = min(hi, info.max)
    for name, value in (("min_value", lo), ("max_value", hi)):
        if not info.min <= value <= info.max:
            raise InvalidArgument(
                f"{name}={value!r} is outside the range of dtype={dtype}: [{info.min}, {info.max}]"
            )
    lo_i, hi_i = math.ceil(lo), math.floor(hi)
    if lo_i > hi_i:
        raise InvalidArgument(f"No integer lies within min_value={lo!r} and max_value={hi!r}")
    special = []
    if flags["allow_zero"]:
        special.append(0)
    if flags["allow_huge"]:
        special += [info.max, info.min]
    base = st.integers(lo_i, hi_i)
    return st.one_of(base, st.sampled_from(special)) if special else base


def _float_elements(
    dtype: torch.dtype,
    width: int,
    min_value: float | None,
    max_value: float | None,
    flags: dict[str, bool],
) -> st.SearchStrategy[float]:
    info = torch.finfo(dtype)
    lo, hi = _default_range(min_value, max_value)
    for name, value in (("min_value", lo), ("max_value", hi)):
        if not -info.max <= value <= info.max:
            raise InvalidArgument(
                f"{name}={value!r} is outside the finite range of dtype={dtype}: +-{info.max}"
            )
    lo_r, hi_r = _representable(lo, dtype, up=True), _representable(hi, dtype, up=False)
    if lo_r > hi_r:
        raise InvalidArgument(f"No {dtype} value lies within min_value={lo!r} and max_value={hi!r}")
    special: list[float] = []
    if flags["allow_zero"]:
        special += [0.0, -0.0]
    if flags["allow_huge"]:
        special += [info.max, -info.max, info.max / 2, -info.max / 2]
    if flags["allow_subnormal"]:
        tiny = info.smallest_normal
        special += [info.smallest_normal / 2, -info.smallest_normal / 2]
        special += [_smallest_subnormal(dtype), tiny - _smallest_subnormal(dtype)]
    if flags["allow_infinity"]:
        special += [math.inf, -math.inf]
    if flags["allow_nan"]:
        special.append(math.nan)
    base = st.floats(
        lo_r,
        hi_r,
        width=width,  # type: ignore[arg-type]  # 16, 32 or 64 from _DTYPES
        allow_nan=False,
        allow_infinity=False,
        # Hypothesis rejects allow_subnormal=True for a range without subnormals
        allow_subnormal=flags["allow_subnormal"] and lo_r < info.tiny and hi_r > -info.tiny,
    )
    if dtype is torch.bfloat16:
        # Draw on float32, then round to bfloat16's grid inside the (already bf16) bounds.
        base = base.map(lambda v: _representable(v, torch.bfloat16, up=None))
    return st.one_of(base, st.sampled_from(special)) if special else base


def _representable(value: float, dtype: torch.dtype, *, up: bool | None) -> float:
    """``value`` rounded to ``dtype``: to nearest (``up=None``), or inwards to a bound."""
    t = torch.tensor(value, dtype=torch.float64).to(dtype)
    if up is True and float(t) < value:
        t = torch.nextafter(t, torch.tensor(math.inf, dtype=dtype))
    elif up is False and float(t) > value:
        t = torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype))
    return float(t)


def _smallest_subnormal(dtype: torch.dtype) -> float:
    zero = torch.tensor(0.0, dtype=dtype)
    return float(torch.nextafter(zero, torch.tensor(1.0, dtype=dtype)))


def _to_tensor(
    array: np.ndarray, dtype: torch.dtype, device: str | torch.device | None
) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array, copy=True))
    if tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor.to(_device(device))


def _device(device: str | torch.device | None) -> str | torch.device:
    if device is not None:
        return device
    ctx = _context.current()
    return ctx.device if ctx is not None else "cpu"
