"""What a structural check found, and how it is told.

A :class:`Verdict` is one run of a check: the dependency matrix (rows: output units, columns:
input units), which entries are allowed (the diagonal for batch mixing, the past for
causality), which were checked, which were inconclusive. The driver's ``_message``
(:mod:`._driver`) turns it into the failure message every structural check shares.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .._dependency import Comparison, RerunNoise
from .._messages import PrecisionWarning


@dataclasses.dataclass
class Verdict:
    """One run of a check: the dependency matrix (rows: outputs, columns: inputs) and more.

    ``depends`` is exact on ``checked``; ``strength`` (on failure) is the size of each
    dependency relative to the typical allowed one (gradient) or to the output's scale
    (perturbation); ``noise``: how finely the perturbation comparisons could tell (``None``
    for gradients, which are exact).
    """

    depends: np.ndarray
    allowed: np.ndarray
    checked: np.ndarray
    inconclusive: np.ndarray
    method: str
    strength: np.ndarray | None = None
    noise: RerunNoise | None = None
    note: str | None = None
    #: the first op of the forward that cut the gradient path (``method="grad"`` only)
    cut: str | None = None

    @property
    def violations(self) -> np.ndarray:
        return self.depends & ~self.allowed & self.checked

    @property
    def undecided(self) -> np.ndarray:
        return self.inconclusive & ~self.allowed & self.checked & ~self.depends

    @property
    def n_forbidden(self) -> int:
        return int((~self.allowed & self.checked).sum())

    def worst(self, k: int = 5) -> list[tuple[int, int, float]]:
        rows, cols = np.nonzero(self.violations)
        if self.strength is None:
            vals = np.ones(len(rows))
        else:
            vals = self.strength[rows, cols]
        order = np.argsort(-vals, kind="stable")[:k]
        return [(int(rows[o]), int(cols[o]), float(vals[o])) for o in order]


def confirm_cut(grad: Verdict, perturb: Callable[[], Verdict]) -> Verdict:
    """``method="auto"``: the verdict after a gradient pass whose forward cut the gradient path
    (``grad.cut``), confirmed by ``perturb()``: the perturbation's when it found a dependency
    the gradients could not show, else the gradient's, saying both ran. A model that cannot
    take perturbed inputs (it validates their range, say) keeps the gradient's verdict."""
    try:
        perturbed = perturb()
    except Exception as e:  # the model rejects perturbed inputs: keep what gradients showed
        grad.method = (
            f"grad (the forward cuts the gradient path at {grad.cut}; the perturbation that "
            f"would confirm it failed: {type(e).__name__}: {str(e).split(', so ')[0][:100]})"
        )
        return grad
    if perturbed.violations.any():
        perturbed.method = (
            f"perturb (gradients miss it: the forward cuts the gradient path at {grad.cut})"
        )
        why = (
            f"Gradients show no such dependency: the forward cuts the gradient path at "
            f"{grad.cut!r} (.detach(), .data, torch.no_grad(), argmax/argsort/sort indices, "
            ".item(), integer casts, round/floor/sign), and the dependency runs through that "
            "cut; changing the inputs shows it."
        )
        perturbed.note = why if perturbed.note is None else f"{why} {perturbed.note}"
        return perturbed
    grad.method = f"grad+perturb (the forward cuts the gradient path at {grad.cut})"
    grad.noise = perturbed.noise
    return grad


def perturbed(
    depends: np.ndarray,
    magnitude: np.ndarray,
    frame: tuple[np.ndarray, np.ndarray],
    compare: Comparison,
) -> Verdict:
    """The verdict of the exact pass by perturbation: ``depends`` on the checked pairs of
    ``frame`` (``(allowed, checked)``), each dependency's ``magnitude`` (its largest change)
    relative to the output's largest magnitude, and the rerun noise ``compare`` measured."""
    allowed, checked = frame
    depends &= checked
    return Verdict(
        depends,
        allowed,
        checked,
        np.zeros_like(depends),
        "perturb",
        strength=magnitude / (compare.scale or 1.0),
        noise=compare.noise(),
    )


def warn_within_noise(check: str, v: Verdict) -> None:
    """Say so (a :class:`PrecisionWarning`) when a passing check saw changes it could not tell
    from rerun noise: never dropped silently. Called by the driver's ``check``, itself called
    by the public check, so the warning points at the line that called the check."""
    if v.noise is not None and v.noise.within_runs and not v.violations.any():
        warnings.warn(PrecisionWarning(f"{check}: {v.noise.text()}"), stacklevel=4)


def relative_strength(mag: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Magnitudes divided by the median non-zero allowed magnitude (1.0 = a typical one)."""
    ref = mag[allowed & (mag > 0)]
    scale = float(np.median(ref)) if ref.size else float(mag.max() or 1.0)
    return mag / (scale or 1.0)


def strength_text(method: str) -> str:
    if method.startswith("grad"):
        return "gradient size relative to a typical allowed dependency"
    return "change relative to the output's largest magnitude"


def percent(n: int, total: int) -> str:
    return f"{n} of {total} ({100.0 * n / max(total, 1):.1f}%)"


def module_types(modules: Sequence[torch.nn.Module]) -> list[torch.nn.Module]:
    return [s for m in modules for s in m.modules()]
