"""The call :func:`assert_padding_ignored` checks: the mask held fixed, the content that is
resampled (every other input with the mask's length, or those ``ids=`` names), the layout.

Every argument is checked here, before the model runs: a misuse is a ``TypeError`` or
``ValueError`` that names the argument and the fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from ... import _context
from ... import _dependency as dep
from ..._inputs import Inputs


@dataclasses.dataclass(frozen=True)
class Case:
    """One call: the content inputs (all but the mask), where the mask goes back in, the mask
    as given and as real positions ``(B, T)``, the content's sources, the output selector."""

    model: Any
    content: Inputs
    where: str | int
    given: torch.Tensor
    real: torch.Tensor  # bool (B, T) on the CPU: True at real positions
    sources: dict[str, dep.Source]
    dims: tuple[int, int]  # (batch_dim, time_dim) of the mask
    names: dict[str, str]  # content label -> the label among the inputs as given
    output: Any
    modules: list[torch.nn.Module]
    seed: int

    @property
    def device(self) -> torch.device:
        return self.given.device

    def runner(self, mask: torch.Tensor) -> dep.Runner:
        """The model with ``mask`` in the mask's place (a fresh copy per call)."""
        where, model = self.where, self.model

        def call(*args: Any, **kwargs: Any) -> Any:
            m = mask.clone()
            if isinstance(where, str):
                return model(*args, **{**kwargs, where: m})
            return model(*args[:where], m, *args[where:], **kwargs)

        return dep.Runner(call, self.output, self.seed)

    def resampled(self) -> list[str]:
        """The inputs whose padded content the check resamples, labelled as given."""
        return [self.names[k] for k, s in self.sources.items() if s.time_dim is not None]

    def laid_out(self, m: torch.Tensor, like: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
        """``m`` over (batch, time) shaped to broadcast against ``like`` at ``dims``."""
        b, t = dims[0] % like.dim(), dims[1] % like.dim()
        shape = [1] * like.dim()
        shape[b], shape[t] = m.shape
        return m.reshape(shape) if b < t else m.T.reshape(shape)


def case_of(
    model: Any, inputs: Any, mask: Any, ids: Any, dims: tuple[int, int], output: Any
) -> Case:
    """Check the arguments (``TypeError``/``ValueError`` naming them); the call's parts."""
    dep.check_model(model)
    batch_dim, time_dim = dims
    for name, value in (("time_dim", time_dim), ("batch_dim", batch_dim)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}={value!r} must be an int (a dimension of the mask).")
    ins = Inputs.of(inputs, model=model)
    given, where, content = split_mask(ins, mask)
    if given.dim() != 2 or not (-2 <= batch_dim < 2 and -2 <= time_dim < 2):
        raise ValueError(
            f"the mask {label(where)} has shape {tuple(given.shape)}; it must be 2-D with "
            f"samples at batch_dim={batch_dim} and positions at time_dim={time_dim} (B, T)."
        )
    if batch_dim % 2 == time_dim % 2:
        raise ValueError(
            f"time_dim={time_dim} and batch_dim={batch_dim} name the same dimension of the "
            "mask; pass the dimension that indexes positions."
        )
    values = torch.unique(given.detach().cpu())
    if given.is_complex() or not bool(((values == 0) | (values == 1)).all()):
        raise ValueError(
            f"the mask {label(where)} holds values other than 0 and 1 "
            f"({values[:6].tolist()}); pass a 0/1 or bool mask with 1/True at real positions "
            "(as Hugging Face's attention_mask), not an additive (0/-inf) one."
        )
    real = given.detach().cpu() != 0
    real = real if batch_dim % 2 == 0 else real.T
    batch, steps = real.shape
    if not bool((~real).any()):
        raise ValueError(
            f"the mask {label(where)} marks every position real: there is no padding to "
            "check. Pass a batch with padded sequences (0/False in the mask)."
        )
    empty = torch.nonzero(~real.any(1)).flatten().tolist()
    if empty:
        raise ValueError(
            f"the mask {label(where)} marks no real position in sample(s) {empty}; every "
            "sample needs at least one real position."
        )
    n, _labels = content.batched(batch_dim)
    if n != batch:
        raise ValueError(
            f"the mask {label(where)} has {batch} samples along batch_dim={batch_dim}, the "
            f"other inputs {n}; pass the mask of this batch."
        )
    sources = dep.sources_of(content, batch_dim, time_dim, steps)
    chosen = _chosen(ins, ids, where)
    if chosen is not None:
        sources = _held(sources, chosen, content, (ids, time_dim, steps))
    if not any(s.time_dim is not None for s in sources.values()):
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in content.tensors())
        raise ValueError(
            f"no input but the mask has {steps} positions along time_dim={time_dim} ({shapes}),"
            " so there is no padded content to check; pass the token ids or embeddings with "
            "the mask's length (or the right time_dim=)."
        )
    ctx = _context.current()
    return Case(
        model=model,
        content=content,
        where=where,
        given=given,
        real=real,
        sources=sources,
        dims=(batch_dim, time_dim),
        names=_names(content, where),
        output=output,
        modules=dep.modules_of(model),
        seed=0 if ctx is None or ctx.seed is None else ctx.seed,
    )


