"""``assert_padding_ignored``: what stands at padded positions never reaches a real output.

Mean pooling over the whole sequence, an attention mask that is not passed on, a mask with the
wrong polarity (``key_padding_mask=mask`` where ``nn.MultiheadAttention`` wants ``True`` at
padding) or the wrong dtype (a 0/1 float mask added to the scores): the model trains, and
its outputs for short sequences depend on whatever fills their padding. This is a dependency
question, answered exactly by the engine (:mod:`._dependency`): the forbidden pairs are
(padded input position of any sample, output at a real position or pooled output of any
sample). By gradient: backprop from every real output at once and require exactly zero
gradient at every padded position (token ids: at the output of the ``nn.Embedding`` that reads
them); by perturbation: resample the content of every padded position and require every real
output unchanged, beyond the measured rerun noise. Only on failure, one pass per real output
(gradient) or per padded position (perturbation) names the leaking pairs, and a few cheap
reruns (the mask all ones, inverted, as ``bool``, the hidden states before a pooling) read the
likely cause from the evidence.

The mask itself is never changed by the check: it is an input of the model (``mask=``, a key
of dict inputs or an index of positional ones), ``1``/``True`` at real positions (Hugging
Face's ``attention_mask``), and every other input with the mask's time dimension is content.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _context, _messages, _state, _text_pictures
from .. import _dependency as dep
from .._inputs import Inputs
from .._messages import PrecisionWarning
from .._records import DependencyRecord, model_name
from .._results import PaddingResult
from . import _verdict

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Method, Model, ModelInputs, OutputSelector

CHECK = "assert_padding_ignored"
NO_CAUSE = (
    "none of the known signatures matches (the mask unused, inverted or of the wrong dtype, "
    "a pooling over padding): the padded positions listed reach the outputs named; check "
    "the layers between them with output= (e.g. the hidden states)."
)
#: Leaking pairs listed in the message.
SHOWN = 6


def assert_padding_ignored(
    model: Model,
    inputs: ModelInputs,
    *,
    mask: str | int = "attention_mask",
    time_dim: int = 1,
    batch_dim: int = 0,
    output: OutputSelector = None,
    pooled: bool | None = None,
    method: Method = "auto",
    train: bool = False,
    msg: str | None = None,
) -> PaddingResult:
    """Assert that no output at a real position (and no pooled output) depends on the content
    of a padded position, for every sample and every padded position.

    Args:
        model: a ``torch.nn.Module`` or any callable taking ``inputs``.
        inputs: a dict of keyword arguments (Hugging Face style) or a tuple of positional
            arguments, one of which is the mask; every other tensor with the mask's length
            along ``time_dim`` is content (token ids, embeddings, token types).
        mask: where the mask is: a key of dict inputs (default ``"attention_mask"``) or an
            index of positional inputs. ``1``/``True`` marks real positions, ``0``/``False``
            padding; left, right or any padding.
        time_dim, batch_dim: the dimensions of positions and samples, in the mask and inputs.
        output: which tensor of the model's output to check (default: the tensor, ``logits``
            of a Hugging Face output, the first tensor of a tuple).
        pooled: ``None`` (default): the output is per position when it has ``time_dim`` of
            the mask's length, else pooled (one output per sample); ``True``/``False`` say so.
        method: ``"grad"`` (exact; float inputs, or token ids read by ``nn.Embedding``),
            ``"perturb"`` (resample padded content, compare outputs against the measured rerun
            noise) or ``"auto"`` (grad where it applies, else perturb).
        train: run in train mode (default eval).
        msg: replaces the failure headline; the evidence stays.
    """
    __tracebackhide__ = True
    case = _case(model, inputs, mask, (batch_dim, time_dim), output)
    pooled = _check_pooled(pooled)
    dep.check_method(method)
    if method == "grad" and not _gradable(case):
        raise ValueError(
            "method='grad' needs float content or integer content read by nn.Embedding "
            "modules of the model; no gradient reaches these inputs. Use method='perturb'."
        )
    with (
        _state.untouched(*case.modules),
        dep.frozen(case.modules, train=train),
        dep.no_inference_fastpath(),
    ):
        found = _find(case, case.given, pooled, method)
        cause = None
        if found.leaks.any():
            try:
                cause = _likely_cause(case, found) or NO_CAUSE
            except Exception as e:  # the message must still come: say why the reruns stopped
                cause = f"not determined (a rerun that reads the evidence failed: {e!r:.120})"
    if found.inconclusive is not None and found.inconclusive.any() and not found.leaks.any():
        s, p = (int(i) for i in np.argwhere(found.inconclusive)[0])
        raise _messages.fail(
            CHECK,
            f"inconclusive: the gradient at padded position {p} of sample {s} is not finite "
            "(NaN/Inf), so whether a real output depends on it cannot be decided.",
            cause="the forward produces NaN/Inf for these inputs (a softmax over no position, "
            "x/0); fix the model or inputs, or pass method='perturb'.",
            facts={"method": found.method, "device": case.device},
            msg=msg,
        )
    if found.noise is not None and found.noise.within_runs and not found.leaks.any():
        warnings.warn(PrecisionWarning(f"{CHECK}: {found.noise.text()}"), stacklevel=2)
    mode = dep.mode_of(case.modules, train)
    real = case.real.numpy()
    _context.record(
        DependencyRecord(
            check=CHECK,
            model=model_name(model),
            passed=not found.leaks.any(),
            matrix=real | found.leaks,
            allowed=real,
            method=found.method,
            mode=mode,
            batch=case.content.tensors()[0][1].detach().cpu(),
            batch_dim=batch_dim,
            time_dim=time_dim,
            unit="sample",
            labels=("outputs of sample", "input position"),
        )
    )
    if found.leaks.any():
        facts = {"method": found.method, "device": case.device, "mode": mode}
        raise _messages.fail(
            CHECK,
            _headline(found),
            evidence=_evidence(case, found),
            cause=cause,
            facts=facts,
            picture=_picture(case, found),
            msg=msg,
        )
    return PaddingResult(
        matrix=found.leaks,
        checked=~real,
        method=found.method,
        mode=mode,
        noise=found.noise,
        padded=int((~real).sum()),
        pooled=found.pooled,
    )


# --------------------------------------------------------------------------------------------
# The call: the mask held fixed, the content, the layout


@dataclasses.dataclass(frozen=True)
class _Case:
    """One call: the content inputs (all but the mask), where the mask goes back in, the mask
    as given and as real positions ``(B, T)``, the content's sources, the output selector."""

    model: Any
    content: Inputs
    where: str | int
    given: torch.Tensor
    real: torch.Tensor  # bool (B, T) on the CPU: True at real positions
    sources: dict[str, dep.Source]
    dims: tuple[int, int]  # (batch_dim, time_dim) of the mask
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

    def laid_out(self, m: torch.Tensor, like: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
        """``m`` over (batch, time) shaped to broadcast against ``like`` at ``dims``."""
        b, t = dims[0] % like.dim(), dims[1] % like.dim()
        shape = [1] * like.dim()
        shape[b], shape[t] = m.shape
        return m.reshape(shape) if b < t else m.T.reshape(shape)


def _case(model: Any, inputs: Any, mask: Any, dims: tuple[int, int], output: Any) -> _Case:
    """Check the arguments (``TypeError``/``ValueError`` naming them); the call's parts."""
    dep.check_model(model)
    batch_dim, time_dim = dims
    for name, value in (("time_dim", time_dim), ("batch_dim", batch_dim)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}={value!r} must be an int (a dimension of the mask).")
    ins = Inputs.of(inputs, model=model)
    given, where, content = _split(ins, mask)
    if given.dim() != 2 or not (-2 <= batch_dim < 2 and -2 <= time_dim < 2):
        raise ValueError(
            f"the mask {_label(where)} has shape {tuple(given.shape)}; it must be 2-D with "
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
            f"the mask {_label(where)} holds values other than 0 and 1 "
            f"({values[:6].tolist()}); pass a 0/1 or bool mask with 1/True at real positions "
            "(as Hugging Face's attention_mask), not an additive (0/-inf) one."
        )
    real = given.detach().cpu() != 0
    real = real if batch_dim % 2 == 0 else real.T
    batch, steps = real.shape
    if not bool((~real).any()):
        raise ValueError(
            f"the mask {_label(where)} marks every position real: there is no padding to "
            "check. Pass a batch with padded sequences (0/False in the mask)."
        )
    empty = torch.nonzero(~real.any(1)).flatten().tolist()
    if empty:
        raise ValueError(
            f"the mask {_label(where)} marks no real position in sample(s) {empty}; every "
            "sample needs at least one real position."
        )
    n, _labels = content.batched(batch_dim)
    if n != batch:
        raise ValueError(
            f"the mask {_label(where)} has {batch} samples along batch_dim={batch_dim}, the "
            f"other inputs {n}; pass the mask of this batch."
        )
    sources = dep.sources_of(content, batch_dim, time_dim, steps)
    if not any(s.time_dim is not None for s in sources.values()):
        shapes = ", ".join(f"{label} {tuple(t.shape)}" for label, t in content.tensors())
        raise ValueError(
            f"no input but the mask has {steps} positions along time_dim={time_dim} ({shapes}),"
            " so there is no padded content to check; pass the token ids or embeddings with "
            "the mask's length (or the right time_dim=)."
        )
    ctx = _context.current()
    return _Case(
        model=model,
        content=content,
        where=where,
        given=given,
        real=real,
        sources=sources,
        dims=(batch_dim, time_dim),
        output=output,
        modules=dep.modules_of(model),
        seed=0 if ctx is None or ctx.seed is None else ctx.seed,
    )


def _split(ins: Inputs, mask: Any) -> tuple[torch.Tensor, str | int, Inputs]:
    """The mask tensor, where it goes, and the other inputs."""
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
        raise TypeError(f"the mask {_label(mask)} is a {type(value).__name__}; pass a tensor.")
    return value, mask, rest


def _label(where: str | int) -> str:
    return f"inputs[{where!r}]"


def _check_pooled(pooled: Any) -> bool | None:
    if pooled is not None and not isinstance(pooled, bool):
        raise TypeError(f"pooled={pooled!r} must be None (decide from the shape), True or False.")
    return pooled


def _gradable(case: _Case) -> bool:
    timed = [t for label, t in case.content.tensors() if case.sources[label].time_dim is not None]
    return all(t.is_floating_point() for t in timed) or dep.has_embedding_reader(case.modules)


def _layout(out: torch.Tensor, case: _Case, pooled: bool | None) -> tuple[int, int | None]:
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


# --------------------------------------------------------------------------------------------
# Finding leaks


@dataclasses.dataclass
class _Found:
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


def _find(case: _Case, mask: torch.Tensor, pooled: bool | None, method: str) -> _Found:
    """Grad or perturbation, as ``method`` says; ``"auto"``: grad where it reaches the
    content, perturbation otherwise, when gradients are not finite, or to confirm a pass when
    the forward cut the gradient path."""
    if method == "perturb" or (method == "auto" and not _gradable(case)):
        return _by_perturbation(case, mask, pooled)
    try:
        found = _by_grad(case, mask, pooled)
    except dep.Unreachable:
        if method != "auto":
            raise
        return _by_perturbation(case, mask, pooled)
    if method == "auto" and not found.leaks.any():
        if found.inconclusive is not None and found.inconclusive.any():
            again = _by_perturbation(case, mask, pooled)
            again.method = "perturb (grad was inconclusive: non-finite gradients)"
            return again
        if found.cut is not None:
            again = _by_perturbation(case, mask, pooled)
            if again.leaks.any():
                again.method = f"perturb (gradients miss it: the forward cuts at {found.cut})"
                return again
            found.method = f"grad+perturb (the forward cuts the gradient path at {found.cut})"
            found.noise = again.noise
    return found


def _by_grad(case: _Case, mask: torch.Tensor, pooled: bool | None) -> _Found:
    """One backward from every real output at once; on a leak, one per output unit."""
    graph = dep.Graph.build(case.runner(mask), case.content, case.sources, case.modules)
    b, t = _layout(graph.out, case, pooled)
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
        return _Found(zeros, [], t is None, "grad", inconclusive=inconclusive, cut=graph.cut)
    u = graph.products(weights, reduce)
    typical = u.magnitude[:, case.real]
    typical = typical[typical > 0]
    scale = float(typical.median()) if typical.numel() else 1.0
    pairs = []
    for k, unit in enumerate(rows):
        for bb, tt in torch.nonzero(u.nonzero[k] & padded).tolist():
            pairs.append(((bb, tt), unit, float(u.magnitude[k, bb, tt]) / (scale or 1.0)))
    return _found(case, pairs, t is None, "grad", None)


def _output_units(case: _Case, t: int | None) -> list[tuple[int, int | None]]:
    """The real output units: ``(sample, position)`` per position, ``(sample, None)`` pooled."""
    batch = case.real.shape[0]
    if t is None:
        return [(s, None) for s in range(batch)]
    return [(s, p) for s, p in torch.nonzero(case.real).tolist()]


def _unit_masks(
    case: _Case, out: torch.Tensor, dims: tuple[int, int | None], rows: list[Any]
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
    case: _Case, pairs: list[Any], pooled: bool, method: str, noise: dep.RerunNoise | None
) -> _Found:
    leaks = np.zeros(tuple(case.real.shape), dtype=bool)
    for (s, p), _unit, _strength in pairs:
        leaks[s, p] = True
    pairs.sort(key=lambda pair: -pair[2])
    return _Found(leaks, pairs, pooled, method, noise)


def _content_masked(case: _Case, where: torch.Tensor) -> Callable[[dep.Source, torch.Tensor], Any]:
    """The perturbation mask of the content at the ``(B, T)`` entries ``where``."""

    def mask(src: dep.Source, x: torch.Tensor) -> Any:
        if src.time_dim is None:
            return None
        return case.laid_out(where, x, (src.batch_dim, src.time_dim))

    return mask


def _compare(
    case: _Case, mask: torch.Tensor, pooled: bool | None
) -> tuple[dep.Comparison, int | None, torch.Tensor]:
    """A comparison of runs with ``mask`` against the unperturbed content (noise measured),
    the output's time dimension and the real output units to watch."""
    compare = dep.Comparison(case.runner(mask), case.content)
    b, t = _layout(compare.base, case, pooled)
    compare.measure([b] if t is None else [b, t])
    # the compared units run over ``keep`` in its order: (samples,) or (samples, positions)
    watch = torch.ones(case.real.shape[0], dtype=torch.bool) if t is None else case.real
    return compare, t, watch


def _by_perturbation(case: _Case, mask: torch.Tensor, pooled: bool | None) -> _Found:
    """Resample every padded position at once; on a leak, one padded position at a time."""
    gen = torch.Generator().manual_seed(case.seed)
    padded = ~case.real
    with torch.no_grad():
        compare, t, watch = _compare(case, mask, pooled)
        moved = compare.moved(_perturbed(case, padded, gen), watch=watch)
        if not bool((moved.nonzero & watch).any()):
            zeros = np.zeros(tuple(padded.shape), dtype=bool)
            return _Found(zeros, [], t is None, "perturb", compare.noise())
        pairs = []
        for s, p in torch.nonzero(padded).tolist():
            one = torch.zeros_like(padded)
            one[s, p] = True
            u = compare.moved(_perturbed(case, one, gen), watch=watch)
            for unit in torch.nonzero(u.nonzero & watch).tolist():
                key = (unit[0], unit[1] if t is not None else None)
                size = float(u.magnitude[tuple(unit)]) / (compare.scale or 1.0)
                pairs.append(((s, p), key, size))
    return _found(case, pairs, t is None, "perturb", compare.noise())


def _perturbed(case: _Case, where: torch.Tensor, gen: torch.Generator) -> Inputs:
    return dep.perturb(case.content, case.sources, _content_masked(case, where), gen)


# --------------------------------------------------------------------------------------------
# Likely cause: cheap reruns that read the evidence


def _likely_cause(case: _Case, found: _Found) -> str | None:
    """What the evidence supports, tested in this order: the mask changes nothing; the model
    given the inverted mask ignores the padding; given the mask as ``bool`` it does; a pooled
    output whose per-position states before the pooling do (not) depend on the padding."""
    label = _label(case.where)
    if not _mask_matters(case):
        return (
            f"the mask does not reach the output: the outputs are the same with {label} as "
            "given and with every position marked real, so it is not passed on to the layers "
            "that mix positions (attention_mask= / key_padding_mask= of the attention, the "
            "pooling). Pass it to every layer that reads across positions."
        )
    inverted = (case.given == 0).to(case.given.dtype)
    if _passes(case, inverted, found.pooled):
        return (
            f"a mask with the wrong polarity: given {label} inverted (1 at padding), the "
            "model ignores the padding and the check passes, so it reads the mask the other "
            "way round: it keeps the positions the mask marks as padding and drops the real "
            "ones. nn.MultiheadAttention's key_padding_mask wants True at padding (pass "
            "~mask.bool()); a pooling wants the mask as 1 at real positions."
        )
    if case.given.dtype != torch.bool and _passes(case, case.given != 0, found.pooled):
        return (
            f"a mask of the wrong dtype: {label} is {case.given.dtype} and the check passes "
            "with the same mask as bool. A float attn_mask is added to the attention scores "
            "(0 and 1 added, nothing masked); pass a bool mask, or an additive one with "
            "-inf at padding."
        )
    if found.pooled:
        before = _states_leak(case)
        columns = np.nonzero(found.leaks.any(0))[0].tolist()
        if before is False and len(columns) == 1:
            p = columns[0]
            return (
                f"a pooling that reads one position, {p}, which is padding in "
                f"{int(found.leaks[:, p].sum())} sample(s): the states before the pooling do "
                "not depend on the padding, the pooled output does, through position "
                f"{p} only (a [CLS]/first-token pooler under left padding, a last-token one "
                "under right padding). Pad on the side the pooler does not read, or pool "
                "the first/last real position."
            )
        if before is False:
            return (
                "a pooling over padded positions: the per-position states before the pooling "
                "do not depend on the padding, the pooled output does. Pool over real "
                "positions only: (h * m[..., None]).sum(1) / m.sum(1, keepdim=True) with m "
                "the mask, or take the first/last real position (not position 0 or -1 "
                "under left/right padding)."
            )
        if before is True:
            return (
                "a layer before the pooling reads padded positions: the per-position states "
                "the pooling reads already depend on the padding; the mask does not reach "
                "that layer, or reaches it with the wrong polarity or dtype (attention without "
                "attention_mask / key_padding_mask, a convolution or normalisation over time)."
            )
    return None


def _output_pair(case: _Case, mask: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The output with ``mask`` and its rerun noise floor (0.0 when reruns are identical)."""
    run = case.runner(mask)
    first = run(case.content)
    floor = float(dep.difference(run(case.content), first).max())
    return first, floor


def _mask_matters(case: _Case) -> bool:
    """Does the output change when every position is marked real?"""
    with torch.no_grad():
        base, floor = _output_pair(case, case.given)
        ones = case.given.new_ones(case.given.shape)
        other = case.runner(ones)(case.content)
    if other.shape != base.shape:
        return True
    return bool((dep.difference(other, base) > dep.NOISE_MULTIPLE * floor).any())


def _passes(case: _Case, mask: torch.Tensor, pooled: bool) -> bool:
    """Would the check pass with ``mask`` given to the model (the real positions unchanged)?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return not _by_perturbation(case, mask, pooled).leaks.any()
    except (ValueError, RuntimeError, TypeError, IndexError):
        return False


class _LastStates(torch.overrides.TorchFunctionMode):
    """Keeps the last float tensor a forward makes with the mask's samples and positions at
    ``batch_dim`` and ``time_dim``: the per-position states a pooling reads."""

    def __init__(self, case: _Case) -> None:
        super().__init__()
        self.case = case
        self.last: torch.Tensor | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        b, t = self.case.dims
        batch, steps = self.case.real.shape
        if (
            isinstance(out, torch.Tensor)
            and out.is_floating_point()
            and out.dim() >= 3
            and out.shape[b] == batch
            and out.shape[t] == steps
        ):
            self.last = out.detach().clone()
        return out


def _states_leak(case: _Case) -> bool | None:
    """Do the last per-position states of the forward depend on the padding, at real
    positions? ``None``: the forward makes no such tensor."""
    run = case.runner(case.given)
    gen = torch.Generator().manual_seed(case.seed + 2)
    seen = []
    with torch.no_grad():
        for inputs in (case.content, case.content, _perturbed(case, ~case.real, gen)):
            capture = _LastStates(case)
            with capture:
                run(inputs)
            seen.append(capture.last)
    if any(s is None for s in seen) or len({tuple(s.shape) for s in seen}) > 1:  # type: ignore[union-attr]
        return None
    first, again, moved = (s for s in seen if s is not None)
    floor = float(dep.difference(again, first).max())
    diff = dep.difference(moved, first)
    real = case.laid_out(case.real, diff, case.dims).to(diff.device)
    return bool(((diff > dep.NOISE_MULTIPLE * floor) & real).any())


# --------------------------------------------------------------------------------------------
# The message


def _unit_text(unit: tuple[int, int | None], pooled: bool) -> str:
    s, p = unit
    return f"pooled output of sample {s}" if pooled else f"output of sample {s} at position {p}"


def _headline(found: _Found) -> str:
    (s, p), unit, _strength = found.pairs[0]
    return (
        f"{_unit_text(unit, found.pooled)} depends on the content of padded position {p} of "
        f"sample {s}."
    )


def _evidence(case: _Case, found: _Found) -> list[str]:
    padded = ~case.real.numpy()
    n_leak = int(found.leaks.sum())
    per_sample = {s: np.nonzero(found.leaks[s])[0].tolist() for s in range(found.leaks.shape[0])}
    listed = "; ".join(f"sample {s}: {ps}" for s, ps in per_sample.items() if ps)
    scale = (
        "gradient size relative to a typical real dependency"
        if found.method.startswith("grad")
        else "change relative to the output's largest magnitude"
    )
    worst = ", ".join(
        f"(sample {s}, position {p}) -> {_unit_text(unit, found.pooled)} ({size:.2g})"
        for (s, p), unit, size in found.pairs[:SHOWN]
    )
    lines = [
        f"Leaking padded positions: {_verdict.percent(n_leak, int(padded.sum()))} reach a real "
        f"output ({len(found.pairs)} (padded position, output) pairs)",
        f"Where: {listed}",
        f"Worst ({scale}): {worst}",
    ]
    if found.noise is not None:
        lines.append(found.noise.text())
    side = _sides(case.real)
    units = "pooled outputs" if found.pooled else "outputs at real positions"
    lines.append(
        f"Covered: every padded position of {padded.shape[0]} samples ({side} padding) "
        f"against every sample's {units}"
    )
    return lines


def _sides(real: torch.Tensor) -> str:
    """``right``, ``left`` or ``mixed``: where the padding of each sample is."""
    steps = real.shape[1]
    pos = torch.arange(steps)
    count = real.sum(1, keepdim=True)
    right = bool((real == (pos < count)).all())
    left = bool((real == (pos >= steps - count)).all())
    return "right" if right else "left" if left else "mixed"


def _picture(case: _Case, found: _Found) -> str:
    real = case.real.numpy()
    return _text_pictures.dependency_matrix(
        real | found.leaks,
        real,
        rows="outputs of sample",
        cols="input position",
        inconclusive=found.inconclusive,
    )
