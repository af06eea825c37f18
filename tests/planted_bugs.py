"""Planted bugs for the structural checks' explanations: each bug is a small module put into
one place of an otherwise correct stack of blocks; the failure message must name that module
(``Where: it starts in blocks.2.norm ...``) and give a likely cause that fits the bug.

A :class:`Bug` builds the model with the bug at block ``place`` (``blocks.<place>``), the
inputs, and says what the message must name (``culprit``, a qualified module name relative to
the block) and what the cause must say (``cause``, a regular expression).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

B, T, C = 3, 10, 6  # causal: batch, steps, features
NB, NT = 5, 7  # batch mixing: batch, steps (features C)
PLACES = (0, 1, 2)


class Stack(nn.Module):
    """Three blocks in a row; ``blocks.<place>`` is the planted one."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Mlp(nn.Module):
    """Per sample, per step: correct for both checks."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.lin(x))


class CausalAttention(nn.Module):
    """Single-head attention over (B, T, C); ``flaw`` plants a bug in its mask."""

    def __init__(self, flaw: str = "") -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.flaw = flaw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        scores = self.q(x) @ self.k(x).transpose(1, 2) / math.sqrt(C)
        ones = torch.ones(steps, steps, dtype=torch.bool)
        if self.flaw == "off_by_one":
            scores = scores.masked_fill(torch.triu(ones, diagonal=2), float("-inf"))
        elif self.flaw != "no_mask" and self.flaw != "after_softmax":
            scores = scores.masked_fill(torch.triu(ones, diagonal=1), float("-inf"))
        weights = scores.softmax(-1)
        if self.flaw == "after_softmax":
            weights = weights * torch.tril(ones).float()
        return x + weights @ self.v(x)


class Mha(nn.Module):
    """``nn.MultiheadAttention`` with a causal mask, off by one, or none."""

    def __init__(self, flaw: str = "") -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(C, 2, batch_first=True)
        self.flaw = flaw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        ones = torch.ones(steps, steps, dtype=torch.bool)
        mask = None if self.flaw == "no_mask" else torch.triu(ones, diagonal=1)
        if self.flaw == "off_by_one":
            mask = torch.triu(ones, diagonal=2)
        return x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]


class Sdpa(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.qkv = nn.Linear(C, 3 * C)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).unsqueeze(1).chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return x + out.squeeze(1)


class TimeNorm(nn.Module):
    """A normalisation written by hand, over time (the bug) or over features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(self.dim, keepdim=True)
        return (x - mean) / (x.std(self.dim, keepdim=True) + 1e-5)


class Shift(nn.Module):
    """Token shift: step t gets the features of step t-1; by roll (wraps around) or padding,
    or the wrong way (t+1)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.lin = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "roll":
            shifted = torch.roll(x, 1, dims=1)
        elif self.how == "ahead":
            shifted = F.pad(x[:, 1:], (0, 0, 0, 1))
        else:
            shifted = F.pad(x[:, :-1], (0, 0, 1, 0))
        return self.lin(x + shifted)


class LengthPositions(nn.Module):
    """Positions learnt from the data and scaled by the sequence's (soft) length: a rotary
    angle from cumsum(w) / sum(w); the sum reads every step."""

    def __init__(self, scaled: bool) -> None:
        super().__init__()
        self.gate = nn.Linear(C, 1)
        self.scaled = scaled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.gate(x))
        pos = w.cumsum(1)
        if self.scaled:
            pos = pos / w.sum(1, keepdim=True)
        return x * torch.cos(pos) + x.flip(-1) * torch.sin(pos)


class Rnn(nn.Module):
    def __init__(self, bidirectional: bool = False, batch_first: bool = True) -> None:
        super().__init__()
        hidden = C // 2 if bidirectional else C
        self.rnn = nn.LSTM(C, hidden, batch_first=batch_first, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rnn(x)[0]


class ConvBlock(nn.Module):
    """A dilated causal convolution over (B, T, C): left padding, or (the bug) symmetric."""

    def __init__(self, dilation: int, symmetric: bool) -> None:
        super().__init__()
        pad = dilation if symmetric else 0
        self.conv = nn.Conv1d(C, C, 3, dilation=dilation, padding=pad)
        self.left = 0 if symmetric else 2 * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x.transpose(1, 2), (self.left, 0))
        return x + torch.tanh(self.conv(h)).transpose(1, 2)


class Pooled(nn.Module):
    """Adds a summary of the whole sequence to every step (a pooled output)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lin(x.mean(1, keepdim=True)).expand_as(x)


