"""Shape strategies: generic, batch, image and sequence shapes within an element budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ._validation import (
    Shape,
    _bounds,
    _check_int,
    _check_max_elements,
    _check_shape,
    _fixed_or_bounds,
    _multiple_bounds,
)

#: Default cap on the number of elements of a generated shape: small enough that a model
#: runs in milliseconds on a CPU, large enough for a few channels of an 8 x 8 image.
DEFAULT_MAX_ELEMENTS = 4096


# One dimension: (smallest, largest, step). Sizes are multiples of step.
_Dim = tuple[int, int, int]


@st.composite
def _capped_shape(draw: st.DrawFn, dims: Sequence[_Dim], max_elements: int) -> Shape:
    """Draw each dimension in order, within what ``max_elements`` leaves for it.

    Invariant: drawn sizes times the smallest sizes still to draw stay within the cap, so
    every draw has a non-empty range and nothing is filtered; each size shrinks to its minimum.
    """
    shape: list[int] = []
    used = 1
    for i, (lo, hi, step) in enumerate(dims):
        rest = math.prod(max(d[0], 1) for d in dims[i + 1 :])
        cap = hi if used == 0 else min(hi, max_elements // (used * rest))
        size = draw(st.integers(lo // step, cap // step)) * step
        shape.append(size)
        used *= size
    return tuple(shape)


def _max_ndim(min_dims: int, max_dims: int, min_side: int, max_elements: int) -> int:
    ndim = max_dims
    while ndim > min_dims and max(min_side, 1) ** ndim > max_elements:
        ndim -= 1
    return ndim


def tensor_shapes(
    *,
    min_dims: int = 1,
    max_dims: int | None = None,
    min_side: int = 1,
    max_side: int | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[Shape]:
    """Shapes with ``min_dims..max_dims`` dimensions of ``min_side..max_side`` each.

    ``max_dims`` defaults to ``min_dims + 2`` and ``max_side`` to ``min_side + 7`` (like
    ``hypothesis.extra.numpy.array_shapes``); at most ``max_elements`` elements in all.
    Shrinks towards ``min_dims`` dimensions of size ``min_side``.
    """
    min_dims, max_dims = _bounds("dims", min_dims, max_dims, default_lo=1, span=2, floor=0)
    min_side, max_side = _bounds("side", min_side, max_side, default_lo=1, span=7, floor=0)
    cap = _check_max_elements(max_elements, (min_side,) * min_dims, "shape")
    top = _max_ndim(min_dims, max_dims, min_side, cap)
    return st.integers(min_dims, top).flatmap(
        lambda ndim: _capped_shape([(min_side, max_side, 1)] * ndim, cap)
    )


def batch_shapes(
    *,
    min_batch: int = 2,
    max_batch: int | None = None,
    sample_shape: Sequence[int] | None = None,
    min_dims: int | None = None,
    max_dims: int | None = None,
    min_side: int | None = None,
    max_side: int | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[Shape]:
    """Shapes ``(batch, *sample)`` with ``min_batch..max_batch`` samples (default 2..8).

    The batch size is at least 2 by default: a batch of one cannot mix. The shape of one
    sample is either fixed (``sample_shape=(10,)`` for a ``Linear(10, ...)``) or drawn like
    :func:`tensor_shapes` from ``min_dims``/``max_dims`` (default 1..3 dimensions) and
    ``min_side``/``max_side`` (default 1..8).
    """
    min_batch, max_batch = _bounds("batch", min_batch, max_batch, default_lo=2, span=6, floor=1)
    if sample_shape is not None:
        given = {"min_dims": min_dims, "max_dims": max_dims, "min_side": min_side}
        given["max_side"] = max_side
        clash = [f"{k}={v!r}" for k, v in given.items() if v is not None]
        if clash:
            raise InvalidArgument(
                f"sample_shape={sample_shape!r} fixes the shape of a sample; "
                f"drop {', '.join(clash)} or drop sample_shape"
            )
        sample = _check_shape(sample_shape, "sample_shape")
        dims = [(min_batch, max_batch, 1), *((n, n, 1) for n in sample)]
        cap = _check_max_elements(max_elements, [d[0] for d in dims], "batch shape")
        return _capped_shape(dims, cap)
    lo_dims, hi_dims = _bounds("dims", min_dims, max_dims, default_lo=1, span=2, floor=0)
    lo_side, hi_side = _bounds("side", min_side, max_side, default_lo=1, span=7, floor=0)
    cap = _check_max_elements(max_elements, (min_batch,) + (lo_side,) * lo_dims, "batch shape")
    top = _max_ndim(lo_dims, hi_dims, lo_side, cap // min_batch)
    return st.integers(lo_dims, top).flatmap(
        lambda ndim: _capped_shape(
            [(min_batch, max_batch, 1)] + [(lo_side, hi_side, 1)] * ndim, cap
        )
    )


def image_shapes(
    *,
    min_batch: int = 2,
    max_batch: int | None = None,
    channels: int | None = None,
    min_channels: int | None = None,
    max_channels: int | None = None,
    min_height: int | None = None,
    max_height: int | None = None,
    min_width: int | None = None,
    max_width: int | None = None,
    multiple_of: int = 1,
    channels_last: bool = False,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[Shape]:
    """Image batch shapes ``(batch, channels, height, width)`` (``channels_last``: NHWC).

    ``channels=3`` fixes the channel count, otherwise it is drawn from
    ``min_channels..max_channels`` (default 1..4). Height and width are multiples of
    ``multiple_of`` (e.g. 8 for a net that downsamples three times) between ``min_height``
    (default ``multiple_of``) and ``max_height`` (default ``min_height + 7 * multiple_of``),
    and likewise for width. Batch size as in :func:`batch_shapes`.
    """
    min_batch, max_batch = _bounds("batch", min_batch, max_batch, default_lo=2, span=6, floor=1)
    lo_c, hi_c = _fixed_or_bounds(
        "channels", channels, min_channels, max_channels, default_lo=1, span=3
    )
    step = _check_int(multiple_of, "multiple_of", at_least=1)
    if not isinstance(channels_last, bool):
        raise InvalidArgument(f"Expected a bool but got channels_last={channels_last!r}")
    spatial = []
    for name, lo, hi in (("height", min_height, max_height), ("width", min_width, max_width)):
        lo_s, hi_s = _bounds(name, lo, hi, default_lo=step, span=7 * step, floor=1)
        spatial.append((*_multiple_bounds(name, lo_s, hi_s, step), step))
    dims = [(min_batch, max_batch, 1), (lo_c, hi_c, 1), *spatial]
    cap = _check_max_elements(max_elements, [d[0] for d in dims], "image shape")
    shapes = _capped_shape(dims, cap)
    if channels_last:
        return shapes.map(lambda s: (s[0], s[2], s[3], s[1]))
    return shapes


def sequence_shapes(
    *,
    min_batch: int = 2,
    max_batch: int | None = None,
    min_length: int = 1,
    max_length: int | None = None,
    features: int | None = None,
    min_features: int | None = None,
    max_features: int | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[Shape]:
    """Sequence batch shapes ``(batch, length, features)``.

    Length from ``min_length..max_length`` (default 1..16); ``features=16`` fixes the feature
    size (the model's ``d_model``), otherwise it is drawn from ``min_features..max_features``
    (default 1..8). Batch size as in :func:`batch_shapes`.
    """
    min_batch, max_batch = _bounds("batch", min_batch, max_batch, default_lo=2, span=6, floor=1)
    min_length, max_length = _bounds(
        "length", min_length, max_length, default_lo=1, span=15, floor=0
    )
    lo_f, hi_f = _fixed_or_bounds(
        "features", features, min_features, max_features, default_lo=1, span=7
    )
    dims = [(min_batch, max_batch, 1), (min_length, max_length, 1), (lo_f, hi_f, 1)]
    cap = _check_max_elements(max_elements, [d[0] for d in dims], "sequence shape")
    return _capped_shape(dims, cap)
