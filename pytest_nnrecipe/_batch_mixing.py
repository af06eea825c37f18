"""``assert_no_batch_mixing``: no output sample depends on another sample's input.

A ``view`` where a ``permute`` belonged, a hand-written normalisation over ``dim=0``, an
attention layer with ``batch_first=False`` fed ``(batch, seq, feature)`` tensors: the net
still trains, every sample just peeks at the others. The check covers every ordered pair
``(i, j), i != j`` with a handful of passes (group testing with Sperner code words, see
:mod:`._dependency`), then, only on failure, spends one pass per sample on the exact
``B x B`` matrix for the message.
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

CHECK = "assert_no_batch_mixing"


@dataclasses.dataclass(frozen=True)
class BatchMixingResult:
    """What a passing check measured.

    ``matrix[i, j]``: output sample ``i`` depends on input sample ``j`` (off the diagonal all
    ``False`` when it passes); ``checked[i, j]``: the pair was covered (``samples=``);
    ``noise``: how finely perturbation could tell (``None`` when gradients decided).
    """

    matrix: np.ndarray
    checked: np.ndarray
    method: str
    mode: str
    samples: tuple[int, ...]
    pairs: int
    noise: dep.RerunNoise | None = None


def assert_no_batch_mixing(
    model: Any,
    inputs: Any,
    *,
    batch_dim: int = 0,
    output: Any = None,
    method: str = "auto",
    output_batch_dim: int | None = None,
    samples: int | Sequence[int] | None = None,
    train: bool = False,
    msg: str | None = None,
) -> BatchMixingResult:
    """Assert that for every pair ``i != j`` output sample ``i`` does not depend on input ``j``.

    Args:
        model: a ``torch.nn.Module`` or any callable taking ``inputs``.
        inputs: a tensor, a tuple/list of positional arguments or a dict of keyword
            arguments; every tensor in it carries the batch at ``batch_dim``.
        batch_dim: the inputs' batch dimension.
        output: which tensor of the model's output to check (see the API's output rule).
        method: ``"grad"`` (backprop; exact), ``"perturb"`` (resample inputs and compare
            outputs; integer inputs too) or ``"auto"`` (grad for float inputs and for token
            ids an ``nn.Embedding`` reads, else perturb; perturb also when gradients come out
            non-finite or the forward cuts the gradient path).
        output_batch_dim: the output's batch dimension (default: ``batch_dim``).
        samples: check only pairs among these samples (a count from the start or indices);
            default: all.
        train: run in train mode (default eval: train-mode BatchNorm mixes by design).
        msg: replaces the failure headline; the evidence stays.
    """
    __tracebackhide__ = True
    dep.check_model(model)
    dep.check_method(method)
    ins = Inputs.of(inputs, model=model)
    n, _labels = ins.batched(batch_dim)
    if n < 2:
        raise ValueError(
            f"inputs= have batch size {n} along batch_dim={batch_dim}; batch mixing needs at "
            "least 2 samples. Pass a batch of 2 or more (or the right batch_dim=)."
        )
    chosen = dep.selection(samples, n, name="samples", unit="sample")
    sources = dep.sources_of(ins, batch_dim, None, None)
    obd = batch_dim if output_batch_dim is None else output_batch_dim
    modules = dep.modules_of(model)
    mode = dep.mode_of(modules, train)
    ctx = _context.current()
    seed = 0 if ctx is None or ctx.seed is None else ctx.seed
    device = ins.tensors()[0][1].device
    all_float = all(t.is_floating_point() for _l, t in ins.tensors())
    if method == "grad" and not all_float and not dep.has_embedding_reader(modules):
        raise ValueError(
            "method='grad' needs float inputs or integer inputs read by nn.Embedding modules "
            "of the model; no gradient reaches these integer inputs. Use method='perturb'."
        )
    run = dep.Runner(model, output, seed)
    with (
        _state.untouched(*modules),
        dep.frozen(modules, train=train),
        dep.first_batch(model, ins) as holder,
    ):
        chosen_method = method if method != "auto" else dep.auto_method(all_float, modules)
        if chosen_method == "grad":
            try:
                verdict = _by_grad(run, ins, sources, modules, n, chosen, obd, seed)
            except dep.Unreachable:
                if method != "auto":
                    raise
                verdict = _by_perturbation(run, ins, sources, n, chosen, obd, seed)
            if method == "auto" and verdict.undecided.any() and not verdict.violations.any():
                verdict = _by_perturbation(run, ins, sources, n, chosen, obd, seed)
                verdict.method = "perturb (grad was inconclusive: non-finite gradients)"
            elif method == "auto" and verdict.cut and not verdict.violations.any():
                verdict = _verdict.confirm_cut(
                    verdict, lambda: _by_perturbation(run, ins, sources, n, chosen, obd, seed)
                )
        else:
            verdict = _by_perturbation(run, ins, sources, n, chosen, obd, seed)
    _verdict.warn_within_noise(CHECK, verdict)
    passed = not verdict.violations.any() and not verdict.undecided.any()
    _context.record(
        CHECK,
        model,
        passed,
        matrix=verdict.depends.copy(),
        allowed=verdict.allowed.copy(),
        inconclusive=verdict.undecided.copy() if verdict.undecided.any() else None,
        method=verdict.method,
        mode=mode,
        batch=holder.get("batch"),
    )
    pairs = len(chosen) * (len(chosen) - 1)
    cover = f"{dep.covered(chosen, n, 'sample')} ({pairs} ordered pairs i != j)"
    if not passed:
        raise AssertionError(
            _verdict.failure_message(
                CHECK,
                verdict,
                msg=msg,
                headline=lambda i, j: f"output of sample {i} depends on input of sample {j}",
                arrow=lambda i, j: f"output {i} <- input {j}",
                pairs_label="Mixing pairs (output sample i, input sample j != i)",
                cause=_likely_cause(verdict, modules, train),
                covered_text=cover,
                facts={"method": verdict.method, "device": device, "mode": mode},
                rows="output sample",
                cols="input sample",
            )
        )
    return BatchMixingResult(
        matrix=verdict.depends,
        checked=verdict.checked,
        method=verdict.method,
        mode=mode,
        samples=tuple(chosen),
        pairs=pairs,
        noise=verdict.noise,
    )


def _groups(n: int, chosen: list[int]) -> torch.Tensor:
    codes = dep.sperner_codes(len(chosen))
    groups = torch.zeros(codes.shape[1], n, dtype=torch.bool)
    groups[:, chosen] = codes.T
    return groups


def _frame(n: int, chosen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    inside = np.zeros(n, dtype=bool)
    inside[chosen] = True
    return np.eye(n, dtype=bool), np.outer(inside, inside)


def _by_grad(
    run: dep.Runner,
    ins: Inputs,
    sources: dict[str, dep.Source],
    modules: list[torch.nn.Module],
    n: int,
    chosen: list[int],
    obd: int,
    seed: int,
) -> _verdict.Verdict:
    groups = _groups(n, chosen)
    allowed, checked = _frame(n, chosen)

    def batch_dim(out: torch.Tensor) -> int:
        return dep.output_dim(out, obd, size=n, name="output_batch_dim", what="batch dimension")

    graph = dep.Graph.build(run, ins, sources, modules, check_output=batch_dim)
    shape = [1] * (1 + graph.out.dim())
    shape[1 + batch_dim(graph.out)] = n

    def rows(masks: torch.Tensor) -> torch.Tensor:
        return masks.view([len(masks), *shape[1:]])

    def reduce(g: torch.Tensor, src: dep.Source) -> dep.Units:
        return dep.units(g, [0, 1 + src.batch_dim])

    screen = graph.screen(rows(groups), reduce, lambda u: u.nonzero & ~groups)
    outside = ~groups
    leaks = screen.nonzero & outside
    unknown = screen.nonfinite & outside & ~screen.nonzero
    if not leaks.any() and not unknown.any():
        depends = np.zeros((n, n), dtype=bool)
        diag = (screen.nonzero & groups).any(0).numpy()
        depends[np.arange(n), np.arange(n)] = diag & checked.diagonal()
        return _verdict.Verdict(
            depends, allowed, checked, np.zeros_like(depends), "grad", cut=graph.cut
        )
    masks = torch.zeros(len(chosen), n, dtype=torch.bool)
    masks[torch.arange(len(chosen)), torch.tensor(chosen)] = True
    u = graph.products(rows(masks), reduce)
    depends = np.zeros((n, n), dtype=bool)
    depends[chosen] = u.nonzero.numpy()
    inconclusive = np.zeros((n, n), dtype=bool)
    inconclusive[chosen] = (u.nonfinite & ~u.nonzero).numpy()
    magnitude = np.zeros((n, n), dtype=np.float64)
    magnitude[chosen] = u.magnitude.numpy()
    depends &= checked
    inconclusive &= checked
    strength = _verdict.relative_strength(magnitude, allowed & checked)
    return _verdict.Verdict(depends, allowed, checked, inconclusive, "grad", strength=strength)


def _by_perturbation(
    run: dep.Runner,
    ins: Inputs,
    sources: dict[str, dep.Source],
    n: int,
    chosen: list[int],
    obd: int,
    seed: int,
) -> _verdict.Verdict:
    groups = _groups(n, chosen)
    allowed, checked = _frame(n, chosen)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad(), dep.no_inference_fastpath():
        compare = dep.Comparison(run, ins)
        b = dep.output_dim(
            compare.base, obd, size=n, name="output_batch_dim", what="batch dimension"
        )
        compare.measure([b])

        def moved(members: torch.Tensor) -> dep.Units:
            def mask(src: dep.Source, t: torch.Tensor) -> torch.Tensor:
                return members.view(src.mask_shape(t))

            return compare.moved(dep.perturb(ins, sources, mask, gen), watch=~members)

        screen = torch.stack([moved(group).nonzero for group in groups])
        leaks = screen & ~groups
        if not leaks.any():
            depends = np.zeros((n, n), dtype=bool)
            diag = (screen & groups).any(0).numpy()
            depends[np.arange(n), np.arange(n)] = diag & checked.diagonal()
            return _verdict.Verdict(
                depends, allowed, checked, np.zeros_like(depends), "perturb", noise=compare.noise()
            )
        depends = np.zeros((n, n), dtype=bool)
        magnitude = np.zeros((n, n), dtype=np.float64)
        for j in chosen:
            one = torch.zeros(n, dtype=torch.bool)
            one[j] = True
            u = moved(one)
            depends[:, j] = u.nonzero.numpy()
            magnitude[:, j] = u.magnitude.numpy()
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


def _likely_cause(v: _verdict.Verdict, modules: list[torch.nn.Module], train: bool) -> str:
    mods = _verdict.module_types(modules)
    bn = [m for m in mods if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if train and bn:
        return (
            f"train-mode BatchNorm ({type(bn[0]).__name__}) normalises each sample with the "
            "batch's statistics, which mixes the batch by design; check in eval mode "
            "(train=False, the default), or use LayerNorm/GroupNorm if samples must stay "
            "independent in training."
        )
    attention = (
        torch.nn.MultiheadAttention,
        torch.nn.TransformerEncoderLayer,
        torch.nn.TransformerDecoderLayer,
    )
    v_mat = v.violations
    off = ~v.allowed & v.checked
    dense = bool(v_mat[off].all())
    lower = not bool(np.triu(v_mat).any()) and int(v_mat.sum()) > 1
    seq_first = [
        m
        for m in mods
        if (isinstance(m, attention) and dense) or (isinstance(m, torch.nn.RNNBase) and lower)
    ]
    seq_first = [m for m in seq_first if not _batch_first(m)]
    if seq_first:
        kind = type(seq_first[0]).__name__
        return (
            f"{kind} with batch_first=False runs along dim 0 of what it is given, and the batch "
            "got there: a .view()/.reshape() where .permute()/.transpose() belonged before it, "
            "or (batch, seq, feature) tensors fed without batch_first=True."
        )
    if dense:
        return (
            "statistics over the batch dimension: a normalisation or mean/std/softmax/max over "
            "dim 0 (e.g. x - x.mean(0), a hand-written BatchNorm), or attention/matmul across "
            "the batch. Reduce over feature/time dimensions instead."
        )
    if lower:
        return (
            "each sample depends on the samples before it: a recurrence or cumulative op "
            "(cumsum, an RNN fed batch-first data as seq-first) running along the batch."
        )
    return (
        "a view/reshape across the batch dimension: .view()/.reshape() where "
        ".permute()/.transpose() belonged (e.g. (B, T, C) -> (T, B, C) with view), or "
        "indexing/rolling along the batch. Move dimensions with permute, not with view."
    )


def _batch_first(m: torch.nn.Module) -> bool:
    if isinstance(m, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
        return bool(getattr(m.self_attn, "batch_first", False))
    return bool(getattr(m, "batch_first", False))
