"""pytest-nnrecipe: Karpathy's "A Recipe for Training Neural Networks" as pytest checks.

Every public check, and every result type a check returns, is importable from here and usable
without pytest; the pytest plugin (``pytest_nnrecipe.plugin``) also offers each check as a
fixture bound to the test's device and seed. The names come from the registry of checks
(``_registry``) and are resolved lazily, so that importing the package (which pytest does to
load the plugin) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _registry

#: A literal, for type checkers (they also read the imports below); a test keeps it equal to
#: the registry's names.
__all__ = [
    "AugmentationReport",
    "Balance",
    "BaselineComparison",
    "BatchMixingResult",
    "CausalResult",
    "ChannelStats",
    "Closeness",
    "DataSummary",
    "Determinism",
    "Duplicates",
    "FieldSummary",
    "InitLoss",
    "InputsUsed",
    "Invariance",
    "LabelConflicts",
    "LossDecrease",
    "LrSchedule",
    "OptimizerCoverage",
    "Overfit",
    "Overlap",
    "PaddingResult",
    "ParamsUpdate",
    "PrecisionWarning",
    "RecipeResult",
    "StepResult",
    "ValueReport",
    "assert_augmentation_consistent",
    "assert_balanced",
    "assert_beats_input_independent_baseline",
    "assert_can_overfit",
    "assert_causal",
    "assert_consistent_labels",
    "assert_deterministic",
    "assert_disjoint",
    "assert_equivariant",
    "assert_finite_data",
    "assert_init_loss",
    "assert_inputs_used",
    "assert_invariant",
    "assert_layout_invariant",
    "assert_loss_decreases",
    "assert_lr_schedule",
    "assert_no_batch_mixing",
    "assert_no_duplicates",
    "assert_normalized",
    "assert_optimizer_covers",
    "assert_padding_ignored",
    "assert_padding_invariant",
    "assert_params_update",
    "assert_permutation_equivariant",
    "assert_permutation_invariant",
    "check_recipe",
    "describe_data",
]

if TYPE_CHECKING:  # pragma: no cover
    from ._data._augmentation import assert_augmentation_consistent
    from ._data._balance import assert_balanced
    from ._data._duplicates import assert_consistent_labels, assert_disjoint, assert_no_duplicates
    from ._data._normalization import assert_normalized
    from ._data._summary import describe_data
    from ._data._values import assert_finite_data
    from ._invariance import (
        assert_equivariant,
        assert_invariant,
        assert_layout_invariant,
        assert_padding_invariant,
        assert_permutation_equivariant,
        assert_permutation_invariant,
    )
    from ._messages import PrecisionWarning
    from ._recipe import RecipeResult, StepResult, check_recipe
    from ._results import (
        AugmentationReport,
        Balance,
        BaselineComparison,
        BatchMixingResult,
        CausalResult,
        ChannelStats,
        Closeness,
        DataSummary,
        Determinism,
        Duplicates,
        FieldSummary,
        InitLoss,
        InputsUsed,
        Invariance,
        LabelConflicts,
        LossDecrease,
        LrSchedule,
        OptimizerCoverage,
        Overfit,
        Overlap,
        PaddingResult,
        ParamsUpdate,
        ValueReport,
    )
    from ._structural._batch_mixing import assert_no_batch_mixing
    from ._structural._causal import assert_causal
    from ._structural._inputs_used import assert_inputs_used
    from ._structural._padding import assert_padding_ignored
    from ._training._determinism import assert_deterministic
    from ._training._init_loss import assert_init_loss
    from ._training._optimizer import assert_optimizer_covers
    from ._training._overfit import assert_can_overfit
    from ._training._params import assert_params_update
    from ._training._progress import (
        assert_beats_input_independent_baseline,
        assert_loss_decreases,
    )
    from ._training._schedule import assert_lr_schedule


def __getattr__(name: str) -> Any:
    module = _registry.exports().get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_nnrecipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
