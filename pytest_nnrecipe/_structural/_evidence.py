"""What a failing structural check saw, read as evidence for a likely cause.

:class:`Evidence` holds the final verdict and where the dependency starts
(:class:`~._localise.Origin`): the module, the ops that introduced it, the ops after them in
that module, and the pattern of forbidden dependencies at that module's output. A check's
``likely_cause(evidence)`` matches known signatures against it (a full upper triangle from a
normalisation over time, one superdiagonal from an attention mask, a corner from a shift that
wraps around, ...) and returns ``None`` when none matches: then the message says what was seen
and guesses nothing (:meth:`Evidence.seen`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import torch

from ._localise import Origin, describe
from ._verdict import Verdict

#: Ops that reduce over a dimension (statistics): a mean over the batch or over time.
STATISTICS = frozenset(
    {
        *("mean", "sum", "std", "var", "var_mean", "std_mean", "norm", "logsumexp", "nansum"),
        *("amax", "amin", "max", "min", "median", "prod", "softmax", "log_softmax", "nanmean"),
        *("layer_norm", "group_norm", "instance_norm", "batch_norm", "rms_norm", "normalize"),
    }
)
#: Normalisations (as one op).
NORMS = frozenset({"layer_norm", "group_norm", "instance_norm", "batch_norm", "rms_norm"})
#: Ops that only move values around (no arithmetic).
LAYOUT = frozenset(
    {
        *("view", "reshape", "transpose", "permute", "flatten", "unflatten", "contiguous"),
        *("t", "swapaxes", "swapdims", "movedim", "unsqueeze", "squeeze", "expand", "clone"),
        *("expand_as", "view_as", "reshape_as", "__getitem__", "narrow", "select", "to"),
    }
)
#: Ops that run along a dimension, each entry reading those before it.
CUMULATIVE = frozenset({"cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"})
#: Ops that pick with indices: routing by argmax/top-k.
ROUTING = frozenset({"argmax", "topk", "argsort", "sort", "one_hot", "max"})
#: Ops that mask (zero or fill) entries.
MASKING = frozenset(
    {"masked_fill", "masked_fill_", "mul", "__mul__", "mul_", "where", "tril", "triu", "__imul__"}
)
#: Attention as one op, or its parts.
ATTENTION = frozenset(
    {"scaled_dot_product_attention", "multi_head_attention_forward", "softmax", "baddbmm"}
)
#: Ops that shift along a dimension.
SHIFTS = frozenset({"roll", "pad", "cat", "__getitem__", "narrow", "flip"})
#: Recurrences as one op.
RNN_OPS = frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu"})
#: Convolutions as one op.
CONV_OPS = frozenset({"conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d"})


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The final verdict and where the dependency starts (``origin``, ``None`` when the
    localisation could not tell)."""

    verdict: Verdict
    origin: Origin | None

    @property
    def where(self) -> str:
        return self.origin.where() if self.origin is not None else "the model"

    @property
    def ops(self) -> tuple[str, ...]:
        """The ops that introduced the dependency (forward order)."""
        return self.origin.ops if self.origin is not None else ()

    @property
    def later(self) -> tuple[str, ...]:
        return self.origin.later if self.origin is not None else ()

    @property
    def forbidden(self) -> np.ndarray:
        v = self.verdict
        return ~v.allowed & v.checked

    @property
    def pattern(self) -> np.ndarray:
        """The forbidden dependencies where the dependency starts (else at the output)."""
        if self.origin is not None and self.origin.matrix.any():
            return self.origin.matrix
        return self.verdict.violations

    def used(self, names: Iterable[str]) -> list[str]:
        """The ops among ``names`` that introduced the dependency."""
        wanted = set(names)
        return [op for op in self.ops if op.rstrip("_") in wanted or op in wanted]

    def module(self, kind: type | tuple[type, ...]) -> tuple[str, torch.nn.Module] | None:
        """The module of type ``kind`` where the dependency starts: the culprit itself or one
        of the modules its ops ran in."""
        if self.origin is None:
            return None
        found = [(n, m) for n, m in self.origin.modules if isinstance(m, kind)]
        if self.origin.module is not None and isinstance(self.origin.module, kind):
            found.insert(0, (self.origin.name or "the model", self.origin.module))
        return found[0] if found else None

    def named(self, kind: type | tuple[type, ...]) -> str | None:
        """``blocks.2.conv (Conv1d(...))`` for the module of ``kind`` where it starts."""
        hit = self.module(kind)
        if hit is None:
            return None
        return f"{hit[0] or 'the model itself'} ({describe(hit[1])})"

    # --- the pattern --------------------------------------------------------------------

    def every(self) -> bool:
        """Every checked forbidden pair depends (a full upper triangle / all off-diagonal)."""
        f = self.forbidden[: self.pattern.shape[0]]
        return bool(f.any()) and bool(self.pattern[f].all())

    def ahead(self) -> int:
        """How many units ahead the farthest forbidden dependency reaches (``j - i``)."""
        rows, cols = np.nonzero(self.pattern)
        return int((cols - rows).max()) if rows.size else 0

    def band(self) -> bool:
        """Forbidden dependencies only within a few units ahead of the diagonal, on most rows:
        an off-by-one (or off-by-k) mask, shift or padding."""
        rows, cols = np.nonzero(self.pattern)
        if not rows.size or self.wraps():
            return False
        reach = self.ahead()
        size = self.pattern.shape[1]
        return 0 < reach <= max(1, size // 3) and bool((cols > rows).all())

    def wraps(self) -> bool:
        """Only the first ``k`` units depend on later ones, unit ``i`` on unit ``size - k + i``
        among them (a corner): a shift by ``k`` that wraps around."""
        rows = np.nonzero(self.pattern.any(1))[0]
        size = self.pattern.shape[1]
        if not rows.size or size < 3:
            return False
        k = int(rows.max()) + 1
        return k <= size // 3 and all(bool(self.pattern[i, size - k + i]) for i in rows)

    def earlier_only(self) -> bool:
        """Each unit depends on earlier ones only (below the diagonal)."""
        rows, cols = np.nonzero(self.pattern)
        return bool(rows.size) and bool((cols < rows).all()) and not self.every()

    def one_per_row(self) -> bool:
        rows = self.pattern.sum(1)
        return bool(rows.any()) and bool((rows[rows > 0] == 1).all())

    def seen(self, unit: str) -> str:
        """What was seen, in words, when no known signature matches."""
        p = self.pattern
        n, total = int(p.sum()), int(self.forbidden[: p.shape[0]].sum())
        rows, cols = np.nonzero(p)
        pairs = ", ".join(f"{unit} {i} <- {j}" for i, j in list(zip(rows, cols, strict=True))[:4])
        ops = self.origin.op_text() if self.origin is not None else ""
        at = f" at {ops}" if ops else ""
        return (
            f"none guessed: no known signature matches what was seen: {n} of {total} forbidden "
            f"pairs ({pairs}) start in {self.where}{at}. Look at what that code does along "
            f"the {unit}s."
        )
