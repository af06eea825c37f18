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
from ._evidence import ATTENTION, CUMULATIVE, MASKING, NORMS, SHIFTS, STATISTICS, Evidence

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
            ``"perturb"`` (any inputs) or ``"auto"`` (grad where it applies, else perturb).
        output_time_dim, output_batch_dim: where the output keeps them (default: as the
            inputs).
        positions: check only pairs among these steps (a count from the start or indices);
            default: all.
        train: run in train mode (default eval).
        sdpa_backends: ``None`` (run as configured), ``"all"`` (each backend available on the
            device), or names among ``"math"``, ``"flash"``, ``"efficient"``, ``"cudnn"``.
        max_batch: sequence copies per forward of ``method="perturb"`` (default: the batch
            size, so the model is only ever called at the batch shape it was given; smaller
            bounds memory). ``method="grad"`` runs one forward of the given batch and packs
            every cut into backward passes sized by memory.
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
        last = [
            t.shape[-1]
            for label, t in setup.ins.tensors()
            if setup.sources[label].time_dim not in (None, t.dim() - 1)
        ]
        fewer = otd is not None and otd != b and 0 < out.shape[otd] < setup.size
        ranks = [
            t.dim() for label, t in setup.ins.tensors() if setup.sources[label].time_dim is not None
        ]
        ranks = ranks or [out.dim()]
        if fits:
            hint = f"pass output_time_dim={fits[0]} if the output's steps are there"
        elif out.dim() < min(ranks) or (fewer and out.shape[cast(int, otd)] == 1):
            hint = (
                "the output looks pooled over time (one vector per sequence), which no step "
                "can be checked on: pass output= to pick the per-step outputs (the hidden "
                "states before the pooling), or check the pooling separately"
            )
        elif fewer:
            hint = (
                f"its dimension {otd} has {out.shape[cast(int, otd)]} steps, fewer than the "
                f"inputs' {setup.size}: an unpadded convolution or a shift trims steps, so "
                "output step t no longer lines up with input step t. Pad so every step has an "
                "output (F.pad(x, (k - 1, 0)) before a causal convolution), or pass output= to "
                "line them up (e.g. output=lambda o: F.pad(o, (0, 0, T - o.shape[1], 0)))"
            )
        elif out.dim() > 2 and last and out.shape[-1] == last[0]:
            hint = (
                f"the inputs look channels-first (B, C, T): their last dimension has "
                f"{last[0]} entries, as the output's; pass time_dim=-1 if the steps are there"
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


def _time_units(g: torch.Tensor, src: dep.Source) -> dep.Units | None:
    """Per product (the leading dimension) and input step."""
    return None if src.time_dim is None else dep.units(g, [0, 1 + src.time_dim])


def _by_grad(setup: _driver.Setup) -> _verdict.Verdict:
    """One forward of the given batch; each product's cotangent gives sample ``s`` its own
    cut, so one backward checks ``batch`` cuts, and the products cover every cut."""
    graph = dep.Graph.build(
        setup.run,
        setup.ins,
        setup.sources,
        setup.modules,
        check_output=lambda out: _out_dims(out, setup, setup.batch),
    )
    b, t = _out_dims(graph.out, setup, setup.batch)
    inside = _in_positions(setup, setup.size)
    steps = torch.arange(setup.size)
    cuts = setup.chosen[1:]
    rows = -(-len(cuts) // setup.batch)
    at = torch.tensor(cuts)[torch.arange(rows * setup.batch) % len(cuts)]
    at = at.view(rows, setup.batch, 1)  # the cut of sample s in product k
    before = (steps < at) & inside
    after = (steps >= at) & inside

    def reduce(g: torch.Tensor, src: dep.Source) -> dep.Units | None:
        if src.time_dim is None:
            return None
        return dep.touched(g, [0, 1 + src.batch_dim, 1 + src.time_dim])

    # any gradient, finite or not, past a cut: confirm with the exact matrix
    screen = graph.screen(_pair_masks(graph.out, b, t, before), reduce, lambda u: u.nonzero & after)
    allowed, checked = setup.frame()
    if not bool((screen.nonzero & after).any()):
        zeros = np.zeros_like(allowed)
        return _verdict.Verdict(
            zeros, allowed, checked & ~allowed, zeros.copy(), "grad", cut=graph.cut
        )
    return _exact_grad(setup, graph, t)


def _pair_masks(out: torch.Tensor, b: int, t: int, masks: torch.Tensor) -> torch.Tensor:
    """``masks`` over (product, batch, time) shaped to broadcast against ``out`` behind a
    leading product dimension."""
    shape = [masks.shape[0]] + [1] * out.dim()
    shape[1 + b], shape[1 + t] = masks.shape[1:]
    return masks.reshape(shape) if b < t else masks.transpose(1, 2).reshape(shape)


def _exact_grad(setup: _driver.Setup, graph: dep.Graph, t: int) -> _verdict.Verdict:
    """The ``T x T`` matrix, one product per output step over the whole batch."""
    out_steps = graph.out.shape[t]
    allowed, checked = setup.frame(out_steps)
    rows = [p for p in setup.chosen if p < out_steps]
    masks = torch.zeros(len(rows), out_steps, dtype=torch.bool)
    masks[torch.arange(len(rows)), torch.tensor(rows)] = True
    shape = [len(rows)] + [1] * graph.out.dim()
    shape[1 + t] = out_steps
    u = graph.products(masks.view(shape), _time_units)
    depends = np.zeros_like(allowed)
    depends[rows] = u.nonzero.numpy()
    inconclusive = np.zeros_like(allowed)
    inconclusive[rows] = u.nonfinite.numpy()
    magnitude = np.zeros(allowed.shape, dtype=np.float64)
    magnitude[rows] = u.magnitude.numpy()
    depends &= checked
    inconclusive &= checked & ~depends
    strength = _verdict.relative_strength(magnitude, allowed & checked)
    return _verdict.Verdict(depends, allowed, checked, inconclusive, "grad", strength=strength)


def _by_perturbation(setup: _driver.Setup) -> _verdict.Verdict:
    gen = torch.Generator().manual_seed(setup.seed)
    leaking = False
    inside = _in_positions(setup, setup.size)
    steps = torch.arange(setup.size)
    copies = _copies(setup)
    with torch.no_grad(), dep.no_inference_fastpath():
        first = dep.index_batch(setup.ins, setup.sources, copies[0][0])
        compare = dep.Comparison(setup.run, first)
        b, t = _out_dims(compare.base, setup, len(copies[0][1]))
        compare.measure([b, t])
        for k, (samples, cuts) in enumerate(copies):
            sub = first if k == 0 else dep.index_batch(setup.ins, setup.sources, samples)
            if k:
                compare.rebase(sub)
            after = (steps[None, :] >= cuts[:, None]) & inside
            before = (steps[None, :] < cuts[:, None]) & inside

            def mask(src: dep.Source, x: torch.Tensor, after: torch.Tensor = after) -> Any:
                if src.time_dim is None:
                    return None
                return _pair_mask(x, src.batch_dim, src.time_dim, after)

            u = compare.moved(dep.perturb(sub, setup.sources, mask, gen), watch=before)
            if bool((u.nonzero & before).any()):
                leaking = True
                break
    allowed, checked = setup.frame()
    if not leaking:
        zeros = np.zeros_like(allowed)
        return _verdict.Verdict(
            zeros, allowed, checked & ~allowed, zeros.copy(), "perturb", noise=compare.noise()
        )
    return _exact_perturbation(setup, gen, compare)


def _exact_perturbation(
    setup: _driver.Setup, gen: torch.Generator, compare: dep.Comparison
) -> _verdict.Verdict:
    with torch.no_grad(), dep.no_inference_fastpath():
        base = compare.rebase(setup.ins)
        _b, t = _out_dims(base, setup, setup.batch)
        compare.keep = [t]
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

            earlier = torch.arange(base.shape[t]) < col
            u = compare.moved(dep.perturb(setup.ins, setup.sources, mask, gen), watch=earlier)
            depends[:, col] = u.nonzero.numpy()
            magnitude[:, col] = u.magnitude.numpy()
    return _verdict.perturbed(depends, magnitude, (allowed, checked), compare)


# --------------------------------------------------------------------------------------------
# Likely cause


def _likely_cause(ev: Evidence) -> str | None:
    """The cause the evidence supports (see :mod:`._evidence`), or ``None``."""
    where = ev.where
    rnn = ev.named(torch.nn.RNNBase)
    hit = ev.module(torch.nn.RNNBase)
    if rnn and hit and getattr(hit[1], "bidirectional", False):
        return (
            f"a bidirectional {type(hit[1]).__name__}: {rnn} reads the sequence backwards too, "
            "so every step sees the future; a language model needs bidirectional=False."
        )
    if ev.wraps():
        k = int(np.nonzero(ev.pattern)[0].max()) + 1
        how = ev.used({"roll"}) or ev.used(SHIFTS)
        op = f" ({how[0]})" if how else ""
        return (
            f"a shift that wraps around{op} in {where}: only the first {k} step(s) read the "
            f"last ones, so the start of the sequence sees its end. Shift with padding, not "
            f"torch.roll: e.g. F.pad(x, (0, 0, {k}, 0))[:, :-{k}] for (B, T, C)."
        )
    conv = ev.named(torch.nn.modules.conv._ConvNd)
    hit = ev.module(torch.nn.modules.conv._ConvNd)
    if conv and hit and not ev.every():
        m = hit[1]
        k, d = int(m.kernel_size[0]), int(m.dilation[0])  # type: ignore[index]
        return (
            f"a convolution that looks {ev.ahead()} step(s) ahead: {conv} has symmetric "
            f"padding, which centres its kernel on t. Pad it on the left only: padding=0 and "
            f"F.pad(x, ({(k - 1) * d}, 0)) before it."
        )
    attention = (
        bool(ev.used(ATTENTION))
        or ev.module(torch.nn.MultiheadAttention) is not None
        or "softmax" in ev.later
    )
    if ev.every():
        norm = ev.named(
            (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.instancenorm._InstanceNorm)
        )
        by_hand = ev.used({"std", "var", "var_mean", "std_mean"}) or (
            ev.used({"mean"}) and ev.used({"sub", "__sub__", "rsub", "__rsub__"})
        )
        if norm or ev.used(NORMS) or by_hand:
            return (
                f"a normalisation over time: {norm or where} normalises each sample with "
                "statistics over all its steps, so every step sees the whole sequence. "
                "Normalise over features only (nn.LayerNorm(C), not LayerNorm([T, C]); "
                "x.mean(-1), not x.mean(1))."
            )
        after = list(ev.later)
        if "softmax" in after and any(
            op.rstrip("_") in MASKING for op in after[after.index("softmax") + 1 :]
        ):
            return (
                f"a mask applied after the softmax in {where}: zeroing the future's weights "
                "after normalising leaves them in the softmax's denominator, so every step "
                "still depends on the whole sequence. Mask the scores before the softmax "
                "(masked_fill(mask, float('-inf'))) or use is_causal=True."
            )
        if attention or "softmax" in after:
            return (
                f"attention without a causal mask in {where}: every step sees the whole "
                "future. Pass is_causal=True (scaled_dot_product_attention) or "
                "attn_mask=nn.Transformer.generate_square_subsequent_mask(T)."
            )
        stats = ev.used(STATISTICS) or ev.used(CUMULATIVE)
        if stats:
            return (
                f"a statistic over the whole sequence ({stats[0]}) in {where}: each step reads "
                "a value computed from every step (a mean or sum over time, positions or "
                "scales from the full length). Compute it from the past only (cumsum / "
                "arange(1, T + 1)) or from the step index."
            )
        return None
    if ev.band():
        r = ev.ahead()
        if attention:
            return (
                f"an attention mask off by {_count(r)} in {where}: step t also sees step t+{r}. "
                "Mask with torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) "
                "(True = masked) or use is_causal=True."
            )
        shift = ev.used(SHIFTS)
        if shift:
            return (
                f"a shift off by {_count(r)} ({shift[0]}) in {where}: step t reads step t+{r}. "
                "Shift towards the future's opposite: x[:, :-k] padded on the left."
            )
    return None


def _count(n: int) -> str:
    return "one" if n == 1 else str(n)


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
