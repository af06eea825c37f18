"""Text pictures for failure messages: one legend, one downsampling rule, 80 columns.

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
        if i + len(label) > len(ticks):  # a label that does not fit whole is left out, never cut
            break
        ticks[i : i + len(label)] = label
    lines = [header, " " * (width + 1) + "".join(ticks)]
    for r in rblocks:
        lines.append(f"{r.start:>{width}} " + "".join(glyph(r, c) for c in cblocks))
    lines.append(MATRIX_LEGEND)
    return "\n".join(lines)


#: The log-scale rule of every curve, text and PNG: all finite values positive and spanning
#: more than this ratio (two decades). A StepLR collapse (x0.001) or a loss falling from 2.3 to
#: 0.01 then reads on a log axis; a loss moving within one decade stays linear.
LOG_RATIO = 100.0


def use_log(*series: Sequence[float]) -> bool:
    """The one log-scale rule: True when the finite values of all ``series`` together are
    positive and span more than :data:`LOG_RATIO` (non-finite values are ignored)."""
    finite = [float(v) for vals in series for v in vals if math.isfinite(float(v))]
    if len(finite) < 2 or min(finite) <= 0:
        return False
    return max(finite) / min(finite) > LOG_RATIO


def _resolve_log(log: bool | str, *series: Sequence[float]) -> bool:
    if log == "auto":
        return use_log(*series)
    if isinstance(log, bool):
        return log
    raise ValueError(f"log={log!r} must be True, False or 'auto'.")


def sparkline(
    values: Sequence[float],
    *,
    width: int = WIDTH,
    log: bool | str = False,
    lo: float | None = None,
    hi: float | None = None,
    steps: int | None = None,
) -> str:
    """One line of block characters for a curve, ``?`` where a value is NaN/Inf.

    Longer than ``width`` it is grouped into blocks (:func:`blocks`) drawn at their mean; a
    block holding a non-finite value shows ``?`` (the worst thing inside it wins, as in the
    matrices). With ``log`` (or ``"auto"``: :func:`use_log`) values <= 0 count as non-finite.
    ``lo``/``hi`` fix the scale (in data units; several curves on one scale) and ``steps``
    the x axis (the length of the longest curve drawn next to this one), else both fit
    ``values``.
    """
    vals = [float(v) for v in values]
    if not vals:
        return ""
    log = _resolve_log(log, vals)
    means = _block_means(vals, blocks(max(steps or 0, len(vals)), width), log)
    finite = [m for m in means if math.isfinite(m)]
    if not finite:
        return "?" * len(means)
    bottom = min(finite) if lo is None else _scaled(lo, log)
    top = max(finite) if hi is None else _scaled(hi, log)
    return "".join(_glyph(m, bottom, top) for m in means)


def curve(
    values: Sequence[float],
    *,
    label: str = "loss",
    target: float | None = None,
    width: int = WIDTH,
    log: bool | str = "auto",
) -> str:
    """A labelled sparkline: first/min/last values, the number of points, and the target.

    ``log="auto"`` applies the one log-scale rule (:func:`use_log`). Notes under the line say
    what one character stands for when the curve is downsampled and what ``?`` means when it
    appears.
    """
    vals = [float(v) for v in values]
    if not vals:
        return f"{label}: (no values)"
    log = _resolve_log(log, vals)
    parts = [_stats(vals)]
    if target is not None:
        parts.append(f"target {target:.4g}")
    line = sparkline(vals, width=width, log=log)
    notes = _notes(len(vals), width, "?" in line, _nonpositive(log, vals))
    return (
        f"{label} over {len(vals)} steps ({', '.join(parts)}"
        f"{', log scale' if log else ''}):\n  {line}"
        + (f"\n  ({'; '.join(notes)})" if notes else "")
    )


def curves(
    series: Mapping[str, Sequence[float]],
    *,
    label: str = "loss",
    target: float | None = None,
    width: int = WIDTH,
    log: bool | str = "auto",
) -> str:
    """Several named curves on ONE scale, one sparkline row each, so their levels compare.

    All rows share the y range (the line under the title gives it: what ``▁`` and ``█``
    stand for) and the x axis (one character = the same steps in every row); ``target``, if
    given, is a flat row at its level. ``log="auto"`` decides the log scale from all the
    values together (:func:`use_log`).
    """
    named = {str(k): [float(v) for v in vals] for k, vals in series.items()}
    named = {k: v for k, v in named.items() if v}
    if not named:
        return f"{label}: (no values)"
    extra = [target] if target is not None and math.isfinite(target) else []
    log = _resolve_log(log, *named.values(), extra)
    if log and extra and extra[0] <= 0:
        extra = []
    n = max(len(v) for v in named.values())
    names = [*named, *(["target"] if extra else [])]
    name_w = min(max(len(k) for k in names), 24)
    spark_w = max(10, min(width, 80 - 4 - name_w))
    bins = blocks(n, spark_w)
    means = {k: _block_means(v, bins, log) for k, v in named.items()}
    scaled = [_scaled(v, log) for vals in [*named.values(), extra] for v in vals]
    finite = [v for v in scaled if math.isfinite(v)]
    if not finite:
        lo = hi = float("nan")
    else:
        lo, hi = min(finite), max(finite)
    rows = []
    for k, ms in means.items():
        rows.append(f"  {fit(k, name_w):<{name_w}}  " + "".join(_glyph(m, lo, hi) for m in ms))
    if extra:
        rows.append(
            f"  {'target':<{name_w}}  " + _glyph(_scaled(extra[0], log), lo, hi) * len(bins)
        )
    shown = [_unscaled(lo, log), _unscaled(hi, log)]
    head = (
        f"{label} over {n} steps, one shared scale{' (log)' if log else ''}: "
        f"{_BLOCKS[0]} = {shown[0]:.4g} ... {_BLOCKS[-1]} = {shown[1]:.4g}"
    )
    stats = [f"  {fit(k, name_w):<{name_w}}  {_stats(v)}" for k, v in named.items()]
    if extra:
        stats.append(f"  {'target':<{name_w}}  {extra[0]:.4g}")
    notes = _notes(n, spark_w, any("?" in r for r in rows), _nonpositive(log, *named.values()))
    return "\n".join([head, *rows, *stats] + ([f"  ({'; '.join(notes)})"] if notes else []))


def _stats(vals: list[float]) -> str:
    finite = [v for v in vals if math.isfinite(v)]
    lo = min(finite) if finite else float("nan")
    return f"first {vals[0]:.4g}, min {lo:.4g}, last {vals[-1]:.4g}"


def _notes(n: int, width: int, has_bad: bool, nonpositive: bool) -> list[str]:
    notes = []
    bins = blocks(n, width)
    if len(bins) < n:
        notes.append(f"one character = {block_size(bins)} steps (mean)")
    if has_bad:
        notes.append("? = NaN/Inf" + (" or <= 0 on the log scale" if nonpositive else ""))
    return notes


def _nonpositive(log: bool, *series: Sequence[float]) -> bool:
    return log and any(math.isfinite(v) and v <= 0 for vals in series for v in vals)


def _block_means(vals: list[float], bins: list[range], log: bool) -> list[float]:
    """The mean of each block of ``bins`` that ``vals`` reaches (a shorter curve ends early)."""
    scaled = [_scaled(v, log) for v in vals]
    return [_block_mean(scaled[b.start : b.stop]) for b in bins if b.start < len(scaled)]


def _scaled(v: float, log: bool) -> float:
    if not log:
        return v
    return math.log10(v) if v > 0 and math.isfinite(v) else float("nan")


def _unscaled(v: float, log: bool) -> float:
    return 10.0**v if log and math.isfinite(v) else v


def _glyph(m: float, lo: float, hi: float) -> str:
    if not math.isfinite(m) or not math.isfinite(lo):
        return "?"
    span = hi - lo or 1.0
    k = int((m - lo) / span * len(_BLOCKS))
    return _BLOCKS[min(max(k, 0), len(_BLOCKS) - 1)]


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters in the middle (``…``), keeping its ends.

    A dotted name (a parameter or module path) keeps whole segments: the last ones (which
    tensor), the numbers with the segment before them (which layer), the first one; so
    ``model.encoder.layer.11.attention.output.LayerNorm.weight`` at 36 becomes
    ``model.….layer.11.….LayerNorm.weight``. Other text keeps its start and a longer end.
    """
    text = str(text)
    if width < 1:
        raise ValueError(f"width={width!r} must be at least 1.")
    if len(text) <= width:
        return text
    parts = text.split(".")
    if len(parts) > 2:
        last = len(parts) - 1
        numbers = [k for k in range(last, -1, -1) if parts[k].isdigit()]
        order = [last, *numbers, *(k - 1 for k in numbers if k > 0), 0]
        order += [k for k in range(last - 1, 0, -1)]
        kept: set[int] = set()
        for k in dict.fromkeys(order):
            if len(_dotted(parts, kept | {k})) <= width:
                kept.add(k)
        if last in kept:
            return _dotted(parts, kept)
    if width == 1:
        return "…"
    head = (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _dotted(parts: list[str], kept: set[int]) -> str:
    """``parts`` joined by dots, each run of parts not ``kept`` shown as one ``…``."""
    out: list[str] = []
    for k, part in enumerate(parts):
        if k in kept:
            out.append(part)
        elif not out or out[-1] != "…":
            out.append("…")
    return ".".join(out)


def table(
    rows: Sequence[Sequence[Any]],
    *,
    shrink: int = 0,
    width: int = 80,
    indent: str = "  ",
    min_width: int = 16,
    min_last: int = 28,
) -> str:
    """Rows of cells as left-aligned columns, two spaces apart, that fit ``width`` characters.

    Too wide, the last column (free text) wraps onto lines aligned under its start, down to
    ``min_last`` characters; if that is not enough, column ``shrink`` (e.g. long parameter
    names) is cut in the middle (:func:`fit`), keeping its distinctive end, down to
    ``min_width``.
    """
    import textwrap

    cells = [[str(c) for c in row] for row in rows]
    if not cells:
        return ""
    n = max(len(r) for r in cells)
    cells = [r + [""] * (n - len(r)) for r in cells]
    widths = [max(len(r[k]) for r in cells) for k in range(n)]
    before_last = len(indent) + sum(widths[:-1]) + 2 * (n - 1)
    last_w = max(width - before_last, min(widths[-1], min_last), 1)
    over = before_last + last_w - width
    if over > 0 and n > 1 and 0 <= shrink < n - 1:
        widths[shrink] = max(min_width, widths[shrink] - over)
        for r in cells:
            r[shrink] = fit(r[shrink], widths[shrink])
        before_last = len(indent) + sum(widths[:-1]) + 2 * (n - 1)
        last_w = max(width - before_last, min(widths[-1], min_last), 1)
    lines = []
    for r in cells:
        head = indent + "".join(f"{c:<{w}}  " for c, w in zip(r[:-1], widths, strict=False))
        wrapped = textwrap.wrap(r[-1], last_w, break_on_hyphens=False) or [""]
        lines.append((head + wrapped[0]).rstrip())
        lines += [(" " * len(head) + more).rstrip() for more in wrapped[1:]]
    return "\n".join(lines)


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


def _block_mean(vals: Sequence[float]) -> float:
    """The mean of a block, NaN if any value in it is not finite."""
    if not all(math.isfinite(v) for v in vals):
        return float("nan")
    return sum(vals) / len(vals)


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x
