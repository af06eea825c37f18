"""pytest-nnrecipe: Karpathy's "A Recipe for Training Neural Networks" as pytest checks.

Every public check is importable from here and usable without pytest; the pytest plugin
(``pytest_nnrecipe.plugin``) also offers each one as a fixture bound to the test's device and
seed. Names are resolved lazily so that importing the package (which pytest does to load the
plugin) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._messages import PrecisionWarning

#: public name -> module that defines it. The plugin makes one fixture per check listed here.
CHECKS: dict[str, str] = {
    "assert_no_batch_mixing": "._batch_mixing",
    "assert_causal": "._causal",
    "assert_deterministic": "._training._determinism",
    "assert_init_loss": "._training._init_loss",
    "assert_can_overfit": "._training._overfit",
    "assert_loss_decreases": "._training._progress",
    "assert_beats_input_independent_baseline": "._training._progress",
    "assert_params_update": "._training._params",
    "assert_lr_schedule": "._training._schedule",
    "assert_no_duplicates": "._data._duplicates",
    "assert_disjoint": "._data._duplicates",
    "assert_consistent_labels": "._data._duplicates",
    "assert_finite_data": "._data._values",
    "assert_balanced": "._data._balance",
    "assert_normalized": "._data._normalization",
    "assert_augmentation_consistent": "._data._augmentation",
    "describe_data": "._data._summary",
    "check_recipe": "._recipe",
}

__all__ = [*CHECKS, "PrecisionWarning"]

if TYPE_CHECKING:  # pragma: no cover
    from ._batch_mixing import assert_no_batch_mixing
    from ._causal import assert_causal
    from ._data._augmentation import assert_augmentation_consistent
    from ._data._balance import assert_balanced
    from ._data._duplicates import assert_consistent_labels, assert_disjoint, assert_no_duplicates
    from ._data._normalization import assert_normalized
    from ._data._summary import describe_data
    from ._data._values import assert_finite_data
    from ._recipe import check_recipe
    from ._training._determinism import assert_deterministic
    from ._training._init_loss import assert_init_loss
    from ._training._overfit import assert_can_overfit
    from ._training._params import assert_params_update
    from ._training._progress import (
        assert_beats_input_independent_baseline,
        assert_loss_decreases,
    )
    from ._training._schedule import assert_lr_schedule


def __getattr__(name: str) -> Any:
    module = CHECKS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_nnrecipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
