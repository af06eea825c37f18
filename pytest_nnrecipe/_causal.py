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
another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import _context, _state, _verdict
from . import _dependency as dep
from ._inputs import Inputs

CHECK = "assert_causal"
#: Public backend names -> ``torch.nn.attention.SDPBackend`` member names.
BACKENDS = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}


@dataclasses.dataclass(frozen=True)
class CausalResult:
    """What a passing check measured.

    ``matrix[t, t']``: output step ``t`` depends on input step ``t'``, measured where
    ``checked`` is true: every forbidden pair ``t < t'`` among the checked positions (all
    ``False`` when it passes). ``backends`` maps each attention backend run to its verdict;
    ``noise``: how finely perturbation could tell (``None`` when gradients decided).
    """

    matrix: np.ndarray
    checked: np.ndarray
    method: str
    mode: str
    positions: tuple[int, ...]
    pairs: int
    backends: dict[str, str]
    noise: dep.RerunNoise | None = None


@dataclasses.dataclass(frozen=True)
class _Setup:
    run: dep.Runner
    ins: Inputs
    sources: dict[str, dep.Source]
    modules: list[torch.nn.Module]
    batch: int
    steps: int
    positions: list[int]
    obd: int
    otd: int
    seed: int
    max_batch: int


def assert_causal(
    model: Any,
    inputs: Any,
    *,
    time_dim: int = 1,
    batch_dim: int = 0,
    output: Any = None,
    method: str = "auto",
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
    dep.check_model(model)
    dep.check_method(method)
    ins = Inputs.of(inputs, model=model)
    n, _labels = ins.batched(batch_dim)
    steps = _steps(ins, time_dim, batch_dim)
    chosen = dep.selection(positions, steps, name="positions", unit="position")
    if max_batch is not None and (
        isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1
    ):
        raise ValueError(f"max_batch={max_batch!r} must be a positive int (copies per pass).")
    backends = _backends(sdpa_backends)
    sources = dep.sources_of(ins, batch_dim, time_dim, steps)
    modules = dep.modules_of(model)
    mode = dep.mode_of(modules, train)
    ctx = _context.current()
    seed = 0 if ctx is None or ctx.seed is None else ctx.seed
    device = ins.tensors()[0][1].device
    timed = [ins_t for label, ins_t in ins.tensors() if sources[label].time_dim is not None]
    all_float = all(t.is_floating_point() for t in timed)
    if method == "grad" and not all_float and not dep.has_embedding_reader(modules):
        raise ValueError(
            "method='grad' needs float inputs or integer inputs read by nn.Embedding modules "
            "of the model; no gradient reaches these integer inputs. Use method='perturb'."
        )
    setup = _Setup(
        run=dep.Runner(model, output, seed),
        ins=ins,
        sources=sources,
        modules=modules,
        batch=n,
        steps=steps,
        positions=chosen,
        obd=batch_dim if output_batch_dim is None else output_batch_dim,
        otd=time_dim if output_time_dim is None else output_time_dim,
        seed=seed,
        max_batch=max_batch or n,
    )
    chosen_method = method if method != "auto" else dep.auto_method(all_float, modules)
    verdicts: dict[str, _verdict.Verdict | str] = {}
    with (
        _state.untouched(*modules),
        dep.frozen(modules, train=train),
        dep.first_batch(model, ins) as holder,
    ):
        if backends is None:
            verdicts["default"] = _decide(setup, chosen_method, method == "auto")
        else:
            for name in backends:
                verdicts[name] = _under_backend(name, device, setup, chosen_method, method)
    ran = {k: v for k, v in verdicts.items() if isinstance(v, _verdict.Verdict)}
    for v in ran.values():
        _verdict.warn_within_noise(CHECK, v)
    if not ran:
        raise ValueError(
            f"sdpa_backends={sdpa_backends!r}: no backend could run the model on {device} "
            f"({'; '.join(f'{k}: {v}' for k, v in verdicts.items())}). Pass backends "
            "available on this device, or sdpa_backends=None."
        )
    failing = [k for k, v in ran.items() if v.violations.any() or v.undecided.any()]
    shown = ran[failing[0]] if failing else next(iter(ran.values()))
    passed = not failing
    summary = {k: _summary(v) for k, v in verdicts.items()}
    _context.record(
        CHECK,
        model,
        passed,
        matrix=shown.depends.copy(),
        allowed=shown.allowed.copy(),
        inconclusive=shown.undecided.copy() if shown.undecided.any() else None,
        method=shown.method,
        mode=mode,
        batch=holder.get("batch"),
        backends=summary,
    )
    pairs = len(chosen) * (len(chosen) - 1) // 2
    cover = f"{dep.covered(chosen, steps, 'position')} ({pairs} pairs t < t')"
    if not passed:
        under = ""
        if backends is not None:
            under = f" under the {' and '.join(failing)} attention backend" + (
                "s" if len(failing) > 1 else ""
            )
        extra = []
        if backends is not None:
            extra.append(
                "Attention backends: " + "; ".join(f"{k}: {v}" for k, v in summary.items())
            )
        raise AssertionError(
            _verdict.failure_message(
                CHECK,
                shown,
                msg=msg,
                headline=lambda t, s: f"output at step {t} depends on input at step {s}{under}",
                arrow=lambda t, s: f"step {t} <- step {s}",
                pairs_label="Leaking pairs (output step t, later input step t')",
                cause=_likely_cause(shown, modules, train),
                covered_text=cover,
                facts={"method": shown.method, "device": device, "mode": mode},
                rows="output step",
                cols="input step",
                extra=extra,
            )
        )
    return CausalResult(
        matrix=shown.depends,
        checked=shown.checked,
        method=shown.method,
        mode=mode,
        positions=tuple(chosen),
        pairs=pairs,
        backends=summary,
        noise=shown.noise,
    )


# --------------------------------------------------------------------------------------------
# Arguments


def _steps(ins: Inputs, time_dim: int, batch_dim: int) -> int:
    for label, t in ins.tensors():
        if isinstance(time_dim, bool) or not isinstance(time_dim, int):
            raise TypeError(f"time_dim={time_dim!r} must be an int (a dimension of {label}).")
        if -t.dim() <= time_dim < t.dim():
            if time_dim % t.dim() == batch_dim % t.dim():
                raise ValueError(
                    f"time_dim={time_dim} and batch_dim={batch_dim} name the same dimension of "
                    f"{label} (shape {tuple(t.shape)}); pass the dimension that indexes steps."
                )
            steps = int(t.shape[time_dim])
            if steps < 2:
                raise ValueError(
                    f"{label} has {steps} step along time_dim={time_dim} (shape "
                    f"{tuple(t.shape)}); causality needs a sequence of at least 2 steps. "
                    "Pass a longer sequence or the right time_dim=."
                )
            return steps
    shapes = ", ".join(f"{label} {tuple(t.shape)}" for label, t in ins.tensors())
    raise ValueError(
        f"time_dim={time_dim} is out of range for every input ({shapes}); pass the dimension "
        "that indexes steps."
    )


def _backends(arg: Any) -> list[str] | None:
    if arg is None:
        return None
    names = list(BACKENDS) if arg == "all" else [arg] if isinstance(arg, str) else list(arg)
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names:
        raise ValueError(
            f"sdpa_backends={arg!r}: unknown backend(s) {bad}; pass None, 'all' or names "
            f"among {', '.join(map(repr, BACKENDS))}."
        )
    return names


def _summary(v: _verdict.Verdict | str) -> str:
    if isinstance(v, str):
        return v
    bad = int(v.violations.sum())
    if bad:
        return f"leaks {bad} of {v.n_forbidden} pairs"
    if v.undecided.any():
        return f"inconclusive for {int(v.undecided.sum())} pairs"
    return "causal"


# --------------------------------------------------------------------------------------------
# Attention backends


def _under_backend(
    name: str, device: torch.device, setup: _Setup, chosen_method: str, method: str
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
            return _decide(setup, chosen_method, method == "auto")
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


def _decide(setup: _Setup, method: str, auto: bool) -> _verdict.Verdict:
    if method == "grad":
        try:
            verdict = _by_grad(setup)
        except dep.Unreachable:
            if not auto:
                raise
            return _by_perturbation(setup)
        if auto and verdict.undecided.any() and not verdict.violations.any():
            verdict = _by_perturbation(setup)
            verdict.method = "perturb (grad was inconclusive: non-finite gradients)"
        elif auto and verdict.cut and not verdict.violations.any():
            verdict = _verdict.confirm_cut(verdict, lambda: _by_perturbation(setup))
        return verdict
    return _by_perturbation(setup)


def _frame(setup: _Setup, out_steps: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(out_steps)[:, None]
    cols = np.arange(setup.steps)[None, :]
    allowed = cols <= rows
    inside_cols = np.zeros(setup.steps, dtype=bool)
    inside_cols[setup.positions] = True
    inside_rows = np.zeros(out_steps, dtype=bool)
    inside_rows[[p for p in setup.positions if p < out_steps]] = True
    return allowed, np.outer(inside_rows, inside_cols)


def _copies(setup: _Setup) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(samples, cuts) of each pass: copy c of the sequence of sample c % B gets cut c.

    Every pass has exactly ``max_batch`` copies (by default the batch size, so the model sees
    the batch shape it was given: fixed-size state, a KV cache or a ``view(B, ...)`` keep
    working); the last pass repeats cuts to fill up, which only tests them twice."""
    cuts = setup.positions[1:]
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


def _out_dims(out: torch.Tensor, setup: _Setup, size: int) -> tuple[int, int]:
    b = dep.output_dim(out, setup.obd, size=size, name="output_batch_dim", what="batch dimension")
    if (
        not -out.dim() <= setup.otd < out.dim()
        or setup.otd % out.dim() == b
        or out.shape[setup.otd] != setup.steps
    ):
        otd = setup.otd % out.dim() if -out.dim() <= setup.otd < out.dim() else None
        fits = [d for d in range(out.dim()) if d != b and out.shape[d] == setup.steps]
        if fits:
            hint = f"pass output_time_dim={fits[0]} if the output's steps are there"
        elif otd is not None and otd != b and 0 < out.shape[otd] < setup.steps:
            hint = (
                f"its dimension {otd} has {out.shape[otd]} steps, fewer than the inputs' "
                f"{setup.steps}: an unpadded convolution or a shift trims steps, so output "
                "step t no longer lines up with input step t. Pad so every step has an output "
                "(F.pad(x, (k - 1, 0)) before a causal convolution), or pass output= to line "
                "them up (e.g. output=lambda o: F.pad(o, (0, 0, T - o.shape[1], 0)))"
            )
        else:
            hint = "pass output_time_dim= (or output=) to say where the output's steps are"
        raise ValueError(
            f"the checked output (shape {tuple(out.shape)}) has no time dimension of "
            f"{setup.steps} steps (the inputs' length) at output_time_dim={setup.otd}; {hint}."
        )
    return b, setup.otd % out.dim()


def _pair_mask(out: torch.Tensor, b: int, t: int, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` over (batch, time) shaped to broadcast against ``out``."""
    shape = [1] * out.dim()
    shape[b], shape[t] = mask.shape
    return mask.view(shape) if b < t else mask.T.reshape(shape)


def _in_positions(setup: _Setup, length: int) -> torch.Tensor:
    inside = torch.zeros(length, dtype=torch.bool)
    inside[[p for p in setup.positions if p < length]] = True
    return inside


def _time_units(g: torch.Tensor, src: dep.Source) -> dep.Units | None:
    """Per product (the leading dimension) and input step."""
    return None if src.time_dim is None else dep.units(g, [0, 1 + src.time_dim])


def _by_grad(setup: _Setup) -> _verdict.Verdict:
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
    inside = _in_positions(setup, setup.steps)
    steps = torch.arange(setup.steps)
    cuts = setup.positions[1:]
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
    allowed, checked = _frame(setup, setup.steps)
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


def _exact_grad(setup: _Setup, graph: dep.Graph, t: int) -> _verdict.Verdict:
    """The ``T x T`` matrix, one product per output step over the whole batch."""
    out_steps = graph.out.shape[t]
    allowed, checked = _frame(setup, out_steps)
    rows = [p for p in setup.positions if p < out_steps]
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


def _by_perturbation(setup: _Setup) -> _verdict.Verdict:
    gen = torch.Generator().manual_seed(setup.seed)
    leaking = False
    inside = _in_positions(setup, setup.steps)
    steps = torch.arange(setup.steps)
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
    allowed, checked = _frame(setup, setup.steps)
    if not leaking:
        zeros = np.zeros_like(allowed)
        return _verdict.Verdict(
            zeros, allowed, checked & ~allowed, zeros.copy(), "perturb", noise=compare.noise()
        )
    return _exact_perturbation(setup, gen, compare)


def _exact_perturbation(
    setup: _Setup, gen: torch.Generator, compare: dep.Comparison
) -> _verdict.Verdict:
    with torch.no_grad(), dep.no_inference_fastpath():
        base = compare.rebase(setup.ins)
        _b, t = _out_dims(base, setup, setup.batch)
        compare.keep = [t]
        allowed, checked = _frame(setup, base.shape[t])
        depends = np.zeros_like(allowed)
        magnitude = np.zeros(allowed.shape, dtype=np.float64)
        for col in setup.positions:
            at = torch.zeros(setup.batch, setup.steps, dtype=torch.bool)
            at[:, col] = True

            def mask(src: dep.Source, x: torch.Tensor, at: torch.Tensor = at) -> Any:
                if src.time_dim is None:
                    return None
                return _pair_mask(x, src.batch_dim, src.time_dim, at)

            earlier = torch.arange(base.shape[t]) < col
            u = compare.moved(dep.perturb(setup.ins, setup.sources, mask, gen), watch=earlier)
            depends[:, col] = u.nonzero.numpy()
            magnitude[:, col] = u.magnitude.numpy()
    depends &= checked
    return _verdict.Verdict(
        depends,
        allowed,
        checked,
        np.zeros_like(depends),
        "perturb",
        strength=magnitude / (compare.scale or 1.0),
        noise=compare.noise(),
    )


# --------------------------------------------------------------------------------------------
# Likely cause


def _likely_cause(v: _verdict.Verdict, modules: list[torch.nn.Module], train: bool) -> str:
    mods = _verdict.module_types(modules)
    norms = [m for m in mods if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if train and norms:
        return (
            f"train-mode {type(norms[0]).__name__} normalises with statistics over every "
            "position (and the batch), so each step sees the future through the mean and "
            "variance; check in eval mode (train=False, the default), or normalise per step "
            "(LayerNorm over features)."
        )
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
