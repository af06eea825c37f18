"""``assert_causal``: no output step depends on a later input step.

Attention without a mask, a mask off by one, a bidirectional LSTM in a language model, a
"causal" convolution with symmetric padding: the model trains, and learns to read the answer
from the future. A leak from ``t'`` into ``t < t'`` crosses every cut ``m`` with
``t < m <= t'``; the check tests every cut between consecutive positions, each on its own
copy of a sequence, many copies per batch: backprop from the outputs before the cut and
require exactly zero gradient at the inputs from the cut on (``method="grad"``), or change the
inputs from the cut on and require the outputs before it unchanged (``method="perturb"``).
Copies never need to be independent for this to be sound: the batch only adds gradient or
change, never hides it, and a positive screen is confirmed by the exact ``T x T`` matrix,
computed over the whole batch, which also draws the failure picture.

``sdpa_backends=`` reruns the check under each scaled-dot-product-attention backend
(``torch.nn.attention.sdpa_kernel``): a model can be causal under one kernel and leak under
another. The driver (:mod:`._driver`) does the rest; this module declares what is checked
(:data:`DECLARATION`) and how to find it, by gradient and by perturbation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from .. import _dependency as dep
from .._results import CausalResult
from . import _driver, _verdict

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Method, Model, ModelInputs, OutputSelector

CHECK = "assert_causal"
#: Public backend names -> ``torch.nn.attention.SDPBackend`` member names.
BACKENDS = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}


def assert_causal(
    model: Model,
    inputs: ModelInputs,
    *,
    time_dim: int = 1,
    batch_dim: int = 0,
    output: OutputSelector = None,
    method: Method = "auto",
    output_time_dim: int | None = None,
    output_batch_dim: int | None = None,
    positions: int | Sequence[int] | None = None,
    train: bool = False,
    sdpa_backends: str | Sequence[str] | None = None,
    max_batch: int | None = None,
    msg: str | None = None,
) -> CausalResult:
    """Assert that for every ``t`` the output at step ``t`` does not depend on inputs after it.

    Args:
        model: a ``torch.nn.Module`` or any callable taking ``inputs``.
        inputs: a tensor, a tuple/list or a dict of tensors; tensors with ``time_dim`` of the
            sequence's length are the sequence, others (e.g. lengths) ride along per sample.
        time_dim, batch_dim: the inputs' time and batch dimensions.
        output: which tensor of the model's output to check.
        method: ``"grad"`` (exact; float inputs, or token ids read by ``nn.Embedding``),
            ``"perturb"`` (any inputs) or ``"auto"`` (grad for float inputs, else perturb).
        output_time_dim, output_batch_dim: where the output keeps them (default: as the
            inputs).
        positions: check only pairs among these steps (a count from the start or indices);
            default: all.
        train: run in train mode (default eval).
        sdpa_backends: ``None`` (run as configured), ``"all"`` (each backend available on the
            device), or names among ``"math"``, ``"flash"``, ``"efficient"``, ``"cudnn"``.
        max_batch: sequence copies per pass (default: the batch size, so the model is only
            ever called at the batch shape it was given; smaller bounds memory).
        msg: replaces the failure headline; the evidence stays.
    """
    __tracebackhide__ = True
    if max_batch is not None and (
        isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1
    ):
        raise ValueError(f"max_batch={max_batch!r} must be a positive int (copies per pass).")
    variants = _driver.Variants(
        _backends(sdpa_backends),
        _under_backend,
        argument="sdpa_backends",
        value=sdpa_backends,
        noun="backend",
        kind="attention backend",
        verb="leak",
        holds="causal",
    )
    request = _driver.Request(
        model,
        inputs,
        batch_dim,
        output,
        method,
        train,
        msg,
        positions,
        output_batch_dim,
        time_dim=time_dim,
        output_time_dim=output_time_dim,
        max_batch=max_batch,
        variants=variants,
    )
    found = _driver.check(DECLARATION, request)
    return found.result(CausalResult, positions=found.chosen, backends=found.variants)


# --------------------------------------------------------------------------------------------
# Arguments


def _backends(arg: Any) -> tuple[str, ...] | None:
    if arg is None:
        return None
    names = list(BACKENDS) if arg == "all" else [arg] if isinstance(arg, str) else list(arg)
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names:
        raise ValueError(
            f"sdpa_backends={arg!r}: unknown backend(s) {bad}; pass None, 'all' or names "
            f"among {', '.join(map(repr, BACKENDS))}."
        )
    return tuple(names)


# --------------------------------------------------------------------------------------------
# Attention backends


def _under_backend(
    name: str, device: torch.device, decide: Callable[[], _verdict.Verdict]
) -> _verdict.Verdict | str:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, BACKENDS[name], None)
    if backend is None:
        return f"not in torch {torch.__version__}"
    reason = _unavailable(backend, device)
    if reason:
        return reason
    try:
        with sdpa_kernel([backend]):
            return decide()
    except RuntimeError as e:
        text = str(e)
        if "No viable backend" in text or "No available kernel" in text:
            return "not applicable to this model's attention call"
        raise


def _unavailable(backend: Any, device: torch.device) -> str | None:
    """Why ``backend`` cannot run a plain attention call on ``device``, or ``None``."""
    from torch.nn.attention import sdpa_kernel

    q = torch.ones(
        1, 1, 4, 8, device=device, dtype=torch.float16 if device.type == "cuda" else torch.float32
    )
    try:
        with sdpa_kernel([backend]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    except RuntimeError:
        return f"unavailable on {device.type}"
    return None


# --------------------------------------------------------------------------------------------
# The check


def _copies(setup: _driver.Setup) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(samples, cuts) of each pass: copy c of the sequence of sample c % B gets cut c.

    Every pass has exactly ``max_batch`` copies (by default the batch size, so the model sees
    the batch shape it was given: fixed-size state, a KV cache or a ``view(B, ...)`` keep
    working); the last pass repeats cuts to fill up, which only tests them twice."""
    cuts = setup.chosen[1:]
    out = []
    for start in range(0, len(cuts), setup.max_batch):
        cs = range(start, start + setup.max_batch)
        out.append(
            (
                torch.tensor([c % setup.batch for c in cs]),
                torch.tensor([cuts[c % len(cuts)] for c in cs]),
            )
        )
    return out


