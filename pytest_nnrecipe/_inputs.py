"""Model inputs as the API accepts them: a tensor, positional arguments, or keyword arguments.

:class:`Inputs` is the one normalised form every check works on. It knows how to call a model,
find the batched tensors, and rebuild itself with some tensors replaced; non-tensor entries
ride along untouched.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Positional and keyword arguments; ``single`` marks a lone tensor given as is."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    single: bool = False

    @classmethod
    def of(cls, inputs: Any, *, name: str = "inputs", model: Any = None) -> Inputs:
        """Normalise what the user passed; raise ``TypeError`` naming ``name`` otherwise.

        With ``model``, a list/tuple of same-shape tensors that ``model`` cannot take as
        positional arguments (more of them than its ``forward`` has parameters) is a list of
        samples: a ``ValueError`` says to stack them.
        """
        import torch

        if isinstance(inputs, Inputs):
            return inputs
        if isinstance(inputs, torch.Tensor):
            return cls((inputs,), {}, single=True)
        if isinstance(inputs, (tuple, list)):
            if model is not None:
                _refuse_samples_as_arguments(inputs, model, name)
            return cls(tuple(inputs), {})
        if isinstance(inputs, Mapping):
            bad = [k for k in inputs if not isinstance(k, str)]
            if bad:
                raise TypeError(
                    f"{name}= is a mapping with non-string keys {bad!r}; keyword arguments need "
                    "string keys. Pass positional arguments as a tuple instead."
                )
            return cls((), dict(inputs))
        raise TypeError(
            f"{name}= must be a tensor, a tuple/list of positional arguments or a dict of "
            f"keyword arguments; got {type(inputs).__name__}."
        )

    def call(self, model: Callable[..., Any]) -> Any:
        return model(*self.args, **self.kwargs)

    def items(self) -> Iterator[tuple[str, Any]]:
        """(label, value) for every argument; labels read like ``inputs[0]`` / ``inputs['x']``."""
        for i, a in enumerate(self.args):
            yield ("inputs" if self.single else f"inputs[{i}]"), a
        for k, v in self.kwargs.items():
            yield f"inputs[{k!r}]", v

    def tensors(self) -> list[tuple[str, Any]]:
        import torch

        return [(label, v) for label, v in self.items() if isinstance(v, torch.Tensor)]

    def map(self, fn: Callable[[str, Any], Any]) -> Inputs:
        """A copy with every tensor ``t`` (labelled ``label``) replaced by ``fn(label, t)``."""
        import torch

        # By position, not by identity: one tensor passed twice ({"input_ids": ids,
        # "labels": ids}) keeps both its labels.
        mapped = [fn(label, v) if isinstance(v, torch.Tensor) else v for label, v in self.items()]
        n = len(self.args)
        return Inputs(
            tuple(mapped[:n]), dict(zip(self.kwargs, mapped[n:], strict=True)), self.single
        )

    def to(self, device: Any) -> Inputs:
        return self.map(lambda _label, t: t.to(device))

    def batched(self, batch_dim: int, *, name: str = "inputs") -> tuple[int, list[str]]:
        """The batch size and the labels of the tensors that carry the batch.

        Every tensor must have ``batch_dim`` and agree on its length; raises ``ValueError``
        naming the argument otherwise.
        """
        tensors = self.tensors()
        if not tensors:
            raise ValueError(f"{name}= holds no tensor; pass the batch the model takes as input.")
        sizes: dict[str, int] = {}
        for label, t in tensors:
            if t.dim() == 0 or not -t.dim() <= batch_dim < t.dim():
                raise ValueError(
                    f"batch_dim={batch_dim} is out of range for {label} of shape "
                    f"{tuple(t.shape)}; pass the dimension that indexes samples (valid: "
                    f"{-t.dim()}..{t.dim() - 1})."
                )
            sizes[label] = t.shape[batch_dim]
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{k} has {v}" for k, v in sizes.items())
            raise ValueError(
                f"{name}= have different batch sizes along batch_dim={batch_dim}: {listed}. "
                "Pass tensors that share the batch; close over unbatched tensors (masks, "
                "tables) in the model, e.g. model=lambda x: net(x, mask=mask)."
            )
        return next(iter(sizes.values())), list(sizes)


def _refuse_samples_as_arguments(
    inputs: list[Any] | tuple[Any, ...], model: Any, name: str
) -> None:
    """A list of per-sample tensors handed over as the batch: the model would get each sample
    as one positional argument and fail with "forward() takes 2 positional arguments but 9
    were given". Told apart from positional arguments by the model's signature: only when it
    takes fewer positional parameters than there are tensors, all of one shape and dtype."""
    import torch

    if len(inputs) < 2 or not all(isinstance(t, torch.Tensor) for t in inputs):
        return
    first = inputs[0]
    if any(t.shape != first.shape or t.dtype != first.dtype for t in inputs):
        return
    takes = _positional_capacity(model)
    if takes is None or len(inputs) <= takes:
        return
    if isinstance(model, torch.nn.Module):
        who, target = f"{type(model).__name__}.forward", model.forward
    else:
        who, target = getattr(model, "__name__", type(model).__name__), model
    plural = "s" if takes != 1 else ""
    raise ValueError(
        f"{name}= is a {type(inputs).__name__} of {len(inputs)} tensors of one shape "
        f"{tuple(first.shape)}, but model= takes {takes} positional argument{plural}: "
        f"{who}{inspect.signature(target)}. A list or tuple means positional arguments, one "
        f"per parameter. If these are samples, stack them into one batch: "
        f"{name}=torch.stack(samples). To pass several arguments, pass a tuple of as many as "
        f"the model takes, e.g. {name}=(x, mask)."
    )


def _positional_capacity(model: Any) -> int | None:
    """How many positional arguments ``model`` takes at most; None if any number, or unknown
    (no signature, or forward pre-hooks that may rewrite the arguments)."""
    import torch

    target = model
    if isinstance(model, torch.nn.Module):
        if getattr(model, "_forward_pre_hooks", None) or getattr(
            torch.nn.modules.module, "_global_forward_pre_hooks", None
        ):
            return None
        target = model.forward
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(kind in positional for kind in kinds)
