"""``assert_no_batch_mixing``: no output sample depends on another sample's input.

A ``view`` where a ``permute`` belonged, a hand-written normalisation over ``dim=0``, an
attention layer with ``batch_first=False`` fed ``(batch, seq, feature)`` tensors: the net
still trains, every sample just peeks at the others. The check covers every ordered pair
``(i, j), i != j`` with a handful of passes (group testing with Sperner code words, see
:mod:`._dependency`), then, only on failure, spends one pass per sample on the exact
``B x B`` matrix for the message. The driver (:mod:`._driver`) does the rest; this module
declares what is checked (:data:`DECLARATION`) and how to find it, by gradient and by
perturbation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import _dependency as dep
from .._results import BatchMixingResult
from . import _driver, _verdict
from ._evidence import CUMULATIVE, LAYOUT, ROUTING, STATISTICS, Evidence
from ._localise import describe

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Method, Model, ModelInputs, OutputSelector

CHECK = "assert_no_batch_mixing"


def assert_no_batch_mixing(
    model: Model,
    inputs: ModelInputs,
    *,
    batch_dim: int = 0,
    output: OutputSelector = None,
    method: Method = "auto",
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
    request = _driver.Request(
        model, inputs, batch_dim, output, method, train, msg, samples, output_batch_dim
    )
    found = _driver.check(DECLARATION, request)
    return found.result(BatchMixingResult, samples=found.chosen)


def _groups(n: int, chosen: list[int]) -> torch.Tensor:
    codes = dep.sperner_codes(len(chosen))
    groups = torch.zeros(codes.shape[1], n, dtype=torch.bool)
    groups[:, chosen] = codes.T
    return groups


def _by_grad(setup: _driver.Setup) -> _verdict.Verdict:
    run, ins, sources, modules = setup.run, setup.ins, setup.sources, setup.modules
    n, chosen, obd = setup.batch, setup.chosen, setup.obd
    groups = _groups(n, chosen)
    allowed, checked = setup.frame()

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


def _by_perturbation(setup: _driver.Setup) -> _verdict.Verdict:
    run, ins, sources = setup.run, setup.ins, setup.sources
    n, chosen, obd, seed = setup.batch, setup.chosen, setup.obd, setup.seed
    groups = _groups(n, chosen)
    allowed, checked = setup.frame()
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
    return _verdict.perturbed(depends, magnitude, (allowed, checked), compare)


def _likely_cause(ev: Evidence) -> str | None:
    """The cause the evidence supports (see :mod:`._evidence`), or ``None``."""
    where = ev.where
    o = ev.origin
    found = [] if o is None else [*o.modules, (o.name or "the model", o.module)]
    seq = [(n, m) for n, m in found if m is not None and _driver.SAMPLES.alternative.fits(m)]
    if seq:
        name, m = seq[0]
        return (
            f"{name} ({describe(m)}) runs along dim 0 of what it is given, and the batch got "
            "there: (batch, seq, feature) tensors fed without batch_first=True, or a "
            ".view()/.reshape() where .permute()/.transpose() belonged before it."
        )
    cumulative = ev.used(CUMULATIVE)
    if cumulative:
        routing = ROUTING & set(ev.later + ev.ops + _before(ev))
        if routing:
            return (
                f"capacity-limited routing across the batch in {where}: {cumulative[0]} over "
                f"the samples counts the tokens routed ({', '.join(sorted(routing))}) before "
                "each sample, so whether a sample is kept depends on the samples before it. "
                "Give each sample its own capacity, or count per sample."
            )
        return (
            f"a cumulative op along the batch ({cumulative[0]}) in {where}: each sample reads "
            "the samples before it. Run it along time or features."
        )
    stats = ev.used(STATISTICS)
    layout = ev.used(LAYOUT)
    if stats and layout and ev.ops.index(layout[0]) < ev.ops.index(stats[0]) and not ev.every():
        return (
            f"statistics over groups of samples in {where}: {layout[0]} puts several samples "
            f"in one row before {stats[0]} (e.g. a GroupNorm written as x.view(G, -1)). "
            "Keep the batch dimension: x.view(B, G, -1) and reduce over the last."
        )
    if stats:
        return (
            f"statistics over the batch dimension in {where} ({stats[0]}): a normalisation or "
            "mean/std/softmax/max over dim 0 (e.g. x - x.mean(0), a hand-written BatchNorm). "
            "Reduce over feature/time dimensions instead."
        )
    shifts = ev.used({"roll", "flip"})
    if shifts:
        return (
            f"a {shifts[0]} along the batch in {where}: each sample reads another one. Roll or "
            "flip along time/features (dims=1), not dim 0."
        )
    if ev.ops and all(op in LAYOUT for op in ev.ops):
        return (
            f"a view/reshape across the batch dimension in {where} ({' -> '.join(ev.ops)}): "
            ".view()/.reshape() where .permute()/.transpose() belonged (e.g. (B, T, C) -> "
            "(T, B, C) with view). Move dimensions with permute, not with view."
        )
    if ev.every() and ev.used({"matmul", "bmm", "einsum", "softmax", "__matmul__", "mm"}):
        return (
            f"attention or a matmul across the batch in {where}: every sample reads every "
            "other. Contract over time/features, with the batch as a batch dimension."
        )
    return None


def _before(ev: Evidence) -> tuple[str, ...]:
    return () if ev.origin is None else ev.origin.earlier


def _diagonal(rows: int, cols: int) -> np.ndarray:
    return np.eye(rows, cols, dtype=bool)


#: How batch mixing names what it checks and finds (see ``_driver.Words``).
WORDS = _driver.Words.table(
    """
    pair:       output of sample {i} depends on input of sample {j}
    short:      output {i} <- input {j}
    checked:    ordered pairs i != j
    found:      Mixing pairs (output sample i, input sample j != i)
    train norm: train-mode BatchNorm ({norm}) normalises each sample with the batch's
                statistics, which mixes the batch by design; check in eval mode (train=False,
                the default), or use LayerNorm/GroupNorm if samples must stay independent in
                training.
    """
)
#: Batch mixing in the driver's terms: its units are samples, an output sample may depend on
#: its own input only; its words, its two passes and its likely causes.
DECLARATION = _driver.Declaration(
    CHECK, _driver.SAMPLES, WORDS, _diagonal, (_by_grad, _by_perturbation), _likely_cause
)