def _out_dims(out: torch.Tensor, setup: _driver.Setup, size: int) -> tuple[int, int]:
    wanted = cast(int, setup.otd)  # the time axis always has one
    b = dep.output_dim(out, setup.obd, size=size, name="output_batch_dim", what="batch dimension")
    if (
        not -out.dim() <= wanted < out.dim()
        or wanted % out.dim() == b
        or out.shape[wanted] != setup.size
    ):
        otd = wanted % out.dim() if -out.dim() <= wanted < out.dim() else None
        fits = [d for d in range(out.dim()) if d != b and out.shape[d] == setup.size]
        if fits:
            hint = f"pass output_time_dim={fits[0]} if the output's steps are there"
        elif otd is not None and otd != b and 0 < out.shape[otd] < setup.size:
            hint = (
                f"its dimension {otd} has {out.shape[otd]} steps, fewer than the inputs' "
                f"{setup.size}: an unpadded convolution or a shift trims steps, so output "
                "step t no longer lines up with input step t. Pad so every step has an output "
                "(F.pad(x, (k - 1, 0)) before a causal convolution), or pass output= to line "
                "them up (e.g. output=lambda o: F.pad(o, (0, 0, T - o.shape[1], 0)))"
            )
        else:
            hint = "pass output_time_dim= (or output=) to say where the output's steps are"
        raise ValueError(
            f"the checked output (shape {tuple(out.shape)}) has no time dimension of "
            f"{setup.size} steps (the inputs' length) at output_time_dim={wanted}; {hint}."
        )
    return b, wanted % out.dim()


