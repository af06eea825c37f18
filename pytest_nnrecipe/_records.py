"""What a check records of one call: a typed record per kind of check, read by attribute.

Every check call appends one record to the test's run context (``_context.record``): the
pictures (``_png``) draw from its arrays and curves, the failure section and the recipe report
(``_report_plugin``, ``_recipe_coverage``) show its small scalars (:meth:`CheckRecord.facts`),
and ``check_recipe`` reads the key figure of a failed step from it. A renamed field is an
error where it is read, not a picture that silently goes missing.

Standard library only: the plugin imports this module at load time. Arrays and tensors are
typed ``Any`` here (NumPy arrays, CPU tensors, detached).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def small(value: Any) -> bool:
    """A value the report carries across xdist workers: bool, int, finite float, short str."""
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 80


def model_name(model: object) -> str:
    """How records name what a check ran on: the model's class (a string is kept as is); a
    function by its name and the function it was defined in (``lambda in test_lm``)."""
    if isinstance(model, str):
        return model
    cls = model if isinstance(model, type) else type(model)
    if cls.__name__ == "function":
        qualname = str(getattr(model, "__qualname__", "function"))
        outer, local, inner = qualname.rpartition(".<locals>.")
        name = "lambda" if inner == "<lambda>" else inner
        return f"{name} in {outer}" if local else name
    return cls.__qualname__


#: A field that the record keeps for the pictures only, never a fact of the report.
_NOT_A_FACT = {"fact": False}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckRecord:
    """One call of a check: its name, what it ran on (the model's class), its verdict."""

    check: str
    model: str
    passed: bool

    def facts(self) -> dict[str, Any]:
        """The record's small scalars (see :func:`small`; ``None`` left out), by field name:
        method, mode, steps, target, ... what the failure section and the report show."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("check", "model", "passed") or not f.metadata.get("fact", True):
                continue
            if value is not None and small(value):
                out[f.name] = value
        return out


# --- the structural checks ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class DependencyRecord(CheckRecord):
    """A structural check: the dependency matrix (rows: output units, columns: input units),
    which dependencies are allowed, which are inconclusive; how it ran; the batch."""

    matrix: Any
    allowed: Any
    inconclusive: Any = None
    method: str
    mode: str
    batch: Any = None
    #: Where the batch's samples and steps lie (``batch_dim=``, ``time_dim=``): the batch
    #: picture draws samples as rows and steps as columns, whatever the layout.
    batch_dim: int = dataclasses.field(default=0, metadata=_NOT_A_FACT)
    time_dim: int | None = dataclasses.field(default=None, metadata=_NOT_A_FACT)
    #: What a unit is ("sample", "step"): the matrix's rows are ``output <unit>``.
    unit: str = dataclasses.field(default="sample", metadata=_NOT_A_FACT)
    #: Each attention backend's verdict (``assert_causal``).
    backends: dict[str, str] | None = None
    #: The matrix's row and column labels when they are not ``output <unit>`` and
    #: ``input <unit>`` (``assert_padding_ignored``: samples by input positions).
    labels: tuple[str, str] | None = dataclasses.field(default=None, metadata=_NOT_A_FACT)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InvarianceRecord(CheckRecord):
    """An invariance or equivariance check: the largest difference against its threshold (of
    the worst variant), and each variant's verdict."""

    largest: float
    threshold: float
    variants: dict[str, str] = dataclasses.field(default_factory=dict)
    #: ``|difference| / threshold`` of the worst variant, (first output dim, the rest)
    difference: Any = dataclasses.field(default=None, metadata=_NOT_A_FACT)
    batch: Any = dataclasses.field(default=None, metadata=_NOT_A_FACT)


# --- the training checks --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputsUsedRecord(CheckRecord):
    """``assert_inputs_used``: how many inputs (and columns) it checked, the unused ones
    (``unused``: their names, shortened), how it ran."""

    inputs: int
    columns: int = 0
    unused: str | None = None
    mode: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerRecord(CheckRecord):
    """``assert_optimizer_covers``: the parameters missing from the optimizer, the frozen
    ones it holds, the tensors it holds twice and those that are not the model's."""

    trainable: int
    missing: int = 0
    frozen_held: int = 0
    twice: int = 0
    stale: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingRecord(CheckRecord):
    """A training check: the loss curve (``losses[k]`` after ``k`` updates), its target, a few
    samples' predictions along the way with their targets, the batch that entered the model,
    the first conv layer's weights at the end, the optimiser and the mode."""

    losses: list[float]
    steps: int
    mode: str = "train"
    optimizer: str | None = None
    target: float | None = None
    grad_norms: list[float] | None = None
    predictions: list[Any] | None = None
    prediction_steps: list[int] | None = None
    targets: Any = None
    batch: Any = None
    first_layer_weight: Any = None
    #: ``assert_init_loss``: the tolerance and the sampling-noise allowance.
    rtol: float | None = None
    noise_allowance: float | None = None
    #: ``assert_init_loss``: the allowance is larger than ``rtol`` (and from which batch size not).
    #: ``assert_init_loss``: the band of losses at init that pass (lowest: ``None`` when no
    #: loss is too low to pass), drawn in its picture.
    passing_band: tuple[float | None, float] | None = dataclasses.field(
        default=None, metadata=_NOT_A_FACT
    )
    blunt: bool | None = None
    sharp_batch_size: int | None = None
    #: The key figure next to its threshold (a ``_results.Closeness``); ``borderline`` is
    #: ``True`` when the verdict was within its band (``None`` otherwise: no fact to show).
    closeness: Any = dataclasses.field(default=None, metadata=_NOT_A_FACT)
    borderline: bool | None = None
    #: ``assert_params_update``: the parameters that do not learn.
    failing: list[str] | None = None
    #: ``assert_params_update``: the parameters that cannot change the output by construction.
    redundant: list[str] | None = None
    #: ``assert_beats_input_independent_baseline``: the run on zeroed inputs.
    baseline_losses: list[float] | None = None
    baseline_batch: Any = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeterminismRecord(CheckRecord):
    """``assert_deterministic``: where two runs from the same seed parted (``part``:
    ``"forward"`` or ``"training"``, at update ``step``), or how many updates it compared."""

    part: str | None = None
    step: int | None = None
    steps: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleRecord(CheckRecord):
    """``assert_lr_schedule``: the learning rate per step (of the first param group, and of
    every group when there are several) and the (almost) zero line."""

    lrs: list[float]
    lrs_by_group: list[list[float]] | None = None
    total_steps: int
    floor: float
    min_fraction: float
    #: the steps at which the rate falls below the floor and later comes back
    dips: list[int] | None = None


# --- the data checks ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class BalanceRecord(CheckRecord):
    """``assert_balanced``: samples per class, the classes under their share."""

    n_samples: int
    counts: dict[str, int]
    under: list[str]
    #: The share every class must hold (``None`` when it differs per class).
    min_share: float | None = None
    nan_labels: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RepeatsRecord(CheckRecord):
    """A check that compares samples: exactly, or within ``atol``."""

    atol: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DuplicatesRecord(RepeatsRecord):
    """``assert_no_duplicates``: the repeats found, the first pairs of them."""

    n_samples: int
    n_duplicates: int
    n_groups: int
    pairs: list[Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DisjointRecord(RepeatsRecord):
    """``assert_disjoint``: the splits, their sizes, the samples they share."""

    names: list[str]
    sizes: list[int]
    n_shared: int
    pairs: list[Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelConflictsRecord(RepeatsRecord):
    """``assert_consistent_labels``: repeated inputs with another label."""

    n_samples: int
    n_conflicts: int
    conflicts: list[Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValuesRecord(CheckRecord):
    """``assert_finite_data``: the samples with bad values, counted by kind; the bounds and
    the range of the finite values."""

    n_samples: int
    bad_samples: int
    counts: dict[str, int]
    low: float | None = None
    high: float | None = None
    min: float | None = None
    max: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class NormalizationRecord(CheckRecord):
    """``assert_normalized``: per-channel statistics, measured and expected."""

    channels: int
    dim: int | None
    mean: list[float]
    std: list[float]
    expected_mean: list[float]
    expected_std: list[float]
    min: float
    max: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentationRecord(CheckRecord):
    """``assert_augmentation_consistent``: the trials and the failing (pair, seed) ones."""

    label_type: str
    pairs: int
    trials: int
    moved: int
    failed: list[Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SummaryRecord(CheckRecord):
    """``describe_data``: the size, repeats, outliers and labels of the data."""

    n_samples: int
    n_duplicates: int
    outliers: list[int]
    label_counts: dict[Any, int] | None = None


# --- the whole recipe -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecipeRecord(CheckRecord):
    """``check_recipe``: each step's verdict and time."""

    steps: dict[str, str]
    seconds: dict[str, float]
