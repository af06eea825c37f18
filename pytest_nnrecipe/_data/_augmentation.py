"""Augmentation consistency: a geometric augmentation must move the label with the input.

The recipe's bug: the image is flipped, the labels are not. The check needs no knowledge of
what the augmentation does. For each ``(input, label)`` pair and each trial seed it

1. runs ``augment(input, label) -> (input', label')`` under the seed;
2. *paints the label into the input space*: a probe image of the input's shape and dtype,
   bright where the label is (mask pixels, box areas, small squares at keypoints), dark
   elsewhere, and runs ``augment(probe, label)`` under the same seed, so the random choices
   (flip or not, crop offset, angle) are the same. Wherever the augmentation sends the input's
   pixels, it sends the painted label: the probe's bright region after augmentation is where
   the label *must* be;
3. paints ``label'`` and compares: masks and boxes by IoU (``>= min_iou``), keypoints by
   distance (every returned keypoint within ``tol`` pixels of the moved probe, and the moved
   probe near a returned keypoint).

It covers flips, 90-degree rotations, crops, pads, resizes, translations and affine warps, with
photometric steps in between (the probe is thresholded halfway between its darkest and
brightest value). A mask with leading dims (one-hot ``(C, H, W)``, instance masks) is painted
and compared layer by layer (up to :data:`MAX_LAYERS` layers that are neither empty nor the
whole frame): the union of a one-hot mask's layers is the whole frame, which no flip moves. Keypoints are compared as a set, so a flip that also swaps left/right
keypoint indices passes. Needs: the augmentation draws its randomness from ``torch``,
``numpy`` or ``random`` global generators (re-seeded per call; restored afterwards) and makes
the same choices for the probe as for the input (a content-dependent crop does not). The
input's spatial dims are ``spatial_dims`` (default ``(-2, -1)``: H, W last) before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _context, _messages, _rng, _text_pictures
from .._records import AugmentationRecord
from .._results import AugmentationReport
from . import _samples

LABEL_TYPES = ("mask", "keypoints", "boxes")
#: Layers of a mask (channels, instances) compared one by one, at most.
MAX_LAYERS = 8
#: Half-size of the square painted at each keypoint (a 3 x 3 square).
KEYPOINT_RADIUS = 1


def assert_augmentation_consistent(
    augment: Callable[[Any, Any], tuple[Any, Any]],
    inputs: Any,
    labels: Any,
    *,
    label_type: str | Callable[[Any, tuple[int, int]], Any] = "mask",
    spatial_dims: tuple[int, int] = (-2, -1),
    trials: int = 8,
    seed: int = 0,
    min_iou: float = 0.8,
    tol: float = 1.5,
    msg: str | None = None,
) -> AugmentationReport:
    """``augment(input, label) -> (input, label)`` moves the label exactly as the input.

    ``inputs``/``labels``: one image and its label, or lists of them. ``label_type``:
    ``"mask"`` (same H x W grid as the input, nonzero = on; leading dims allowed),
    ``"keypoints"`` (``(K, 2)`` pixel ``x, y``, or ``(K, 3)`` with visibility, 0 = not
    painted), ``"boxes"`` (``(N, 4)`` pixel ``x1, y1, x2, y2``), or a callable
    ``paint(label, (H, W)) -> bool mask`` for any other label. Each pair is tried under
    ``trials`` seeds (``seed``, ``seed + 1``, ...) so random flips/crops are exercised.
    ``min_iou``: resizes and rotations blur borders (a 30 px object keeps IoU ~0.9 after a
    bilinear half-size); lower it for masks of a few pixels. ``tol``: keypoint distance in px.
    """
    __tracebackhide__ = True
    if not callable(augment):
        raise TypeError(f"augment={augment!r} must be a callable (input, label) -> (input, label)")
    paint = _painter(label_type)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials={trials!r} must be a positive int")
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou={min_iou!r} must be in (0, 1]")
    if not tol >= 0:
        raise ValueError(f"tol={tol!r} must be >= 0 (pixels)")
    if len(tuple(spatial_dims)) != 2:
        raise ValueError(f"spatial_dims={spatial_dims!r} must name two dims (H, W)")
    if isinstance(inputs, (list, tuple)):
        if not isinstance(labels, (list, tuple)) or len(labels) != len(inputs):
            raise ValueError(
                f"inputs= is a list of {len(inputs)} images, so labels= must be a list of as "
                "many labels"
            )
        pairs = list(zip(inputs, labels, strict=True))
        if not pairs:
            raise ValueError(
                f"inputs= is an empty {type(inputs).__name__}: nothing to check: 0 samples. "
                "Pass one image and its label, or lists of them."
            )
    else:
        pairs = [(inputs, labels)]
    kind = label_type if isinstance(label_type, str) else getattr(label_type, "__name__", "paint")
    failures: list[dict[str, Any]] = []
    scores: list[tuple[float, ...]] = []
    moved_total = 0
    with _rng.preserved():
        for p, (x, y) in enumerate(pairs):
            hw = _spatial(x, spatial_dims, "inputs")
            row = []
            for t in range(trials):
                s = seed + t + 1000 * p
                outcome = _trial(augment, x, y, hw, s, paint, kind, spatial_dims, min_iou, tol, p)
                row.append(outcome["score"])
                moved_total += outcome["moved"]
                if not outcome["ok"]:
                    failures.append(outcome)
            scores.append(tuple(row))
    passed = not failures
    _context.record(AugmentationRecord(
        check="assert_augmentation_consistent",
        model=getattr(augment, "__qualname__", type(augment).__name__), passed=passed,
        label_type=kind, pairs=len(pairs), trials=trials, moved=moved_total,
        failed=[(f["pair"], f["seed"]) for f in failures[:8]],
    ))  # fmt: skip
    if not passed:
        first = failures[0]
        unchanged = [f for f in failures if f["label_unchanged"] and f["moved"]]
        if unchanged:
            headline = (
                f"the augmentation moved the input but returned the {kind} label unchanged in "
                f"{len(unchanged)} of {len(pairs) * trials} trials."
            )
            cause = (
                "forgot to transform the label with the input (e.g. a flip of the image "
                "without x -> W-1-x for keypoints/boxes, or without flipping the mask)."
            )
        else:
            headline = (
                f"the {kind} label moved differently from the input in {len(failures)} of "
                f"{len(pairs) * trials} trials."
            )
            cause = (
                "the label transform does not match the input transform: wrong axis (x vs y, "
                "H vs W), an off-by-one (W - x instead of W-1-x is within tol), a different "
                "random draw for input and label, or (x, y) vs (row, col) order."
            )
        measure = "IoU" if kind != "keypoints" else "largest keypoint distance"
        allowed = f">= {min_iou}" if kind != "keypoints" else f"<= {tol} px"
        lines = []
        for p in sorted({f["pair"] for f in failures})[:6]:
            mine = [f for f in failures if f["pair"] == p]
            scores_p = [f["score"] for f in mine]
            worst = min(scores_p) if kind != "keypoints" else max(scores_p)
            seeds = ", ".join(str(f["seed"]) for f in mine[:8]) + (" ..." if len(mine) > 8 else "")
            same = sum(f["label_unchanged"] for f in mine)
            lines.append(
                f"pair {p}: {len(mine)} of {trials} trials fail (seeds {seeds}); worst {measure} "
                f"{worst:.3g} (allowed {allowed})"
                + (f"; label returned unchanged in {same}" if same else "")
            )
        lines.append(
            f"The augmentation moved the input in {moved_total} of {len(pairs) * trials} trials."
        )
        picture = _text_pictures.masks(
            {
                "label painted into the input, augmented (where it must be)": first["probe"],
                "returned label (where it is)": first["expected"],
            }
        )
        raise _messages.fail(
            "assert_augmentation_consistent",
            headline,
            msg=msg,
            evidence=lines,
            cause=cause,
            facts={"label_type": kind, "trials": trials, "seed": seed},
            picture=picture,
        )
    return AugmentationReport(len(pairs), trials, moved_total, tuple(scores))


def _trial(
    augment: Callable[[Any, Any], Any],
    x: Any,
    y: Any,
    hw: tuple[int, int],
    s: int,
    paint: Callable[[Any, tuple[int, int]], np.ndarray],
    kind: str,
    spatial_dims: tuple[int, int],
    min_iou: float,
    tol: float,
    p: int,
) -> dict[str, Any]:
    x1, y1 = _call(augment, x, y, s)
    x2, y2 = _call(augment, x, y, s)
    if _digest((x1, y1)) != _digest((x2, y2)):
        raise ValueError(
            f"augment gives different results for pair {p} under the same seed {s}: it must "
            "draw its randomness from torch/numpy/random global generators (seeded per call), "
            "not from a private generator or the clock"
        )
    hw1 = _spatial(x1, spatial_dims, "augmented input")
    layers = _as_bool(paint(y, hw), hw, "label")
    layers1 = _as_bool(paint(y1, hw1), hw1, "augmented label")
    if len(layers) != len(layers1):  # the augmentation changed the layer count: compare unions
        layers = np.any(layers, axis=0, keepdims=True).astype(bool)
        layers1 = np.any(layers1, axis=0, keepdims=True).astype(bool)
    unchanged = _digest(y1) == _digest(y)
    results: list[dict[str, Any]] = []
    moved = False
    for k in _informative(layers):
        painted, expected = layers[k], layers1[k]
        probe1, _ = _call(augment, _probe(x, painted, spatial_dims), y, s)
        probe1 = _samples.canonical(probe1, name="augmented probe")
        moved_region = _threshold(probe1, spatial_dims, hw1)
        moved |= moved_region.shape != painted.shape or bool((moved_region != painted).any())
        if kind == "keypoints":
            score = _keypoint_distance(moved_region, _label(y1), hw1, expected)
            ok = score <= tol
        else:
            score = _iou(moved_region, expected)
            ok = score >= min_iou
        results.append({"score": score, "ok": ok, "probe": moved_region, "expected": expected})
    sign = 1 if kind == "keypoints" else -1  # the worst layer: failing first, then worst score
    worst = max(results, key=lambda r: (not r["ok"], sign * r["score"]))
    return {"pair": p, "seed": s, "moved": moved, "label_unchanged": unchanged, **worst}


def _informative(layers: np.ndarray) -> list[int]:
    """Layers of a painted label that carry a position: neither empty nor the whole frame
    (a one-hot mask's background channel covers what the others leave, so a union of all
    layers is the whole frame and would hide a forgotten flip); at most MAX_LAYERS."""
    flat = layers.reshape(len(layers), -1)
    keep = np.flatnonzero(flat.any(axis=1) & ~flat.all(axis=1))[:MAX_LAYERS].tolist()
    return keep or [0]


def _call(augment: Callable[[Any, Any], Any], x: Any, y: Any, s: int) -> tuple[Any, Any]:
    _rng.seed_all(s)
    out = augment(x, y)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(
            f"augment returned {type(out).__name__}; it must return (input, label), the same "
            "shape of call as augment(input, label)"
        )
    return out[0], out[1]


def _painter(label_type: Any) -> Callable[[Any, tuple[int, int]], np.ndarray]:
    if callable(label_type):
        return lambda y, hw: label_type(y, hw)
    builtin = {"mask": _paint_mask, "keypoints": _paint_keypoints, "boxes": _paint_boxes}
    if isinstance(label_type, str) and label_type in builtin:
        fn = builtin[label_type]
        return lambda y, hw: fn(_label(y), hw)
    raise ValueError(
        f"label_type={label_type!r} must be one of {LABEL_TYPES} or a callable "
        "paint(label, (H, W)) -> bool mask"
    )


def _label(y: Any) -> np.ndarray:
    canon = _samples.canonical(y, name="label")
    if not isinstance(canon, np.ndarray):
        raise TypeError(
            f"label {_samples.show(canon)} is not a tensor/array; for structured labels pass "
            "label_type=a callable paint(label, (H, W)) -> bool mask"
        )
    return canon


def _paint_mask(y: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if y.ndim < 2 or tuple(y.shape[-2:]) != hw:
        raise ValueError(
            f"mask label of shape {tuple(y.shape)} does not end in the input's H x W = {hw}; "
            "pass label_type='keypoints'/'boxes' or a paint callable"
        )
    return (y != 0).reshape(-1, *hw)  # one layer per leading index (channel, instance)


def _paint_keypoints(y: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    pts = _points(y)
    out = np.zeros(hw, dtype=bool)
    r = KEYPOINT_RADIUS
    for x, yy in pts:
        c, row = round(x), round(yy)
        out[max(row - r, 0) : max(row + r + 1, 0), max(c - r, 0) : max(c + r + 1, 0)] = True
    return out


def _points(y: np.ndarray) -> np.ndarray:
    y = y.astype(np.float64).reshape(-1, y.shape[-1]) if y.size else np.zeros((0, 2))
    if y.shape[-1] not in (2, 3):
        raise ValueError(
            f"keypoints label of shape {tuple(y.shape)}: expected (K, 2) x, y or (K, 3) x, y, "
            "visibility"
        )
    if y.shape[-1] == 3:
        y = y[y[:, 2] > 0]
    return y[:, :2][np.isfinite(y[:, :2]).all(axis=1)]


def _paint_boxes(y: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if y.size and y.shape[-1] != 4:
        raise ValueError(f"boxes label of shape {tuple(y.shape)}: expected (N, 4) x1, y1, x2, y2")
    out = np.zeros(hw, dtype=bool)
    for x1, y1, x2, y2 in y.reshape(-1, 4).astype(np.float64).tolist():
        c0, c1 = sorted((x1, x2))
        r0, r1 = sorted((y1, y2))
        out[max(round(r0), 0) : max(round(r1), 0), max(round(c0), 0) : max(round(c1), 0)] = True
    return out


def _probe(x: Any, painted: np.ndarray, spatial_dims: tuple[int, int]) -> Any:
    """An input of ``x``'s type, shape and dtype: bright on the painted label, dark elsewhere."""
    arr = _samples.canonical(x, name="inputs")
    hi = 255 if arr.dtype.kind in "iu" else 1
    nd = arr.ndim
    d0, d1 = (d % nd for d in spatial_dims)
    shape = [1] * nd
    shape[d0], shape[d1] = painted.shape
    values = np.broadcast_to(painted.reshape(shape) * hi, arr.shape).astype(arr.dtype)
    if _samples._is_tensor(x):
        import torch

        return torch.as_tensor(np.ascontiguousarray(values), device=x.device).to(x.dtype)
    return np.ascontiguousarray(values)