def _pair_mask(out: torch.Tensor, b: int, t: int, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` over (batch, time) shaped to broadcast against ``out``."""
    shape = [1] * out.dim()
    shape[b], shape[t] = mask.shape
    return mask.view(shape) if b < t else mask.T.reshape(shape)


def _in_positions(setup: _driver.Setup, length: int) -> torch.Tensor:
    inside = torch.zeros(length, dtype=torch.bool)
    inside[[p for p in setup.chosen if p < length]] = True
    return inside


def _time_units(g: torch.Tensor, src: dep.Source, lead: bool) -> dep.Units | None:
    if src.time_dim is None:
        return None
    if lead:
        return dep.units(g, [0, 1 + src.time_dim])
    return dep.units(g, [src.batch_dim, src.time_dim])


def _by_grad(setup: _driver.Setup) -> _verdict.Verdict:
    leaking = False
    inside = _in_positions(setup, setup.size)
    steps = torch.arange(setup.size)
    path_cuts: list[str] = []
    for k, (samples, cuts) in enumerate(_copies(setup)):
        sub = dep.index_batch(setup.ins, setup.sources, samples)

        def make(out: torch.Tensor, cuts: torch.Tensor = cuts) -> tuple[torch.Tensor, torch.Tensor]:
            b, t = _out_dims(out, setup, len(cuts))
            before = (steps[None, :] < cuts[:, None]) & inside
            weights = dep.cotangent(out.shape, out, setup.seed)
            return weights, _pair_mask(out, b, t, before).to(out.device, out.dtype)

        grads = dep.backprop(
            setup.run,
            sub,
            setup.sources,
            make,
            setup.modules,
            batched=False,
            cuts=path_cuts if k == 0 else None,  # the passes differ in values, not in ops
        )
        after = (steps[None, :] >= cuts[:, None]) & inside
        for g, src in grads:
            if src.time_dim is not None:
                # any gradient, finite or not, past the cut: confirm with the exact matrix
                touched = dep.any_nonzero(g, [src.batch_dim, src.time_dim])
                leaking = leaking or bool((touched & after).any())
        if leaking:
            break
    allowed, checked = setup.frame()
    if not leaking:
        zeros = np.zeros_like(allowed)
        cut = next(iter(path_cuts), None)
        return _verdict.Verdict(zeros, allowed, checked & ~allowed, zeros.copy(), "grad", cut=cut)
    return _exact_grad(setup, setup.size)


def _exact_grad(setup: _driver.Setup, out_steps: int) -> _verdict.Verdict:
    allowed, checked = setup.frame(out_steps)
    depends = np.zeros_like(allowed)
    inconclusive = np.zeros_like(allowed)
    magnitude = np.zeros(allowed.shape, dtype=np.float64)
    rows_all = [p for p in setup.chosen if p < out_steps]
    for start in range(0, len(rows_all), dep.EXACT_CHUNK):
        rows = rows_all[start : start + dep.EXACT_CHUNK]

        def make(out: torch.Tensor, rows: list[int] = rows) -> tuple[torch.Tensor, torch.Tensor]:
            _b, t = _out_dims(out, setup, setup.batch)
            masks = torch.zeros(len(rows), out.shape[t], dtype=torch.bool)
            masks[torch.arange(len(rows)), torch.tensor(rows)] = True
            shape = [len(rows)] + [1] * out.dim()
            shape[1 + t] = out.shape[t]
            weights = dep.cotangent(out.shape, out, setup.seed)
            return weights, masks.view(shape).to(out.device, out.dtype)

        grads = dep.backprop(setup.run, setup.ins, setup.sources, make, setup.modules, batched=True)
        for g, src in grads:
            u = _time_units(g, src, lead=True)
            if u is None:
                continue
            depends[rows] |= u.nonzero.numpy()
            inconclusive[rows] |= u.nonfinite.numpy()
            magnitude[rows] = np.maximum(magnitude[rows], u.magnitude.numpy())
    depends &= checked
    inconclusive &= checked & ~depends
    strength = _verdict.relative_strength(magnitude, allowed & checked)
    return _verdict.Verdict(depends, allowed, checked, inconclusive, "grad", strength=strength)


def _by_perturbation(setup: _driver.Setup) -> _verdict.Verdict:
    gen = torch.Generator().manual_seed(setup.seed)
    leaking = False
    slight = 0.0
    inside = _in_positions(setup, setup.size)
    steps = torch.arange(setup.size)
    with torch.no_grad(), dep.no_inference_fastpath():
        for k, (samples, cuts) in enumerate(_copies(setup)):
            sub = dep.index_batch(setup.ins, setup.sources, samples)
            base = setup.run(sub)
            b, t = _out_dims(base, setup, len(cuts))
            _rtol, tol = dep.tolerance(base)
            if k == 0:
                dep.check_repeatable(setup.run, sub, base, [b, t], tol)
            after = (steps[None, :] >= cuts[:, None]) & inside

            def mask(src: dep.Source, x: torch.Tensor, after: torch.Tensor = after) -> Any:
                if src.time_dim is None:
                    return None
                return _pair_mask(x, src.batch_dim, src.time_dim, after)

            out = setup.run(dep.perturb(sub, setup.sources, mask, gen))
            u, s = dep.changes(out, base, [b, t], tol)
            slight = max(slight, s)
            before = (steps[None, :] < cuts[:, None]) & inside
            if bool((u.nonzero & before).any()):
                leaking = True
                break
    allowed, checked = setup.frame()
    if not leaking:
        zeros = np.zeros_like(allowed)
        return _verdict.Verdict(
            zeros, allowed, checked & ~allowed, zeros.copy(), "perturb", slight=slight
        )
    return _exact_perturbation(setup, gen)


def _exact_perturbation(setup: _driver.Setup, gen: torch.Generator) -> _verdict.Verdict:
    with torch.no_grad(), dep.no_inference_fastpath():
        base = setup.run(setup.ins)
        _b, t = _out_dims(base, setup, setup.batch)
        rtol, tol = dep.tolerance(base)
        allowed, checked = setup.frame(base.shape[t])
        depends = np.zeros_like(allowed)
        magnitude = np.zeros(allowed.shape, dtype=np.float64)
        for col in setup.chosen:
            at = torch.zeros(setup.batch, setup.size, dtype=torch.bool)
            at[:, col] = True

            def mask(src: dep.Source, x: torch.Tensor, at: torch.Tensor = at) -> Any:
                if src.time_dim is None:
                    return None
                return _pair_mask(x, src.batch_dim, src.time_dim, at)

            out = setup.run(dep.perturb(setup.ins, setup.sources, mask, gen))
            u, _s = dep.changes(out, base, [t], tol)
            depends[:, col] = u.nonzero.numpy()
            magnitude[:, col] = u.magnitude.numpy()
    return _verdict.perturbed(depends, magnitude, (allowed, checked), (rtol, tol))


# --------------------------------------------------------------------------------------------
# Likely cause


def _likely_cause(v: _verdict.Verdict, mods: list[torch.nn.Module]) -> str:
    rows, cols = np.nonzero(v.violations)
    if rows.size == 0:
        return "unknown"
    ahead = cols - rows
    reach = int(ahead.max())
    forbidden = ~v.allowed & v.checked
    every_future = bool(v.violations[forbidden].all())
    bidirectional = [
        m for m in mods if isinstance(m, torch.nn.RNNBase) and getattr(m, "bidirectional", False)
    ]
    attention = [
        m
        for m in mods
        if isinstance(
            m,
            (
                torch.nn.MultiheadAttention,
                torch.nn.TransformerEncoderLayer,
                torch.nn.TransformerDecoderLayer,
            ),
        )
        or "attention" in type(m).__name__.lower()
    ]
    convs = [m for m in mods if isinstance(m, torch.nn.modules.conv._ConvNd)]
    layers = sum(isinstance(m, torch.nn.MultiheadAttention) for m in mods) or len(attention)
    if bidirectional and every_future:
        return (
            f"a bidirectional {type(bidirectional[0]).__name__} (bidirectional=True) reads the "
            "sequence backwards too, so every step sees the whole future; a language model "
            "needs a unidirectional one."
        )
    if attention and every_future:
        return (
            "attention without a causal mask: every step sees the whole future. Pass "
            "mask=nn.Transformer.generate_square_subsequent_mask(T) with is_causal=True, or "
            "is_causal=True to scaled_dot_product_attention."
        )
    if attention and not convs:
        stacked = f" (compounded over {layers} attention layers)" if reach > 1 else ""
        return (
            f"an attention mask off by one: step t also sees step t+1, so the output looks "
            f"{reach} step(s) ahead{stacked}. Mask with torch.triu(torch.ones(T, T, "
            "dtype=torch.bool), diagonal=1) (True = masked) or "
            "nn.Transformer.generate_square_subsequent_mask(T)."
        )
    if convs and not every_future:
        conv = convs[0]
        k = conv.kernel_size[0] if conv.kernel_size else 1
        d = conv.dilation[0] if conv.dilation else 1
        return (
            f"a convolution that looks {reach} step(s) ahead: symmetric padding centres the "
            f"kernel on t. Pad on the left only, e.g. F.pad(x, ({(k - 1) * d}, 0)) for "
            f"{type(conv).__name__}(kernel_size={k}, dilation={d}), or trim the last outputs."
        )
    if every_future:
        return (
            "something reads the whole sequence: attention without a causal mask, a "
            "bidirectional layer, or pooling/normalisation over time."
        )
    return (
        f"some path lets the output look up to {reach} step(s) ahead: a mask, padding or "
        "shift that is off by one, or an op along time that is not causal."
    )


def _past(rows: int, cols: int) -> np.ndarray:
    """Output step ``t`` may depend on input steps ``t' <= t``."""
    return np.tri(rows, cols, dtype=bool)


#: How causality names what it checks and finds (see ``_driver.Words``).
WORDS = _driver.Words.table(
    """
    pair:       output at step {i} depends on input at step {j}
    short:      step {i} <- step {j}
    checked:    pairs t < t'
    found:      Leaking pairs (output step t, later input step t')
    train norm: train-mode {norm} normalises with statistics over every position (and the
                batch), so each step sees the future through the mean and variance; check in
                eval mode (train=False, the default), or normalise per step (LayerNorm over
                features).
    """
)
#: Causality in the driver's terms: its units are steps, an output step may depend on its
#: past only; its words, its two passes and its likely causes.
DECLARATION = _driver.Declaration(
    CHECK, _driver.STEPS, WORDS, _past, (_by_grad, _by_perturbation), _likely_cause
)
