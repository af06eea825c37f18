"""What a passing check returns: one small frozen result type per check, all public.

Every check returns its result when the property holds, so a test can assert more on what
was measured (``result.steps <= 200``); ``pytest_nnrecipe`` exports each type for annotations
(``def test_x() -> None: result: pytest_nnrecipe.Overfit = ...``). ``check_recipe``'s
``RecipeResult`` and ``StepResult`` live with the recipe (``_recipe``), which draws their table.

Standard library only: importing a result type never imports torch.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ._dependency import RerunNoise

# --- the structural checks ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DependencyResult:
    """What a passing structural check measured.

    ``matrix[i, j]``: output unit ``i`` depends on input unit ``j`` (no forbidden pair when it
    passes); ``checked[i, j]``: the pair was covered; ``method`` and ``mode``: how. Each check
    adds the units it checked, then ``pairs``: how many forbidden pairs were checked.
    ``noise``: how finely perturbation could tell (the measured rerun noise floor, the
    threshold, what moved within it); ``None`` when gradients decided.
    """

    matrix: np.ndarray
    checked: np.ndarray
    method: str
    mode: str
    noise: RerunNoise | None = dataclasses.field(default=None, kw_only=True)


@dataclasses.dataclass(frozen=True)
class BatchMixingResult(DependencyResult):
    """What :func:`assert_no_batch_mixing` measured: units are samples (off the diagonal all
    ``False`` when it passes); ``samples``: the ones whose pairs were checked."""

    samples: tuple[int, ...]
    pairs: int


@dataclasses.dataclass(frozen=True)
class CausalResult(DependencyResult):
    """What :func:`assert_causal` measured: units are steps, ``matrix[t, t']`` measured on
    every forbidden pair ``t < t'`` among the checked ``positions`` (all ``False`` when it
    passes). ``backends`` maps each attention backend run to its verdict."""

    positions: tuple[int, ...]
    pairs: int
    backends: dict[str, str]


@dataclasses.dataclass(frozen=True)
class PaddingResult(DependencyResult):
    """What :func:`assert_padding_ignored` measured: ``matrix[b, t]``, padded position ``t``
    of sample ``b`` reaches a real output (all ``False`` when it passes); ``checked``: the
    padded positions; ``padded``: how many; ``pooled``: the output was one per sample;
    ``resampled``: the inputs whose padded content was checked, labelled as given
    (``"inputs['input_ids']"``)."""

    padded: int
    pooled: bool
    resampled: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Invariance:
    """What an invariance or equivariance check compared, all within the threshold: the
    largest difference, the threshold (``NOISE_MULTIPLE`` x ``noise``, the model's measured
    rounding error at this precision and kernel noise), how many output values were
    compared, and the variants (``"transform"``, ``"permutation"``, ``"non-contiguous"``,
    ``"channels_last"``, ``"right padding"``)."""

    largest: float
    threshold: float
    noise: float
    compared: int
    variants: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class InputsUsed:
    """What :func:`assert_inputs_used` found: every checked input (and feature column)
    influences the output. ``by_gradient``: the ones a non-zero gradient showed;
    ``by_perturbation``: the ones whose changed values changed the output (integer and boolean
    inputs, and what the gradient could not show); ``ignored``: declared unused with
    ``ignore=``; ``columns``: feature columns checked (0 without ``feature_dim=``);
    ``noise``: how finely perturbation could tell, ``None`` when no perturbation ran."""

    inputs: tuple[str, ...]
    by_gradient: tuple[str, ...]
    by_perturbation: tuple[str, ...]
    ignored: tuple[str, ...]
    columns: int
    mode: str
    noise: RerunNoise | None = None


@dataclasses.dataclass(frozen=True)
class OptimizerCoverage:
    """What :func:`assert_optimizer_covers` found: each of the model's ``trainable``
    parameters is in exactly one of the optimizer's ``groups`` param groups, none of the
    ``frozen`` ones (their names) is, and the optimizer holds nothing else."""

    trainable: int
    groups: int
    frozen: tuple[str, ...]


# --- the training checks --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Determinism:
    """What was compared bitwise, all identical: the output values of two forwards, and for
    two training runs of ``steps`` updates the loss after each update (``losses[k]``: after
    ``k``), the gradients and the parameters."""

    output_values: int
    steps: int
    losses: tuple[float, ...] = dataclasses.field(repr=False)
    tensors: int
    deterministic_algorithms: bool


@dataclasses.dataclass(frozen=True)
class Closeness:
    """How close a training check's verdict was: its key figure next to its threshold.

    ``value`` passes on the ``higher`` side of ``threshold`` (``higher=True``: at least the
    threshold). A verdict within ``band`` of the threshold is ``borderline``: another seed, or
    the noise of a small batch, could flip it; ``decisive`` then names what would make it
    clear-cut (``"steps=400"``, ``"a batch of 96 samples"``), ``None`` when nothing would.
    ``percent``: the figure is a fraction, told as a percentage. ``str()`` gives the sentence
    the check's message shows.
    """

    figure: str
    value: float
    threshold: float
    higher: bool
    band: float
    decisive: str | None = None
    percent: bool = False

    @property
    def borderline(self) -> bool:
        """The value lies within ``band`` of the threshold (on either side)."""
        return abs(self.value - self.threshold) <= self.band

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.higher else self.value <= self.threshold

    def number(self, value: float) -> str:
        return f"{value:.0%}" if self.percent else f"{value:.4g}"

    def _distance(self, value: float) -> str:
        return f"{100 * value:.0f} points" if self.percent else f"{value:.4g}"

    def __str__(self) -> str:
        need = "at least" if self.higher else "at most"
        head = f"{self.figure} {self.number(self.value)} ({need} {self.number(self.threshold)})"
        distance = self._distance(abs(self.value - self.threshold))
        if not self.borderline:
            return (
                f"{head}: clear, {distance} from the threshold (borderline within "
                f"{self._distance(self.band)})"
            )
        fix = f"; {self.decisive} would make it decisive" if self.decisive else ""
        return (
            f"{head}: borderline, {distance} from the threshold (within "
            f"{self._distance(self.band)}), another seed could flip it{fix}"
        )


@dataclasses.dataclass(frozen=True)
class InitLoss:
    """The loss at init, the optimum it was compared with and their relative difference."""

    loss: float
    expected: float
    relative_excess: float
    rtol: float
    loss_name: str
    #: Sampling-noise allowance added to ``rtol * expected`` (0 when ``expected=`` was given).
    noise_allowance: float = 0.0
    #: The allowance exceeds ``rtol * expected``: an init bug of that size passes here.
    blunt: bool = False
    #: The batch size (samples) from which the check is sharp; ``None`` when it is.
    sharp_batch_size: int | None = None
    #: The loss next to the highest that passes, and whether that was borderline.
    closeness: Closeness | None = None


@dataclasses.dataclass(frozen=True)
class TrainingCurve:
    """What a training check measured of its run on a copy of the model: the loss after each
    update (``losses[k]``: after ``k`` updates)."""

    losses: tuple[float, ...] = dataclasses.field(repr=False)
    #: The key figure next to its threshold, and whether the verdict was borderline.
    closeness: Closeness | None = dataclasses.field(default=None, kw_only=True)


@dataclasses.dataclass(frozen=True)
class Overfit(TrainingCurve):
    """The curve, the updates made, the target and the loss it ended at."""

    steps: int
    target_loss: float
    final_loss: float


@dataclasses.dataclass(frozen=True)
class LossDecrease(TrainingCurve):
    """The curve, the loss at step 0 and the level the run ended at."""

    initial: float
    final: float
    relative_decrease: float


@dataclasses.dataclass(frozen=True)
class BaselineComparison(TrainingCurve):
    """Both runs' curves (``losses`` on the real inputs) and the levels they ended at."""

    baseline_losses: tuple[float, ...] = dataclasses.field(repr=False)
    final: float
    baseline_final: float
    floor: float


