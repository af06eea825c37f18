"""Small text pictures for failure messages: one legend, one downsampling rule, 80 columns.

Every picture fits an 80-column terminal, uses no colour codes (CI logs stay readable), and,
when the data is larger than the picture, groups neighbouring cells into blocks: a block shows
the worst thing inside it, so a single violating cell is never averaged away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Cell glyphs for dependency matrices, worst first.
VIOLATION, INCONCLUSIVE, ALLOWED, NONE = "#", "?", "o", "."
MATRIX_LEGEND = (
    f"legend: {VIOLATION} forbidden dependency  {ALLOWED} allowed dependency  "
    f"{NONE} none  {INCONCLUSIVE} inconclusive"
)
MAX_SIDE = 32
WIDTH = 60
_BLOCKS = "▁▂▃▄▅▆▇█"


def blocks(n: int, max_cells: int) -> list[range]:
    """Split ``range(n)`` into at most ``max_cells`` contiguous, nearly equal blocks."""
    k = min(n, max_cells)
    edges = [round(i * n / k) for i in range(k + 1)]
    return [range(edges[i], edges[i + 1]) for i in range(k)]


def dependency_matrix(
    depends: Any,
    allowed: Any,
    *,
    rows: str,
    cols: str,
    inconclusive: Any = None,
    max_side: int = MAX_SIDE,
) -> str:
    """Draw a boolean dependency matrix: row i, column j = "row i depends on column j".

    ``depends``, ``allowed`` and ``inconclusive`` are 2-D boolean arrays (NumPy, torch or
    nested lists) of the same shape. Larger than ``max_side`` a side is grouped into blocks.
    """
    import numpy as np

    dep = np.asarray(_to_numpy(depends), dtype=bool)
    ok = np.asarray(_to_numpy(allowed), dtype=bool)
    unk = np.zeros_like(dep) if inconclusive is None else np.asarray(_to_numpy(inconclusive), bool)
    n_rows, n_cols = dep.shape
    rblocks, cblocks = blocks(n_rows, max_side), blocks(n_cols, max_side)

    def glyph(r: range, c: range) -> str:
        d = dep[r.start : r.stop, c.start : c.stop]
        a = ok[r.start : r.stop, c.start : c.stop]
        u = unk[r.start : r.stop, c.start : c.stop]
        if (d & ~a).any():
            return VIOLATION
        if u.any():
            return INCONCLUSIVE
        if d.any():
            return ALLOWED
        return NONE

    width = max(len(str(n_rows - 1)), 3)
    scale = ""
    if len(rblocks) < n_rows or len(cblocks) < n_cols:
        scale = (
            f"\n(downsampled: one cell = {block_size(rblocks)} x {block_size(cblocks)} "
            "entries and shows the worst of them)"
        )
    header = f"{rows} ↓ depends on {cols} →{scale}"
    ticks = [" "] * len(cblocks)
    for i in range(0, len(cblocks), 5):
        label = str(cblocks[i].start)
        for k, ch in enumerate(label):
            if i + k < len(ticks):
                ticks[i + k] = ch
    lines = [header, " " * (width + 1) + "".join(ticks)]
    for r in rblocks:
        lines.append(f"{r.start:>{width}} " + "".join(glyph(r, c) for c in cblocks))
    lines.append(MATRIX_LEGEND)
    return "\n".join(lines)


def sparkline(values: Sequence[float], *, width: int = WIDTH, log: bool = False) -> str:
    """One line of block characters for a curve, ``?`` where a value is NaN/Inf.

    Longer than ``width`` it is grouped into blocks (:func:`blocks`) drawn at their mean; a
    block holding a non-finite value shows ``?`` (the worst thing inside it wins, as in the
    matrices). With ``log`` values <= 0 count as non-finite.
    """
    vals = [float(v) for v in values]
    if not vals:
        return ""
    if log:
        vals = [math.log10(v) if v > 0 else float("nan") for v in vals]
    bins = blocks(len(vals), width)
    means = [_block_mean(vals[b.start : b.stop]) for b in bins]
    finite = [m for m in means if math.isfinite(m)]
    if not finite:
        return "?" * len(means)
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    out = []
    for m in means:
        if not math.isfinite(m):
            out.append("?")
        else:
            out.append(_BLOCKS[min(int((m - lo) / span * len(_BLOCKS)), len(_BLOCKS) - 1)])
    return "".join(out)


def curve(
    values: Sequence[float],
    *,
    label: str = "loss",
    target: float | None = None,
    width: int = WIDTH,
    log: bool = False,
) -> str:
    """A labelled sparkline: first/min/last values, the number of points, and the target.

    Notes under the line say what one character stands for when the curve is downsampled and
    what ``?`` means when it appears.
    """
    vals = [float(v) for v in values]
    if not vals:
        return f"{label}: (no values)"
    finite = [v for v in vals if math.isfinite(v)]
    lo = min(finite) if finite else float("nan")
    parts = [f"first {vals[0]:.4g}", f"min {lo:.4g}", f"last {vals[-1]:.4g}"]
    if target is not None:
        parts.append(f"target {target:.4g}")
    line = sparkline(vals, width=width, log=log)
    notes = []
    bins = blocks(len(vals), width)
    if len(bins) < len(vals):
        notes.append(f"one character = {block_size(bins)} steps (mean)")
    if "?" in line:
        notes.append("? = NaN/Inf" + (" or <= 0 on the log scale" if log else ""))
    return (
        f"{label} over {len(vals)} steps ({', '.join(parts)}"
        f"{', log scale' if log else ''}):\n  {line}"
        + (f"\n  ({'; '.join(notes)})" if notes else "")
    )


def bars(counts: Mapping[Any, float], *, width: int = 40, max_rows: int = 20) -> str:
    """A horizontal bar chart of ``counts`` (e.g. a class histogram), largest bar = ``width``."""
    if not counts:
        return "(empty)"
    items = list(counts.items())
    hidden = 0
    if len(items) > max_rows:
        hidden = len(items) - max_rows
        items = (
            sorted(items, key=lambda kv: kv[1])[: max_rows // 2]
            + sorted(items, key=lambda kv: kv[1])[-(max_rows - max_rows // 2) :]
        )
    total = sum(counts.values()) or 1
    top = max(v for _, v in items) or 1
    label_w = min(max(len(str(k)) for k, _ in items), 16)
    lines = []
    for k, v in items:
        bar = "█" * max(round(v / top * width), 1 if v else 0)
        lines.append(f"{str(k)[:label_w]:>{label_w}} {bar} {v:g} ({v / total:.1%})")
    if hidden:
        lines.append(f"({hidden} middle rows not shown)")
    return "\n".join(lines)


def masks(grids: Mapping[str, Any], *, max_side: int = 24) -> str:
    """Boolean H x W grids side by side (``#`` on, ``.`` off), each titled, same block rule.

    Larger than ``max_side`` a side is grouped into blocks; a block is ``#`` if any cell in it
    is on, so a one-pixel keypoint is never lost.
    """
    import numpy as np

    drawn = []
    for title, grid in grids.items():
        g = np.asarray(_to_numpy(grid), dtype=bool)
        rb, cb = blocks(g.shape[0], max_side), blocks(g.shape[1], max_side)
        rows = [
            "".join("#" if g[r.start : r.stop, c.start : c.stop].any() else "." for c in cb)
            for r in rb
        ]
        note = f"{g.shape[0]}x{g.shape[1]}"
        if len(rb) < g.shape[0] or len(cb) < g.shape[1]:
            note += f", 1 cell = {block_size(rb)}x{block_size(cb)} px"
        drawn.append((f"{title} ({note})", rows))
    lines = [f"{chr(65 + i)}: {t}" for i, (t, _) in enumerate(drawn)]
    height = max(len(rows) for _, rows in drawn)
    widths = [max(len(r) for r in rows) if rows else 0 for _, rows in drawn]
    lines.append("   ".join(f"{chr(65 + i):<{w}}" for i, w in enumerate(widths)).rstrip())
    for k in range(height):
        lines.append(
            "   ".join(
                (rows[k] if k < len(rows) else "").ljust(w)
                for (_, rows), w in zip(drawn, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def block_size(bl: list[range]) -> str:
    """How many entries one block of :func:`blocks` holds: ``"4"``, or ``"3-4"`` if uneven."""
    sizes = {len(b) for b in bl}
    return str(sizes.pop()) if len(sizes) == 1 else f"{min(sizes)}-{max(sizes)}"


_block_size = block_size  # the older private name, still used by masks()


def _block_mean(vals: Sequence[float]) -> float:
    """The mean of a block, NaN if any value in it is not finite."""
    if not all(math.isfinite(v) for v in vals):
        return float("nan")
    return sum(vals) / len(vals)


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x
