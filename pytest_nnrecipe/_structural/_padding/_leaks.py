"""Finding leaks: which padded positions reach which real outputs, by gradient (one backward
from every real output at once, then one per output unit on a leak) or by perturbation
(resample every padded position at once, then one at a time on a leak)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ... import _dependency as dep
from ..._inputs import Inputs
from ._case import Case, gradable, layout


@dataclasses.dataclass
class Found:
    """What a run found: ``leaks[b, t]``, the padded position ``t`` of sample ``b`` reaches a
    real output; ``pairs``: ``((b, t), (b', t' or None), strength)``, the strongest first;
    the output's layout, the method, the rerun noise (perturbation)."""

    leaks: np.ndarray
    pairs: list[tuple[tuple[int, int], tuple[int, int | None], float]]
    pooled: bool
    method: str
    noise: dep.RerunNoise | None = None
    inconclusive: np.ndarray | None = None
    cut: str | None = None


def find(case: Case, mask: torch.Tensor, pooled: bool | None, method: str) -> Found:
    """Grad or perturbation, as ``method`` says; ``"auto"``: grad where it reaches the
    content, perturbation otherwise, when gradients are not finite, or to confirm a pass when
    the forward cut the gradient path."""
    if method == "perturb" or (method == "auto" and not gradable(case)):
        return by_perturbation(case, mask, pooled)
    try:
        found = _by_grad(case, mask, pooled)
    except dep.Unreachable:
        if method != "auto":
            raise
        return by_perturbation(case, mask, pooled)
    if method == "auto" and not found.leaks.any():
        if found.inconclusive is not None and found.inconclusive.any():
            again = by_perturbation(case, mask, pooled)
            again.method = "perturb (grad was inconclusive: non-finite gradients)"
            return again
        if found.cut is not None:
            again = by_perturbation(case, mask, pooled)
            if again.leaks.any():
                again.method = f"perturb (gradients miss it: the forward cuts at {found.cut})"
                return again
            found.method = f"grad+perturb (the forward cuts the gradient path at {found.cut})"
            found.noise = again.noise
    return found


def _by_grad(case: Case, mask: torch.Tensor, pooled: bool | None) -> Found:
    """One backward from every real output at once; on a leak, one per output unit."""
    graph = dep.Graph.build(case.runner(mask), case.content, case.sources, case.modules)
    b, t = layout(graph.out, case, pooled)
    padded = ~case.real

    def reduce(g: torch.Tensor, src: dep.Source) -> dep.Units | None:
        if src.time_dim is None:
            return None
        return dep.units(g, [0, 1 + src.batch_dim, 1 + src.time_dim])

    rows = _output_units(case, t)
    weights = _unit_masks(case, graph.out, (b, t), rows)
    screen = graph.screen(weights.any(0, keepdim=True), reduce, lambda u: u.nonzero.any(0) & padded)
    inconclusive = (screen.nonfinite[0] & padded).numpy()
    if not bool((screen.nonzero[0] & padded).any()):
        zeros = np.zeros(tuple(padded.shape), dtype=bool)
        return Found(zeros, [], t is None, "grad", inconclusive=inconclusive, cut=graph.cut)
    u = graph.products(weights, reduce)
    typical = u.magnitude[:, case.real]
    typical = typical[typical > 0]
    scale = float(typical.median()) if typical.numel() else 1.0
    pairs = []
    for k, unit in enumerate(rows):
        for bb, tt in torch.nonzero(u.nonzero[k] & padded).tolist():
            pairs.append(((bb, tt), unit, float(u.magnitude[k, bb, tt]) / (scale or 1.0)))
    return _found(case, pairs, t is None, "grad", None)


def _output_units(case: Case, t: int | None) -> list[tuple[int, int | None]]:
    """The real output units: ``(sample, position)`` per position, ``(sample, None)`` pooled."""
    batch = case.real.shape[0]
    if t is None:
        return [(s, None) for s in range(batch)]
    return [(s, p) for s, p in torch.nonzero(case.real).tolist()]


def _unit_masks(
    case: Case, out: torch.Tensor, dims: tuple[int, int | None], rows: list[Any]
) -> torch.Tensor:
    """One mask over the output per unit of ``rows`` (a leading dimension)."""
    b, t = dims
    batch, steps = case.real.shape
    grid = torch.zeros(len(rows), batch, steps if t is not None else 1, dtype=torch.bool)
    for k, (s, p) in enumerate(rows):
        grid[k, s, p if p is not None else 0] = True
    shape = [len(rows)] + [1] * out.dim()
    shape[1 + b] = batch
    if t is None:
        return grid.reshape(shape)
    shape[1 + t] = steps
    return grid.reshape(shape) if b < t else grid.transpose(1, 2).reshape(shape)


def _found(
    case: Case, pairs: list[Any], pooled: bool, method: str, noise: dep.RerunNoise | None
) -> Found:
    leaks = np.zeros(tuple(case.real.shape), dtype=bool)
    for (s, p), _unit, _strength in pairs:
        leaks[s, p] = True
    pairs.sort(key=lambda pair: -pair[2])
    return Found(leaks, pairs, pooled, method, noise)


def _content_masked(case: Case, where: torch.Tensor) -> Callable[[dep.Source, torch.Tensor], Any]:
    """The perturbation mask of the content at the ``(B, T)`` entries ``where``."""

    def mask(src: dep.Source, x: torch.Tensor) -> Any:
        if src.time_dim is None:
            return None
        return case.laid_out(where, x, (src.batch_dim, src.time_dim))

    return mask


def _compare(
    case: Case, mask: torch.Tensor, pooled: bool | None
) -> tuple[dep.Comparison, int | None, torch.Tensor]:
    """A comparison of runs with ``mask`` against the unperturbed content (noise measured),
    the output's time dimension and the real output units to watch."""
    compare = dep.Comparison(case.runner(mask), case.content)
    b, t = layout(compare.base, case, pooled)
    compare.measure([b] if t is None else [b, t])
    # the compared units run over ``keep`` in its order: (samples,) or (samples, positions)
    watch = torch.ones(case.real.shape[0], dtype=torch.bool) if t is None else case.real
    return compare, t, watch


def by_perturbation(case: Case, mask: torch.Tensor, pooled: bool | None) -> Found:
    """Resample every padded position at once; on a leak, one padded position at a time."""
    gen = torch.Generator().manual_seed(case.seed)
    padded = ~case.real
    with torch.no_grad():
        compare, t, watch = _compare(case, mask, pooled)
        moved = compare.moved(perturbed(case, padded, gen), watch=watch)
        if not bool((moved.nonzero & watch).any()):
            zeros = np.zeros(tuple(padded.shape), dtype=bool)
            return Found(zeros, [], t is None, "perturb", compare.noise())
        pairs = []
        for s, p in torch.nonzero(padded).tolist():
            one = torch.zeros_like(padded)
            one[s, p] = True
            u = compare.moved(perturbed(case, one, gen), watch=watch)
            for unit in torch.nonzero(u.nonzero & watch).tolist():
                key = (unit[0], unit[1] if t is not None else None)
                size = float(u.magnitude[tuple(unit)]) / (compare.scale or 1.0)
                pairs.append(((s, p), key, size))
    return _found(case, pairs, t is None, "perturb", compare.noise())


def perturbed(case: Case, where: torch.Tensor, gen: torch.Generator) -> Inputs:
    return dep.perturb(case.content, case.sources, _content_masked(case, where), gen)