@dataclasses.dataclass(frozen=True)
class ParamsUpdate:
    """The parameters checked and the ones ignored."""

    checked: tuple[str, ...]
    ignored: tuple[str, ...]
    loss: float
    redundant: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class LrSchedule:
    """The learning rate of the first param group at each step, its peak and its end."""

    lrs: tuple[float, ...] = dataclasses.field(repr=False)
    peak: float
    final: float
    collapse_step: int | None
    #: steps at which the rate falls below ``min_fraction`` of its peak and later comes back
    dips: tuple[int, ...] = ()


# --- the data checks ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Duplicates:
    """What :func:`assert_no_duplicates` measured. ``pairs``: (first index, later index)."""

    n_samples: int
    n_duplicates: int
    n_groups: int
    pairs: tuple[tuple[int, int], ...]
    atol: float | None


@dataclasses.dataclass(frozen=True)
class Overlap:
    """What :func:`assert_disjoint` measured. ``pairs``: ((split, index), (split, index))."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    n_shared: int
    pairs: tuple[tuple[tuple[str, int], tuple[str, int]], ...]
    atol: float | None


@dataclasses.dataclass(frozen=True)
class LabelConflicts:
    """What :func:`assert_consistent_labels` measured. ``conflicts``: (i, j, label i, label j)."""

    n_samples: int
    n_conflicts: int
    conflicts: tuple[tuple[int, int, str, str], ...]
    atol: float | None


@dataclasses.dataclass(frozen=True)
class ValueReport:
    """What :func:`assert_finite_data` measured (over numeric leaves of the samples read)."""

    n_samples: int
    n_values: int
    min: float
    max: float
    low: float | None
    high: float | None


@dataclasses.dataclass(frozen=True)
class Balance:
    """What :func:`assert_balanced` measured: per-class counts and the share each needed."""

    n_samples: int
    counts: dict[Any, int]
    min_share: dict[Any, float]

    @property
    def ratio(self) -> float:
        """Largest class count / smallest class count (inf when a class is empty)."""
        vals: list[int] = list(self.counts.values())
        small = min(vals, default=0)
        return max(vals) / small if small else float("inf")


@dataclasses.dataclass(frozen=True)
class ChannelStats:
    """What :func:`assert_normalized` measured, one entry per channel along ``dim``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]
    expected_mean: tuple[float, ...]
    expected_std: tuple[float, ...]
    n_values: int


