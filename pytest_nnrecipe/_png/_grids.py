"""The exact batch that entered the model, and the first layer's filters.

Images (``N x C x H x W`` with ``C`` in {1, 3}, ``N x H x W`` square, or channels-last) are
drawn as a grid, each image scaled to its own min-max so a badly normalised one still shows its
content (the title gives the raw range). Anything else is a heatmap: samples x features,
samples x time (first feature) for sequences, token ids as integers.
"""

from __future__ import annotations

import math
import os
from typing import Any

from . import _canvas

GRID_SIZE = (720, 720)
HEATMAP_SIZE = (800, 480)
#: At most this many images or filters are drawn (the first ones).
MAX_TILES = 64


def looks_like_images(shape: tuple[int, ...]) -> bool:
    """``N,C,H,W`` with C in {1, 3}, channels-last ``N,H,W,C``, or square ``N,H,W`` (H >= 8)."""
    if len(shape) == 4:
        return shape[1] in (1, 3) or shape[3] in (1, 3)
    if len(shape) == 3:
        return shape[1] == shape[2] and shape[1] >= 8
    return False


def batch(
    data: Any,
    path: str | os.PathLike[str],
    *,
    kind: str = "auto",
    title: str | None = None,
    batch_dim: int = 0,
    time_dim: int | None = None,
) -> str:
    """Draw the batch that entered the model; ``kind`` is "auto", "images" or "heatmap".

    ``batch_dim`` and ``time_dim``: where the samples and the steps lie (a structural check's
    arguments). Samples are always the rows; with ``time_dim`` the batch is a sequence, drawn
    as a heatmap of samples x time steps (of the first feature), whatever its layout:
    ``(B, C, T)`` with ``time_dim=-1`` shows time steps along x, not channels.
    """
    import numpy as np

    raw = data
    arr = _canvas.as_array(data)
    if kind not in ("auto", "images", "heatmap"):
        raise ValueError(f"kind={kind!r} is not one of 'auto', 'images', 'heatmap'")
    shape = tuple(int(s) for s in arr.shape)
    arr, steps = _samples_first(arr, batch_dim, time_dim)
    if steps:
        kind = "heatmap"
    head = title or "batch that entered the model"
    desc = f"shape {' x '.join(map(str, shape)) or 'scalar'}, {_dtype(raw, arr)}, {_range(arr)}"
    n = int(arr.shape[0]) if arr.ndim else 1
    if kind == "images" or (kind == "auto" and looks_like_images(tuple(arr.shape))):
        tiles = _image_tiles(np.asarray(arr, dtype=float))
        fig = _canvas.figure(*GRID_SIZE)
        _draw_tiles(fig, tiles, label="sample")
        shown = f"first {len(tiles)} of {n}" if len(tiles) < n else f"{len(tiles)}"
        fig.suptitle(
            f"{head}\n{desc}\n{shown} images, each scaled to its own min-max for display",
            fontsize=10,
        )
        return _canvas.save(fig, path)
    return _heatmap(arr, path, head=head, desc=desc, integer=_is_integer(arr), steps=steps)


def _samples_first(arr: Any, batch_dim: int, time_dim: int | None) -> tuple[Any, bool]:
    """``arr`` with its samples on dim 0 and, when ``time_dim`` names one of its dimensions,
    its steps on dim 1; and whether it is laid out as a sequence. Dimensions out of range
    (an input without that axis) leave it as it is."""
    import numpy as np

    nd = arr.ndim
    if nd < 2 or not -nd <= batch_dim < nd:
        return arr, False
    b = batch_dim % nd
    t = time_dim % nd if time_dim is not None and -nd <= time_dim < nd else None
    if t == b:
        t = None
    order = [b] + ([t] if t is not None else [])
    arr = np.moveaxis(arr, order, list(range(len(order))))
    return arr, t is not None


def conv_weights(
    weight: Any,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> str:
    """First-layer filters as a grid: one tile per output channel, each scaled to its min-max.

    ``(out, 3, kh, kw)`` tiles are RGB; ``(out, 1, kh, kw)`` grey; other input counts show
    input channel 0. 1-D convolutions ``(out, in, k)`` are tiles of in x k.
    """
    import numpy as np

    w = np.asarray(_canvas.as_array(weight), dtype=float)
    if w.ndim not in (3, 4):
        raise ValueError(f"conv weight must be 3-D or 4-D, got shape {w.shape}")
    shape = " x ".join(map(str, w.shape))
    note = ""
    if w.ndim == 4:
        if w.shape[1] == 3:
            tiles = [np.moveaxis(t, 0, -1) for t in w[:MAX_TILES]]
        else:
            tiles = [t[0] for t in w[:MAX_TILES]]
            if w.shape[1] > 1:
                note = f"showing input channel 0 of {w.shape[1]}; "
    else:
        tiles = list(w[:MAX_TILES])
        note = "tiles: input channel (rows) x kernel position (columns); "
    tiles = [_normalise(t) for t in tiles]
    fig = _canvas.figure(*GRID_SIZE)
    _draw_tiles(fig, tiles, label="filter")
    fig.suptitle(
        f"{title or 'first-layer weights'}\nshape {shape}, {_range(w)}\n"
        f"{note}each filter scaled to its own min-max",
        fontsize=10,
    )
    return _canvas.save(fig, path)


def _image_tiles(arr: Any) -> list[Any]:
    import numpy as np

    if arr.ndim == 4 and arr.shape[1] not in (1, 3) and arr.shape[3] in (1, 3):
        arr = np.moveaxis(arr, 3, 1)  # channels-last -> channels-first
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"images need 3 or 4 dims, got shape {arr.shape}")
    tiles = []
    for img in arr[:MAX_TILES]:
        if img.shape[0] == 3:
            tiles.append(_normalise(np.moveaxis(img, 0, -1)))
        else:
            tiles.append(_normalise(img[0]))
    return tiles


