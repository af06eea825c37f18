"""The dependency matrix as a heatmap: what depends on what, and which of it is forbidden.

Same meaning as the text picture (:func:`pytest_nnrecipe._text_pictures.dependency_matrix`) and the
same downsampling rule: above :data:`MAX_SIDE` cells a side is grouped into blocks and a block
shows the worst thing inside it, so one leaking pair never disappears into an average.
"""

from __future__ import annotations

import os
from typing import Any

from .. import _text_pictures
from . import _canvas

SIZE = (720, 640)
#: Largest side drawn cell by cell; larger matrices are grouped into blocks.
MAX_SIDE = 128
#: Up to this side every forbidden cell also gets a red outline.
OUTLINE_SIDE = 48

# Cell codes, in drawing order (a block takes the largest code inside it).
_NONE_FORBIDDEN, _NONE_ALLOWED, _ALLOWED, _INCONCLUSIVE, _VIOLATION = range(5)


def dependency_matrix(
    depends: Any,
    allowed: Any,
    path: str | os.PathLike[str],
    *,
    inconclusive: Any = None,
    rows: str = "output sample",
    cols: str = "input sample",
    title: str | None = None,
) -> str:
    """Draw ``depends[i, j]`` ("row i depends on column j") over the ``allowed`` region.

    Colours: grey background = allowed region, blue = allowed dependency, red (outlined) =
    forbidden dependency, orange = inconclusive, white = no dependency where none may exist.
    """
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    dep = np.asarray(_canvas.as_array(depends), dtype=bool)
    ok = np.asarray(_canvas.as_array(allowed), dtype=bool)
    if dep.ndim != 2 or ok.shape != dep.shape:
        raise ValueError(
            f"depends and allowed must be 2-D of one shape, got {dep.shape} and {ok.shape}"
        )
    unk = (
        np.zeros_like(dep)
        if inconclusive is None
        else np.asarray(_canvas.as_array(inconclusive), dtype=bool)
    )
    codes = np.full(dep.shape, _NONE_FORBIDDEN, dtype=np.int8)
    codes[ok] = _NONE_ALLOWED
    codes[dep & ok] = _ALLOWED
    codes[unk & ~(dep & ~ok)] = _INCONCLUSIVE
    codes[dep & ~ok] = _VIOLATION
    shape: tuple[int, ...] = tuple(codes.shape)
    n_rows, n_cols = shape[0], shape[1]
    n_bad = int((dep & ~ok).sum())
    n_forbidden = int((~ok).sum())

    cells, rblocks, cblocks = _downsample(codes)
    fig = _canvas.figure(*SIZE)
    ax = fig.add_subplot()
    cmap = ListedColormap(
        ["white", _canvas.REGION, _canvas.ALLOWED, _canvas.INCONCLUSIVE, _canvas.FORBIDDEN]
    )
    ax.imshow(
        cells,
        cmap=cmap,
        vmin=-0.5,
        vmax=4.5,
        interpolation="nearest",
        extent=(-0.5, n_cols - 0.5, n_rows - 0.5, -0.5),
        aspect="auto" if max(n_rows, n_cols) > 4 * min(n_rows, n_cols) else "equal",
    )
    bad_r, bad_c = np.nonzero(cells == _VIOLATION)
    for r, c in zip(bad_r.tolist(), bad_c.tolist(), strict=True):
        rb, cb = rblocks[r], cblocks[c]
        if len(rblocks) <= OUTLINE_SIDE and len(cblocks) <= OUTLINE_SIDE:
            ax.add_patch(
                Rectangle(
                    (cb.start - 0.5, rb.start - 0.5),
                    len(cb),
                    len(rb),
                    fill=False,
                    edgecolor="black",
                    linewidth=1.2,
                )
            )
    if len(bad_r) and (len(rblocks) > OUTLINE_SIDE or len(cblocks) > OUTLINE_SIDE):
        # Too small to outline: ring each forbidden block so a lone one stays visible.
        centres_c = [(cblocks[c].start + cblocks[c].stop - 1) / 2 for c in bad_c.tolist()]
        centres_r = [(rblocks[r].start + rblocks[r].stop - 1) / 2 for r in bad_r.tolist()]
        ax.scatter(
            centres_c,
            centres_r,
            s=60,
            facecolors="none",
            edgecolors=_canvas.FORBIDDEN,
            linewidths=1.0,
        )
    if len(rblocks) <= 32 and len(cblocks) <= 32:
        # Cell grid lines make single cells countable.
        ax.set_xticks(np.arange(-0.5, n_cols, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n_rows, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="minor", length=0)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.set_xlabel(f"{cols} j (depended on) →")
    ax.set_ylabel(f"← {rows} i (depends)")
    head = title or "dependency matrix"
    sub = (
        f"{n_bad} forbidden {'dependency' if n_bad == 1 else 'dependencies'} "
        f"among {n_forbidden} pairs that must not depend"
    )
    if len(rblocks) < n_rows or len(cblocks) < n_cols:
        sub += (
            f"\ndownsampled: one cell = {_text_pictures.block_size(rblocks)} x "
            f"{_text_pictures.block_size(cblocks)} "
            "entries and shows the worst of them"
        )
    fig.suptitle(f"{head}\n{sub}", fontsize=10)
    legend = [
        Patch(facecolor=_canvas.FORBIDDEN, edgecolor="black", label="forbidden dependency"),
        Patch(facecolor=_canvas.ALLOWED, label="allowed dependency"),
        Patch(facecolor=_canvas.REGION, edgecolor="#999999", label="allowed, none found"),
        Patch(facecolor="white", edgecolor="#999999", label="none"),
        Patch(facecolor=_canvas.INCONCLUSIVE, label="inconclusive"),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _canvas.save(fig, path)


def _downsample(codes: Any) -> tuple[Any, list[range], list[range]]:
    import numpy as np

    n_rows, n_cols = codes.shape
    rblocks = _text_pictures.blocks(n_rows, MAX_SIDE)
    cblocks = _text_pictures.blocks(n_cols, MAX_SIDE)
    if len(rblocks) == n_rows and len(cblocks) == n_cols:
        return codes, rblocks, cblocks
    out = np.empty((len(rblocks), len(cblocks)), dtype=codes.dtype)
    for i, r in enumerate(rblocks):
        band = codes[r.start : r.stop].max(axis=0)
        for j, c in enumerate(cblocks):
            out[i, j] = band[c.start : c.stop].max()
    return out, rblocks, cblocks