@dataclasses.dataclass(frozen=True)
class AugmentationReport:
    """What :func:`assert_augmentation_consistent` measured.

    ``scores``: per pair and trial, the IoU (masks/boxes) or the largest keypoint distance
    in pixels; ``moved``: trials in which the augmentation moved the input at all.
    """

    n_pairs: int
    trials: int
    moved: int
    scores: tuple[tuple[float, ...], ...]


@dataclasses.dataclass(frozen=True)
class FieldSummary:
    """One leaf of the samples: ``""`` for plain tensors, ``"[0]"``, ``"['image']"``..."""

    path: str
    dtypes: dict[str, int]
    shapes: dict[tuple[int, ...], int]
    mean: float
    std: float
    min: float
    max: float
    nan: int
    inf: int
    feature_mean: tuple[float, ...] | None
    feature_std: tuple[float, ...] | None
    repeats: int = 0
    repeat_pairs: tuple[tuple[int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What :func:`describe_data` found; ``str()`` gives the table."""

    text: str
    kind: str
    n_samples: int
    fields: tuple[FieldSummary, ...]
    label_counts: dict[Any, int] | None
    n_duplicates: int
    duplicate_pairs: tuple[tuple[int, int], ...]
    outliers: tuple[tuple[int, str, str, float, float], ...]
    constant_features: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return self.text
