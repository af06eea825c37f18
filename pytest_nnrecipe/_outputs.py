"""Which tensor of a model's output a check looks at (the ``output=`` argument)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


def select(out: Any, output: Any = None, *, single: bool = False) -> Any:
    """The checked tensor of ``out``.

    ``output=None``: the tensor itself; the first tensor of a tuple/list; for a mapping or an
    object with attributes (Hugging Face ``ModelOutput``, a dataclass) ``logits`` if present,
    else its first tensor — with ``single=True`` (the training checks, whose loss would train
    on whatever is picked) its only tensor: several and no ``logits`` raise ``ValueError``
    listing them. Otherwise ``output`` is a key, an attribute name, an index, or a callable
    ``out -> Tensor``. Raises ``ValueError`` naming ``output=`` when nothing matches.
    """
    import torch

    if callable(output) and not isinstance(output, (str, int)):
        picked = output(out)
        if not isinstance(picked, torch.Tensor):
            raise ValueError(
                f"output={_name(output)} returned {type(picked).__name__}, not a tensor; "
                "make the selector return the tensor to check."
            )
        return picked
    if output is None:
        if isinstance(out, torch.Tensor):
            return out
        fields = _fields(out)
        if "logits" in fields and isinstance(fields["logits"], torch.Tensor):
            return fields["logits"]
        named = [(k, v) for k, v in fields.items() if isinstance(v, torch.Tensor)]
        if single and len(named) > 1 and not isinstance(out, (tuple, list)):
            listed = ", ".join(f"{k!r} {tuple(v.shape)}" for k, v in named)
            raise ValueError(
                f"the model returned {_describe(out)} with {len(named)} tensors and no "
                f"'logits': {listed}. Which one is the prediction the loss trains? Pass "
                f"output=, e.g. output={named[0][0]!r} (or a callable out -> Tensor)."
            )
        for value in fields.values():
            if isinstance(value, torch.Tensor):
                return value
        raise ValueError(
            f"the model returned {_describe(out)} with no tensor in it; pass output= "
            "(a key, an index or a callable out -> Tensor) to say what to check."
        )
    fields = _fields(out)
    key: Any = output
    if isinstance(out, (tuple, list)) and isinstance(output, int):
        key = str(output % len(out)) if -len(out) <= output < len(out) else str(output)
    if key in fields and isinstance(fields[key], torch.Tensor):
        return fields[key]
    available = [k for k, v in fields.items() if isinstance(v, torch.Tensor)]
    raise ValueError(
        f"output={output!r} finds no tensor in {_describe(out)}; tensors available: "
        f"{available or 'none'}. Pass one of those, or a callable out -> Tensor."
    )


def _fields(out: Any) -> dict[Any, Any]:
    if isinstance(out, (tuple, list)) and not hasattr(out, "_fields"):
        return {str(i): v for i, v in enumerate(out)}
    if hasattr(out, "_fields"):  # namedtuple
        return {**{str(i): v for i, v in enumerate(out)}, **out._asdict()}
    if isinstance(out, Mapping):  # dict, and ModelOutput (an OrderedDict)
        return dict(out)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    if hasattr(out, "__dict__"):
        return dict(vars(out))
    return {}


def _describe(out: Any) -> str:
    return f"a {type(out).__name__}"


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))
