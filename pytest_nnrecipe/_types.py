"""The types of the public checks' arguments, for type checkers.

Defined only when a type checker reads them (``TYPE_CHECKING``): the checks annotate with them
under ``from __future__ import annotations``, so importing a check never evaluates them and
importing ``pytest_nnrecipe`` never imports torch.

- ``Model``: what the structural checks call: a ``torch.nn.Module`` or any callable.
- ``ModelInputs``: a tensor (one positional argument), a tuple/list (positional arguments) or
  a mapping (keyword arguments); other entries are passed through untouched.
- ``OutputSelector``: which tensor of what the model returns is checked: a key, an attribute
  name, an index, a callable ``out -> Tensor``, or ``None`` for the default rule.
- ``LossFunction``: ``loss_fn(output, targets) -> scalar tensor``.
- ``OptimizerFactory``: ``params -> Optimizer`` (the checks build their own on a copy).
- ``Scheduler``: an LR scheduler (``ReduceLROnPlateau`` too); ``SchedulerFactory``:
  ``optimizer -> Scheduler``.
- ``ModelFactory``: a zero-argument function returning a fresh ``nn.Module``.
- ``Data``: what the data checks read: a tensor, an array, a sequence of samples or a
  ``torch.utils.data.Dataset``.
- ``Method``: how the structural checks chart dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from typing import TypeAlias

    import numpy as np
    import torch

    Model: TypeAlias = torch.nn.Module | Callable[..., Any]
    ModelInputs: TypeAlias = torch.Tensor | Sequence[Any] | Mapping[str, Any]
    OutputSelector: TypeAlias = str | int | Callable[[Any], torch.Tensor] | None
    LossFunction: TypeAlias = Callable[[Any, Any], torch.Tensor]
    OptimizerFactory: TypeAlias = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
    Scheduler: TypeAlias = (
        torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    SchedulerFactory: TypeAlias = Callable[[torch.optim.Optimizer], Scheduler]
    ModelFactory: TypeAlias = Callable[[], torch.nn.Module]
    Data: TypeAlias = torch.Tensor | np.ndarray | Sequence[Any] | torch.utils.data.Dataset[Any]
    Method: TypeAlias = Literal["auto", "grad", "perturb"]
