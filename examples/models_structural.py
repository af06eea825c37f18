"""Small models for the structural examples: correct ones, and the bugs that still train.

Each bug is a one-line change from a correct model, chosen by a constructor argument, so that
the example tests read as "this model, with this mistake, is caught".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """A classifier head: every sample on its own."""

    def __init__(self, d_in: int = 8, d_out: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, d_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """An image classifier with BatchNorm (which mixes the batch in train mode only)."""

    def __init__(self, channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class BatchNormByHand(nn.Module):
    """Bug: a hand-written normalisation over dim 0, the batch, instead of the features."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return (h - h.mean(0)) / (h.std(0) + 1e-5)  # should be dim=-1


class SequenceEncoder(nn.Module):
    """A time-major GRU under a batch-first interface: (B, T) tokens or (B, T, C) features in,
    (B, T, H) out. ``reorder="view"`` is the bug: ``view`` where ``permute`` belonged."""

    def __init__(self, vocab: int | None = None, d: int = 8, reorder: str = "permute") -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d) if vocab else None
        self.rnn = nn.GRU(d, d)  # expects (T, B, C)
        self.reorder = reorder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        b, t, c = h.shape
        h = h.permute(1, 0, 2) if self.reorder == "permute" else h.view(t, b, c)
        out, _ = self.rnn(h)
        return out.permute(1, 0, 2) if self.reorder == "permute" else out.reshape(b, t, c)


class CausalConvNet(nn.Module):
    """A temporal conv net over (B, C, T). ``padding="left"`` is causal; ``"symmetric"``
    (``padding=k // 2``) is the bug: the kernel is centred and looks ahead."""

    def __init__(self, channels: int = 4, kernel: int = 3, padding: str = "left") -> None:
        super().__init__()
        pad = 0 if padding == "left" else kernel // 2
        self.convs = nn.ModuleList(
            [nn.Conv1d(channels, channels, kernel, padding=pad, dilation=1) for _ in range(2)]
        )
        self.left = (kernel - 1) if padding == "left" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(F.pad(x, (self.left, 0))))
        return x


class CausalTransformer(nn.Module):
    """A decoder-only transformer (``nn.TransformerEncoder`` + causal mask) over token ids
    (``vocab``) or features. ``mask="none"`` and ``mask="off_by_one"`` are the bugs."""

    def __init__(self, vocab: int | None = None, d: int = 16, mask: str = "causal") -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d) if vocab else None
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab or d)
        self.mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        t = h.shape[1]
        if self.mask == "none":
            return self.head(self.encoder(h))
        diagonal = 1 if self.mask == "causal" else 2  # 2: each step also sees the next one
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=h.device), diagonal)
        return self.head(self.encoder(h, mask=mask))


class LSTMLanguageModel(nn.Module):
    """An LSTM language model over token ids; ``bidirectional=True`` is the bug."""

    def __init__(self, vocab: int = 20, d: int = 8, bidirectional: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, d, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(d * (2 if bidirectional else 1), vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out)


class DictOutputModel(nn.Module):
    """Returns a dict, like many library models: the checks look at ``logits``."""

    def __init__(self, vocab: int = 20, d: int = 8) -> None:
        super().__init__()
        self.lm = LSTMLanguageModel(vocab, d)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.lm(input_ids)
        return {"loss_per_token": logits.logsumexp(-1), "logits": logits}


def tokens(batch: int = 4, steps: int = 8, vocab: int = 20) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, steps))