def _threshold(a: Any, spatial_dims: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError("augment returned a non-tensor input for the probe image")
    nd = a.ndim
    d0, d1 = (d % nd for d in spatial_dims)
    x = np.moveaxis(a.astype(np.float64), (d0, d1), (-2, -1)).reshape(-1, *hw).mean(axis=0)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-6:
        return np.full(hw, hi > 0.5 * (255 if a.dtype.kind in "iu" else 1))
    return x > (lo + hi) / 2


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return 0.0
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)


def _keypoint_distance(
    moved: np.ndarray, y1: np.ndarray, hw: tuple[int, int], expected: np.ndarray
) -> float:
    """Largest gap between returned keypoints (in frame) and the moved probe, in pixels."""
    everywhere = _points(y1)
    h, w = hw
    x, y = everywhere[:, 0], everywhere[:, 1]
    inside = everywhere[(x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)]
    on = np.argwhere(moved)[:, ::-1].astype(np.float64)  # (x, y) of moved probe pixels
    if len(inside) == 0 and len(on) == 0:
        return 0.0
    if len(everywhere) == 0 or len(on) == 0:
        return float(max(h, w))
    forward = 0.0  # every keypoint in the frame has moved probe pixels nearby
    if len(inside):
        forward = float(np.sqrt(((inside[:, None] - on[None]) ** 2).sum(-1)).min(axis=1).max())
    # every moved probe pixel lies near a keypoint (also one just outside the frame), allowing
    # for the painted square, grown if the augmentation enlarged the image
    scale = max(1.0, float(np.sqrt(len(on) / max(int(np.count_nonzero(expected)), 1))))
    gap = np.sqrt(((on[:, None] - everywhere[None]) ** 2).sum(-1)).min(axis=1).max()
    backward = float(gap - KEYPOINT_RADIUS * scale * np.sqrt(2))
    return max(forward, backward, 0.0)


def _spatial(x: Any, spatial_dims: Sequence[int], name: str) -> tuple[int, int]:
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name} is a {type(x).__name__}; pass a tensor or NumPy array image")
    nd = len(shape)
    try:
        return int(shape[spatial_dims[0]]), int(shape[spatial_dims[1]])
    except IndexError:
        raise ValueError(
            f"spatial_dims={tuple(spatial_dims)} is out of range for {name} of shape "
            f"{tuple(shape)} ({nd} dims)"
        ) from None


def _as_bool(m: Any, hw: tuple[int, int], what: str) -> np.ndarray:
    """A painted label as ``(layers, H, W)`` bools (one layer for an ``H x W`` painting)."""
    arr = np.asarray(_samples.canonical(m, name=what)) != 0
    if arr.ndim < 2 or arr.shape[-2:] != hw:
        raise ValueError(f"painting the {what} gave shape {arr.shape}, expected H x W = {hw}")
    return arr.reshape(-1, *hw)


def _digest(x: Any) -> bytes:
    return _samples.fingerprint(_samples.canonical(x, name="augment output"))