def split_mask(ins: Inputs, mask: Any) -> tuple[torch.Tensor, str | int, Inputs]:
    """The mask tensor, where it goes (a key, or a positional index normalised), and the other
    inputs; a misuse of ``mask=`` is a ``TypeError``/``ValueError`` that names the fix."""
    if isinstance(mask, str):
        if mask not in ins.kwargs:
            keys = list(ins.kwargs) or "none: the inputs are positional"
            raise ValueError(
                f"mask={mask!r} is not a key of inputs= (keys: {keys}); pass the key that "
                "holds the attention mask, or its index for positional inputs (mask=1)."
            )
        value = ins.kwargs[mask]
        rest = Inputs(ins.args, {k: v for k, v in ins.kwargs.items() if k != mask})
    elif isinstance(mask, int) and not isinstance(mask, bool):
        if ins.single or not -len(ins.args) <= mask < len(ins.args):
            raise ValueError(
                f"mask={mask} is no index of the positional inputs ({len(ins.args)} given, "
                f"{'a lone tensor' if ins.single else 'a tuple'}); pass inputs as a tuple "
                "with the mask in it, e.g. inputs=(ids, mask) and mask=1."
            )
        mask %= len(ins.args)
        value = ins.args[mask]
        rest = Inputs(ins.args[:mask] + ins.args[mask + 1 :], dict(ins.kwargs))
    else:
        raise TypeError(
            f"mask={mask!r} must be a key of dict inputs (a str, e.g. 'attention_mask') or an "
            "index of positional inputs (an int)."
        )
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"the mask {label(mask)} is a {type(value).__name__}; pass a tensor.")
    return value, mask, rest


def _chosen(ins: Inputs, ids: Any, where: str | int) -> dict[str, str] | None:
    """The inputs ``ids`` names, as ``{label among the inputs without the mask: label as
    given}``; ``None``: every input with the mask's length."""
    if ids is None:
        return None
    names = [ids] if isinstance(ids, (str, int)) else ids
    if not isinstance(names, Sequence) or not names:
        raise TypeError(
            f"ids={ids!r} must be None (every input with the mask's length), a key of dict "
            "inputs (e.g. 'input_ids'), an index of positional ones, or a list of them."
        )
    out = {}
    for name in names:
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            raise TypeError(
                f"ids={ids!r} holds {name!r}; name inputs by their key (a str) or their "
                "positional index (an int)."
            )
        if isinstance(name, str):
            if name not in ins.kwargs:
                keys = list(ins.kwargs) or "none: the inputs are positional"
                raise ValueError(
                    f"ids={ids!r} names {name!r}, which is not a key of inputs= (keys: {keys});"
                    " pass the key of the token ids (or embeddings) whose padded content to "
                    "resample."
                )
            key: str | int = name
            inner = label(name)
        else:
            if ins.single or not -len(ins.args) <= name < len(ins.args):
                raise ValueError(
                    f"ids={ids!r} names index {name}, which is not one of the "
                    f"{len(ins.args)} positional inputs; pass the index of the token ids."
                )
            key = name % len(ins.args)
            shift = isinstance(where, int) and key > where
            inner = label(key - 1 if shift else key)
        if key == where:
            raise ValueError(
                f"ids={ids!r} names the mask {label(where)}; the mask is held as given. Pass "
                "the inputs whose content stands at the padded positions (the token ids)."
            )
        out[inner] = label(key)
    return out


def _held(
    sources: dict[str, dep.Source],
    chosen: dict[str, str],
    content: Inputs,
    given: tuple[Any, int, int],
) -> dict[str, dep.Source]:
    """The sources with every input but the chosen ones held fixed (no time dimension: never
    resampled, never screened); a chosen one without the mask's length is an error."""
    ids, time_dim, steps = given
    values = dict(content.items())
    for inner, shown in chosen.items():
        value = values[inner]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"ids={ids!r} names {shown}, a {type(value).__name__}; not a tensor.")
        if sources[inner].time_dim is None:
            raise ValueError(
                f"ids={ids!r} names {shown} (shape {tuple(value.shape)}), which has no "
                f"dimension of the mask's {steps} positions at time_dim={time_dim}; pass the "
                "inputs that hold content per position (token ids, embeddings)."
            )
    return {
        name: src if name in chosen else dataclasses.replace(src, time_dim=None)
        for name, src in sources.items()
    }


def _names(content: Inputs, where: str | int) -> dict[str, str]:
    """Each content label as among the inputs as given (positions after the mask's shift)."""
    out = {label(k): label(k) for k in content.kwargs}
    for j in range(len(content.args)):
        out[label(j)] = label(j + 1 if isinstance(where, int) and j >= where else j)
    return out


def label(where: str | int) -> str:
    return f"inputs[{where!r}]"


def check_pooled(pooled: Any) -> bool | None:
    if pooled is not None and not isinstance(pooled, bool):
        raise TypeError(f"pooled={pooled!r} must be None (decide from the shape), True or False.")
    return pooled


def gradable(case: Case) -> bool:
    timed = [t for name, t in case.content.tensors() if case.sources[name].time_dim is not None]
    return all(t.is_floating_point() for t in timed) or dep.has_embedding_reader(case.modules)


def layout(out: torch.Tensor, case: Case, pooled: bool | None) -> tuple[int, int | None]:
    """The output's batch dimension, and its time dimension (``None``: pooled)."""
    batch, steps = case.real.shape
    b = dep.output_dim(
        out, case.dims[0], size=batch, name="batch_dim", what="batch dimension (samples)"
    )
    t = case.dims[1]
    per_position = -out.dim() <= t < out.dim() and t % out.dim() != b and out.shape[t] == steps
    if pooled is False and not per_position:
        raise ValueError(
            f"pooled=False, but the checked output (shape {tuple(out.shape)}) has no "
            f"dimension of {steps} positions at time_dim={t}; pass pooled=True or output= "
            "to pick the per-position outputs."
        )
    if pooled or not per_position:
        return b, None
    return b, t % out.dim()