# --- batch mixing ---------------------------------------------------------------------------


class BatchStats(nn.Module):
    """A hand-written BatchNorm, a softmax over the batch, or a mean over the batch."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "norm":
            return (x - x.mean(0)) / (x.std(0) + 1e-5)
        if self.how == "softmax":
            return x * x.softmax(0)
        return x + x.mean(0, keepdim=True)


class ViewGroupNorm(nn.Module):
    """GroupNorm written with view(G, -1): the groups run across samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(3, -1)
        h = (h - h.mean(1, keepdim=True)) / (h.std(1, keepdim=True) + 1e-5)
        return h.view_as(x)


class TransposedReshape(nn.Module):
    """(B, T, C) -> (T, B, C) -> reshape back to (B, T, C): samples scrambled."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x.transpose(0, 1))
        return h.reshape(x.shape)


class CapacityMoE(nn.Module):
    """Top-1 routing with a capacity per expert counted over the batch: the load of each
    expert before a sample (the cumulative routing probabilities of the samples before it)
    scales the sample down once its expert is full."""

    def __init__(self, experts: int = 2, capacity: float = 1.0) -> None:
        super().__init__()
        self.gate = nn.Linear(C, experts)
        self.experts = nn.ModuleList(nn.Linear(C, C) for _ in range(experts))
        self.capacity = capacity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = self.gate(x.mean(1)).softmax(-1)  # (B, E)
        choice = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(x.dtype)
        load = (probs * choice).cumsum(0)  # the load of each expert up to each sample
        keep = torch.sigmoid(4.0 * (self.capacity - load)) * choice
        out = torch.stack([e(x) for e in self.experts], 1)  # (B, E, T, C)
        return x + (out * keep[:, :, None, None]).sum(1)


class BatchRoll(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.5 * x.roll(1, 0)


class BatchAttention(nn.Module):
    """Attention whose scores contract over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k = nn.Linear(C, C), nn.Linear(C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("btc,stc->bs", self.q(x), self.k(x))
        return x + torch.einsum("bs,stc->btc", scores.softmax(-1), x)


class SeqFirstMha(nn.Module):
    """nn.MultiheadAttention without batch_first=True, fed (B, T, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(C, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(x, x, x, need_weights=False)[0]


# --- the table ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bug:
    name: str
    check: str  # "causal" or "batch"
    make: Callable[[], nn.Module]
    culprit: str  # relative to blocks.<place> ("" for the block itself)
    cause: str  # a regular expression the likely cause must match

    def build(self, place: int) -> tuple[nn.Module, torch.Tensor, str]:
        """The model with the bug at ``place``, the inputs, the culprit's qualified name."""
        torch.manual_seed(place)
        if self.check == "causal":
            blocks: list[nn.Module] = [ConvBlock(2**i, False) if i == 1 else Mlp() for i in PLACES]
            shape: tuple[int, ...] = (B, T, C)
        else:
            blocks = [Mlp() for _ in PLACES]
            shape = (NB, NT, C)
        blocks[place] = self.make()
        name = f"blocks.{place}" + (f".{self.culprit}" if self.culprit else "")
        return Stack(blocks), torch.randn(*shape), name


def _conv(place_dilation: int) -> Callable[[], nn.Module]:
    return lambda: ConvBlock(place_dilation, True)


BUGS: list[Bug] = [
    Bug("hand_norm_over_time", "causal", lambda: TimeNorm(1), "", r"normalisation over time"),
    Bug(
        "layernorm_over_time",
        "causal",
        lambda: nn.Sequential(nn.LayerNorm([T, C])),
        "0",
        r"normalisation over time: blocks\.\d\.0 \(LayerNorm over \(10, 6\)\)",
    ),
    Bug(
        "attention_no_mask",
        "causal",
        lambda: CausalAttention("no_mask"),
        "",
        r"attention without a causal mask",
    ),
    Bug(
        "mask_after_softmax",
        "causal",
        lambda: CausalAttention("after_softmax"),
        "",
        r"mask applied after the softmax",
    ),
    Bug(
        "attention_mask_off_by_one",
        "causal",
        lambda: CausalAttention("off_by_one"),
        "",
        r"attention mask off by one",
    ),
    Bug("mha_no_mask", "causal", lambda: Mha("no_mask"), "attn", r"attention without a causal"),
    Bug("mha_off_by_one", "causal", lambda: Mha("off_by_one"), "attn", r"mask off by one"),
    Bug("sdpa_not_causal", "causal", lambda: Sdpa(False), "", r"attention without a causal"),
    Bug("roll_token_shift", "causal", lambda: Shift("roll"), "", r"shift that wraps around"),
    Bug("shift_ahead", "causal", lambda: Shift("ahead"), "", r"shift off by one"),
    Bug(
        "positions_scaled_by_length",
        "causal",
        lambda: LengthPositions(True),
        "",
        r"statistic over the whole sequence \(sum\)",
    ),
    Bug("bidirectional_lstm", "causal", lambda: Rnn(bidirectional=True), "rnn", r"bidirectional"),
    Bug(
        "symmetric_padding_dilated",
        "causal",
        _conv(4),
        "conv",
        r"looks 4 step\(s\) ahead: blocks\.\d\.conv \(Conv1d\(kernel_size=3, dilation=4",
    ),
    Bug("pooled_output", "causal", Pooled, "", r"statistic over the whole sequence \(mean\)"),
    Bug("hand_batchnorm", "batch", lambda: BatchStats("norm"), "", r"statistics over the batch"),
    Bug("softmax_over_batch", "batch", lambda: BatchStats("softmax"), "", r"over the batch"),
    Bug("mean_over_batch", "batch", lambda: BatchStats("mean"), "", r"statistics over the batch"),
    Bug("groupnorm_by_view", "batch", ViewGroupNorm, "", r"statistics over groups of samples"),
    Bug("transposed_reshape", "batch", TransposedReshape, "", r"view/reshape across the batch"),
    Bug("capacity_moe", "batch", CapacityMoE, "", r"capacity-limited routing"),
    Bug("roll_over_batch", "batch", BatchRoll, "", r"roll along the batch"),
    Bug("attention_over_batch", "batch", BatchAttention, "", r"matmul across the batch"),
    Bug(
        "lstm_not_batch_first",
        "batch",
        lambda: Rnn(batch_first=False),
        "rnn",
        r"rnn \(LSTM\(batch_first=False.*runs along dim 0",
    ),
    Bug("mha_not_batch_first", "batch", SeqFirstMha, "attn", r"runs along dim 0"),
]


def outcome(bug: Bug, place: int) -> tuple[bool, bool, str]:
    """(the culprit is named, the cause fits, the message) of the check on the planted bug."""
    import re

    from pytest_nnrecipe import assert_causal, assert_no_batch_mixing

    model, x, name = bug.build(place)
    check: Any = assert_causal if bug.check == "causal" else assert_no_batch_mixing
    try:
        check(model, x)
    except AssertionError as e:
        message = str(e)
    else:
        return False, False, "passed"
    where = re.search(r"Where: it starts in (\S+) ", message)
    cause = re.search(r"Likely cause: (.*)", message)
    named = where is not None and where.group(1) == name
    fits = cause is not None and re.search(bug.cause, cause.group(1)) is not None
    return named, fits, message
