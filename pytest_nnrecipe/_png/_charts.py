"""Curves and bars: the loss with its target and the prediction dynamics, the loss at init
within its allowed band, the learning-rate schedule, the class histogram.

Non-finite values are not dropped silently: each curve marks the steps where it was NaN/Inf.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import _canvas

LOSS_SIZE = (800, 400)
LOSS_WITH_DYNAMICS_SIZE = (800, 720)
LR_SIZE = (800, 400)
INIT_LOSS_SIZE = (800, 320)
CLASSES_SIZE = (800, 400)
#: Prediction dynamics draw at most this many samples (the records keep up to 8).
MAX_SAMPLES = 8


def loss_curve(
    losses: Sequence[float],
    path: str | os.PathLike[str],
    *,
    target: float | None = None,
    predictions: Any = None,
    prediction_steps: Sequence[int] | None = None,
    targets: Any = None,
    steps: int | None = None,
    baseline: Sequence[float] | None = None,
    title: str | None = None,
) -> str:
    """The loss per step with the ``target`` line; log y when it spans more than two decades.

    With ``predictions`` (one entry per recorded step, each the per-sample predictions on the
    fixed batch: the probability of the true class or the predicted value) a second panel shows
    how each sample's prediction moved over the steps. ``baseline``: the loss of the same run
    on zeroed inputs (the input-independent baseline), drawn on the same axes.
    """
    import numpy as np

    loss = np.asarray([float(v) for v in losses], dtype=float)
    base = None if baseline is None else np.asarray([float(v) for v in baseline], dtype=float)
    dynamics = prediction_series(predictions, targets)
    size = LOSS_WITH_DYNAMICS_SIZE if dynamics is not None else LOSS_SIZE
    fig = _canvas.figure(*size)
    if dynamics is not None:
        ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    else:
        ax, ax2 = fig.add_subplot(), None
    x = np.arange(len(loss))
    finite = np.isfinite(loss)
    label = "loss" if base is None else "loss, real inputs"
    ax.plot(x, np.where(finite, loss, np.nan), color="black", linewidth=1.5, label=label)
    if len(loss) <= 60:
        ax.plot(x[finite], loss[finite], "o", color="black", markersize=3)
    shown = loss[finite].tolist()
    if base is not None and base.size:
        ax.plot(
            np.arange(len(base)),
            np.where(np.isfinite(base), base, np.nan),
            color=_canvas.FORBIDDEN,
            linestyle="--",
            linewidth=1.5,
            label="loss, zeroed inputs (baseline)",
        )
        shown += base[np.isfinite(base)].tolist()
    log = _canvas.log_scale([*shown, *([target] if target is not None and target > 0 else [])])
    if log:
        ax.set_yscale("log")
    if target is not None and math.isfinite(target):
        _dashed(ax.axhline, target, _canvas.TARGET, f"target {target:.4g}")
        hit = np.nonzero(finite & (loss <= target))[0]
        if hit.size:
            ax.axvline(hit[0], color=_canvas.TARGET, linewidth=0.8, alpha=0.6)
            ax.annotate(
                f"reached at step {hit[0]}",
                (hit[0], target),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize=8,
                color=_canvas.TARGET,
            )
    _mark_nonfinite(ax, x, loss)
    if finite.any():
        best = int(np.nanargmin(np.where(finite, loss, np.nan)))
        ax.plot([best], [loss[best]], "v", color=_canvas.ALLOWED, label=f"min {loss[best]:.4g}")
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    summary = _summary(loss, target, steps)
    fig.suptitle(f"{title or 'training loss on the fixed batch'}\n{summary}", fontsize=10)
    bottom = ax
    if ax2 is not None and dynamics is not None:
        bottom = ax2
        preds, ylabel, target_values = dynamics
        px = _prediction_x(preds.shape[0], len(loss), prediction_steps)
        colours = [f"C{k}" for k in range(preds.shape[1])]
        classes = _class_labels(targets, preds.shape[1]) if ylabel == "p(true class)" else None
        for k in range(preds.shape[1]):
            ax2.plot(
                px,
                preds[:, k],
                color=colours[k],
                marker="." if len(px) <= 60 else None,
                label=f"sample {k}" + (f" (class {classes[k]})" if classes else ""),
            )
            if target_values is not None:
                ax2.axhline(target_values[k], color=colours[k], linestyle=":", linewidth=1.0)
        ax2.set_ylabel(ylabel)
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        note = " (dotted: targets)" if target_values is not None else ""
        ax2.set_title(f"prediction dynamics on the fixed batch{note}", fontsize=9)
    bottom.set_xlabel("optimizer step")
    if len(loss) > 1:
        ax.set_xlim(-0.5, max(len(loss) - 0.5, 1))
    return _canvas.save(fig, path)


def init_loss(
    measured: float,
    path: str | os.PathLike[str],
    *,
    expected: float,
    highest: float,
    lowest: float | None = None,
    noise: float = 0.0,
    title: str | None = None,
) -> str:
    """The loss at init on the loss axis, next to the ``expected`` loss and the band of losses
    that pass: from ``lowest`` (``None``: no lower bound) to ``highest``, whose top ``noise``
    is the sampling-noise allowance. The point is green inside the band, red outside it."""
    import numpy as np

    fig = _canvas.figure(*INIT_LOSS_SIZE)
    ax = fig.add_subplot()
    marks = [v for v in (measured, expected, highest, lowest) if v is not None and math.isfinite(v)]
    lo, hi = (min(marks), max(marks)) if marks else (0.0, 1.0)
    pad = 0.15 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1.0)
    left, right = lo - pad, hi + pad
    start = lowest if lowest is not None and math.isfinite(lowest) else left
    fixed = max(start, highest - noise) if noise > 0 else highest
    band = (
        f"passes: {start:.4g} to {highest:.4g}"
        if lowest is not None
        else (f"passes: at most {highest:.4g}")
    )
    ax.axvspan(start, fixed, color=_canvas.TARGET, alpha=0.18, label=band)
    if noise > 0:
        ax.axvspan(
            fixed,
            highest,
            color=_canvas.TARGET,
            alpha=0.08,
            hatch="//",
            label=f"of which sampling-noise allowance {noise:.3g}",
        )
    _dashed(ax.axvline, expected, "black", f"expected {expected:.4g}")
    inside = (
        math.isfinite(measured) and measured <= highest and (lowest is None or measured >= lowest)
    )
    colour = _canvas.TARGET if inside else _canvas.FORBIDDEN
    shown = measured if math.isfinite(measured) else right
    ax.plot([shown], [0.5], "o", color=colour, markersize=10, label=f"loss at init {measured:.4g}")
    ax.annotate(
        f"loss at init {measured:.4g}",
        (shown, 0.5),
        textcoords="offset points",
        xytext=(0, 12),
        ha="center",
        fontsize=9,
        color=colour,
    )
    ax.set_xlim(left, right)
    ax.set_ylim(0, 1)
    ax.set_yticks(np.array([]))
    ax.set_xlabel("loss")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)
    verdict = "inside" if inside else "outside"
    fig.suptitle(
        f"{title or 'loss at init'}\nloss at init {measured:.4g} vs {expected:.4g} expected: "
        f"{verdict} the band that passes",
        fontsize=10,
    )
    return _canvas.save(fig, path)


def lr_curve(
    lrs: Sequence[float],
    path: str | os.PathLike[str],
    *,
    total_steps: int | None = None,
    floor: float | None = None,
    title: str | None = None,
) -> str:
    """The learning rate per step; ``total_steps`` and the ``floor`` under which it counts as
    (almost) zero are marked. Log y when it spans more than two decades."""
    import numpy as np

    lr = np.asarray([float(v) for v in lrs], dtype=float)
    fig = _canvas.figure(*LR_SIZE)
    ax = fig.add_subplot()
    x = np.arange(len(lr))
    ax.plot(x, lr, color="black", linewidth=1.5, label="learning rate")
    _mark_nonfinite(ax, x, lr)
    if _canvas.log_scale(lr):
        ax.set_yscale("log")
    if floor is not None and math.isfinite(floor):
        _dashed(ax.axhline, floor, _canvas.FORBIDDEN, f"(almost) zero below {floor:.3g}", 1.0)
        below = np.nonzero(np.isfinite(lr) & (lr <= floor))[0]
        if below.size:
            ax.axvspan(
                below[0],
                max(len(lr) - 1, below[0] + 1),
                color=_canvas.FORBIDDEN,
                alpha=0.12,
                label=f"(almost) zero from step {below[0]}",
            )
    if total_steps is not None:
        _dashed(ax.axvline, total_steps, _canvas.TARGET, f"total_steps={total_steps}")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    first = f"{lr[0]:.3g}" if lr.size else "-"
    last = f"{lr[-1]:.3g}" if lr.size else "-"
    fig.suptitle(
        f"{title or 'learning-rate schedule'}\n{len(lr)} steps, first {first}, last {last}",
        fontsize=10,
    )
    return _canvas.save(fig, path)


def class_histogram(
    counts: Mapping[Any, float],
    path: str | os.PathLike[str],
    *,
    min_share: float | None = None,
    under: Iterable[Any] | None = None,
    title: str | None = None,
) -> str:
    """One bar per class; with ``min_share`` the line each class must reach. Bars below it, or
    of the classes listed in ``under``, are red."""
    items = list(counts.items())
    try:
        items.sort(key=lambda kv: kv[0])
    except TypeError:
        items.sort(key=lambda kv: str(kv[0]))
    total = sum(float(v) for _, v in items) or 1.0
    fig = _canvas.figure(*CLASSES_SIZE)
    ax = fig.add_subplot()
    need = None if min_share is None else min_share * total
    flagged = {str(c) for c in under or ()}
    colours = [
        _canvas.FORBIDDEN
        if (need is not None and float(v) < need) or str(k) in flagged
        else _canvas.ALLOWED
        for k, v in items
    ]
    pos = list(range(len(items)))
    ax.bar(pos, [float(v) for _, v in items], color=colours)
    handles = []
    if need is not None:
        handles.append(
            _dashed(
                ax.axhline, need, _canvas.TARGET, f"min_share={min_share:g} ({need:.4g} samples)"
            )
        )
    if _canvas.FORBIDDEN in colours:
        from matplotlib.patches import Patch

        handles.append(Patch(color=_canvas.FORBIDDEN, label="under-represented"))
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="upper right")
    if len(items) <= 40:
        ax.set_xticks(pos, [str(k)[:12] for k, _ in items], rotation=90 if len(items) > 12 else 0)
    ax.set_xlabel("class")
    ax.set_ylabel("samples")
    ax.grid(True, axis="y", alpha=0.3)
    low = min(items, key=lambda kv: float(kv[1])) if items else None
    sub = f"{len(items)} classes, {total:g} samples"
    if low is not None:
        sub += f"; smallest: class {low[0]} with {float(low[1]):g} ({float(low[1]) / total:.1%})"
    fig.suptitle(f"{title or 'class histogram'}\n{sub}", fontsize=10)
    return _canvas.save(fig, path)


def _dashed(draw: Any, at: float, colour: str, label: str, width: float = 1.2) -> Any:
    """A dashed reference line drawn by ``draw`` (``ax.axhline``, ``ax.axvline``) at ``at``."""
    return draw(at, color=colour, linestyle="--", linewidth=width, label=label)


def prediction_series(predictions: Any, targets: Any = None) -> tuple[Any, str, Any] | None:
    """What the dynamics panel draws: (recorded steps x samples array, y label, per-sample
    target values or None); None when there is nothing to draw.

    Each entry of ``predictions`` is the model output for the first samples at one step:
    one value per sample is drawn as is (next to its target, if given); class scores with
    integer ``targets`` become the probability of the true class (class dimension last, or
    dimension 1 as ``cross_entropy`` takes it; extra positions averaged); other outputs show
    their first unit, or the per-sample squared error when ``targets`` have their shape.
    """
    import numpy as np

    if predictions is None:
        return None
    steps = [np.asarray(_canvas.as_array(p), dtype=float) for p in predictions]
    steps = [p if p.ndim else p.reshape(1) for p in steps if p.size]
    if not steps:
        return None
    n = min(min(p.shape[0] for p in steps), MAX_SAMPLES)
    steps = [p[:n] for p in steps]
    if len({p.shape for p in steps}) != 1:
        return None
    t = None if targets is None else np.asarray(_canvas.as_array(targets))
    if t is not None and t.ndim and t.shape[0] >= n:
        t = t[:n]
    else:
        t = None
    first = steps[0]
    if first.ndim == 1 or int(np.prod(first.shape[1:])) == 1:
        series = np.stack([p.reshape(n) for p in steps])
        tv = None
        if t is not None and t.size == n and np.issubdtype(t.dtype, np.number):
            tv = t.reshape(n).astype(float)
        return series, "prediction\n(value per sample)", tv
    if t is not None and np.issubdtype(t.dtype, np.integer):
        for axis in (first.ndim - 1, 1):
            if first.shape[:axis] + first.shape[axis + 1 :] == t.shape:
                series = np.stack([_p_true(p, t, axis) for p in steps])
                return series, "p(true class)", None
    if t is not None and t.shape == first.shape:
        diff = [((p - t.astype(float)) ** 2).reshape(n, -1).mean(axis=1) for p in steps]
        return np.stack(diff), "squared error\n(mean per sample)", None
    series = np.stack([p.reshape(n, -1)[:, 0] for p in steps])
    return series, "output unit 0\n(no targets recorded)", None


def _class_labels(targets: Any, n: int) -> list[Any] | None:
    """The class index of each of the first ``n`` samples, when each has exactly one."""
    import numpy as np

    t = np.asarray(_canvas.as_array(targets))
    if t.ndim != 1 or t.shape[0] < n or not np.issubdtype(t.dtype, np.integer):
        return None
    return [int(v) for v in t[:n]]


def _p_true(logits: Any, targets: Any, axis: int) -> Any:
    """Softmax probability of the target class, averaged over non-sample positions."""
    import numpy as np

    z = logits - np.nanmax(logits, axis=axis, keepdims=True)
    p = np.exp(z)
    p = p / p.sum(axis=axis, keepdims=True)
    idx = np.expand_dims(np.clip(targets.astype(np.int64), 0, logits.shape[axis] - 1), axis)
    picked = np.take_along_axis(p, idx, axis=axis).squeeze(axis)
    return picked.reshape(picked.shape[0], -1).mean(axis=1)


def _prediction_x(n: int, n_losses: int, steps: Sequence[int] | None) -> Any:
    import numpy as np

    if steps is not None and len(steps) == n:
        return np.asarray(steps, dtype=float)
    if n == n_losses or n_losses <= 1:
        return np.arange(n, dtype=float)
    return np.linspace(0, n_losses - 1, n)


def _mark_nonfinite(ax: Any, x: Any, values: Any) -> None:
    import numpy as np

    bad = ~np.isfinite(values)
    if not bad.any():
        return
    for i, xi in enumerate(x[bad]):
        ax.axvline(
            xi,
            color=_canvas.FORBIDDEN,
            linewidth=1.0,
            alpha=0.7,
            label="NaN/Inf" if i == 0 else None,
        )


def _summary(loss: Any, target: float | None, steps: int | None) -> str:
    import numpy as np

    if loss.size == 0:
        return "no values"
    finite = loss[np.isfinite(loss)]
    parts = [f"{loss.size} values", f"first {loss[0]:.4g}"]
    if finite.size:
        parts.append(f"min {finite.min():.4g}")
    parts.append(f"last {loss[-1]:.4g}")
    if target is not None:
        parts.append(f"target {target:.4g}")
    if steps is not None:
        parts.append(f"steps {steps}")
    return ", ".join(parts)


def difference_map(
    ratio: Any, path: str | os.PathLike[str], *, threshold: float, title: str
) -> str:
    """An invariance check's ``|difference| / threshold`` per output value (rows: the
    output's first dimension, columns: the rest flattened); values above the threshold
    (ratio > 1) are crossed."""
    import numpy as np

    values = np.asarray(_canvas.as_array(ratio), dtype=float)
    values = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[:, None]
    fig = _canvas.figure(640, 420)
    ax = fig.add_subplot()
    shown = np.log10(np.maximum(values, 1e-3))
    im = ax.imshow(shown, cmap="magma", vmin=-3, aspect="auto", interpolation="nearest")
    rows, cols = np.nonzero(values > 1)
    if rows.size:
        ax.scatter(cols, rows, marker="x", color=_canvas.FORBIDDEN, s=16, label="over")
        ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(im, ax=ax, label="log10(|difference| / threshold)")
    ax.set_xlabel("output value (flattened)")
    ax.set_ylabel("output index along dim 0")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=16, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=16, integer=True))
    fig.suptitle(f"{title}\nthreshold {threshold:.3g} (measured rounding error x 4)", fontsize=10)
    return _canvas.save(fig, path)