def _normalise(t: Any) -> Any:
    """Scale to [0, 1] by the tile's own finite min-max; non-finite entries become 0."""
    import numpy as np

    t = np.asarray(t, dtype=float)
    fin = np.isfinite(t)
    if not fin.any():
        return np.zeros_like(t)
    lo, hi = t[fin].min(), t[fin].max()
    out = (t - lo) / (hi - lo) if hi > lo else np.full_like(t, 0.5)
    return np.where(fin, out, 0.0)


def _draw_tiles(fig: Any, tiles: list[Any], *, label: str) -> None:
    """One axes per tile in a near-square grid, numbered; grey tiles use the grey colormap."""
    n = max(len(tiles), 1)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= len(tiles):
            ax.set_axis_off()
            continue
        t = tiles[k]
        if t.ndim == 3:
            ax.imshow(t, interpolation="nearest")
        else:
            ax.imshow(t, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"{label} {k}", fontsize=7 if cols > 6 else 8, pad=2)
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)


def _heatmap(
    arr: Any,
    path: str | os.PathLike[str],
    *,
    head: str,
    desc: str,
    integer: bool,
    steps: bool = False,
) -> str:
    """Samples x values; with ``steps``, ``arr`` is (samples, steps, ...): samples x steps."""
    import numpy as np

    note = ""
    xlabel = "token position" if integer else "feature"
    if steps:
        xlabel = "time step"
        if arr.ndim > 3:
            arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr[:, None]
        note, xlabel = "one value per sample", ""
    elif arr.ndim == 3:
        note, xlabel = f"feature 0 of {arr.shape[2]} per sample and time step", "time step"
        arr = arr[:, :, 0]
    elif arr.ndim > 3:
        note = f"each sample flattened to {int(np.prod(arr.shape[1:]))} values"
        arr = arr.reshape(arr.shape[0], -1)
    values = np.asarray(arr, dtype=float)
    fig = _canvas.figure(*HEATMAP_SIZE)
    ax = fig.add_subplot()
    fin = values[np.isfinite(values)]
    if integer:
        im = ax.imshow(values, cmap="viridis", aspect="auto", interpolation="nearest")
        if values.size <= 16 * 32:
            lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
            mid = (lo + hi) / 2
            size = 8 if values.size <= 8 * 16 else 6
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    # Dark text on the bright (yellow) end of viridis, light on the dark end.
                    colour = "black" if v > mid else "white"
                    ax.text(
                        j, i, f"{int(v)}", ha="center", va="center", fontsize=size, color=colour
                    )
    elif fin.size and fin.min() < 0 < fin.max():
        lim = float(np.abs(fin).max())
        im = ax.imshow(
            values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest"
        )
    else:
        im = ax.imshow(values, cmap="viridis", aspect="auto", interpolation="nearest")
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.nonzero(bad)
        ax.scatter(c, r, marker="x", color=_canvas.FORBIDDEN, s=20, label="NaN/Inf")
        ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(im, ax=ax, label="token id" if integer else "value")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sample")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=16, integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=16, integer=True))
    fig.suptitle(f"{head}\n{desc}" + (f"\n{note}" if note else ""), fontsize=10)
    return _canvas.save(fig, path)


def _is_integer(arr: Any) -> bool:
    import numpy as np

    return bool(np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool)


def _dtype(raw: Any, arr: Any) -> str:
    return str(getattr(raw, "dtype", arr.dtype))


def _range(arr: Any) -> str:
    import numpy as np

    values = np.asarray(arr, dtype=float)
    fin = values[np.isfinite(values)]
    out = f"values [{fin.min():.4g}, {fin.max():.4g}]" if fin.size else "no finite values"
    if fin.size:
        out += f", mean {fin.mean():.3g}, std {fin.std():.3g}"
    n_bad = values.size - fin.size
    if n_bad:
        out += f", {n_bad} NaN/Inf"
    return out
