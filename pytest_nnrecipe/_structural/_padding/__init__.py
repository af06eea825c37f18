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
Face's ``attention_mask``), and every other input with the mask's time dimension is content
(or those ``ids=`` names; the rest are held as given).

The modules: ``_case`` (the arguments and the call), ``_leaks`` (finding the leaking pairs),
``_cause`` (the reruns that read the likely cause), ``_message`` (what the failure says).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ... import _context, _messages, _state
from ... import _dependency as dep
from ..._messages import PrecisionWarning
from ..._records import DependencyRecord, model_name
from ..._results import PaddingResult
from ._case import case_of, check_pooled, gradable
from ._cause import likely_cause
from ._leaks import find
from ._message import evidence, headline, picture

if TYPE_CHECKING:  # pragma: no cover
    from ..._types import Method, Model, ModelInputs, OutputSelector

CHECK = "assert_padding_ignored"
NO_CAUSE = (
    "none of the known signatures matches (the mask unused, inverted or of the wrong dtype, "
    "a pooling over padding): the padded positions listed reach the outputs named; check "
    "the layers between them with output= (e.g. the hidden states)."
)


def assert_padding_ignored(
    model: Model,
    inputs: ModelInputs,
    *,
    mask: str | int = "attention_mask",
    ids: str | int | Sequence[str | int] | None = None,
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
        ids: which inputs hold the content at padded positions, the ones the check resamples:
            ``None`` (default) every input but the mask with the mask's length along
            ``time_dim`` (``input_ids``, ``token_type_ids``, ``inputs_embeds``), or a key /
            positional index, or a list of them (``ids="input_ids"``): the other inputs are
            then held as given (``position_ids``, a ``labels`` tensor of the same length).
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
    case = case_of(model, inputs, mask, ids, (batch_dim, time_dim), output)
    pooled = check_pooled(pooled)
    dep.check_method(method)
    if method == "grad" and not gradable(case):
        raise ValueError(
            "method='grad' needs float content or integer content read by nn.Embedding "
            "modules of the model; no gradient reaches these inputs. Use method='perturb'."
        )
    with (
        _state.untouched(*case.modules),
        dep.frozen(case.modules, train=train),
        dep.no_inference_fastpath(),
    ):
        found = find(case, case.given, pooled, method)
        cause = None
        if found.leaks.any():
            try:
                cause = likely_cause(case, found) or NO_CAUSE
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
            headline(found),
            evidence=evidence(case, found),
            cause=cause,
            facts=facts,
            picture=picture(case, found),
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
        resampled=tuple(case.resampled()),
    )
