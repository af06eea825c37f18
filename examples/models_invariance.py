"""Models for the padding and invariance examples: each correct, or with one planted bug.

Weights and inputs come from the test's seeded generators (no fixed seed here), so every
verdict holds for every ``--nn-seed``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VOCAB = 50


def padded_tokens(lengths=(7, 3, 5, 2), steps=7, *, left=False):
    """A batch of token ids with its attention mask (1 at real positions), pad id 0."""
    pos = torch.arange(steps)
    n = torch.tensor(lengths)[:, None]
    mask = (pos >= steps - n if left else pos < n).long()
    ids = torch.randint(1, VOCAB, mask.shape) * mask
    return {"input_ids": ids, "attention_mask": mask}


class TextClassifier(nn.Module):
    """Embedding, masked self-attention, masked mean pooling, a head.

    ``bug``: ``"pool over padding"`` (``h.mean(1)``), ``"mask not passed"`` (attention without
    ``key_padding_mask``), ``"inverted mask"`` (``key_padding_mask=mask``, and the pooling
    weighs the padding).
    """

    def __init__(self, bug=None, dim=16):
        super().__init__()
        self.bug = bug
        self.emb = nn.Embedding(VOCAB, dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids)
        if self.bug == "mask not passed":
            h = h + self.attn(h, h, h)[0]
        elif self.bug == "inverted mask":
            h = h + self.attn(h, h, h, key_padding_mask=attention_mask.bool())[0]
        else:
            h = h + self.attn(h, h, h, key_padding_mask=attention_mask == 0)[0]
        if self.bug == "pool over padding":
            return self.head(h.mean(1))
        m = attention_mask[..., None].to(h.dtype)
        if self.bug == "inverted mask":
            m = 1 - m
        return self.head((h * m).sum(1) / m.sum(1))


def tiny_bert():
    """A 2-layer BertForSequenceClassification built from a config (never downloaded)."""
    import transformers

    cfg = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=3,
    )
    return transformers.BertForSequenceClassification(cfg)


class DeepSets(nn.Module):
    """phi per element, a sum over the set, rho. ``positions=True``: the bug of a set model
    that reads positions (a learned embedding per slot before the non-linearity)."""

    def __init__(self, positions=False, size=8, features=3):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 32))
        self.rho = nn.Sequential(nn.ReLU(), nn.Linear(32, 2))
        self.slot = nn.Parameter(torch.randn(size, 32)) if positions else None

    def forward(self, x):
        h = self.phi(x)
        if self.slot is not None:
            h = torch.relu(h + self.slot)
        return self.rho(h.sum(1))


class SetTagger(nn.Module):
    """A label per element from the element and the set's mean: permutation equivariant."""

    def __init__(self, features=3):
        super().__init__()
        self.f = nn.Linear(2 * features, 4)

    def forward(self, x):
        return self.f(torch.cat([x, x.mean(1, keepdim=True).expand_as(x)], -1))


class CircularConv(nn.Module):
    """Two circular 1-d convolutions: equivariant to circular shifts of the signal.
    ``padding_mode="zeros"``: the bug, the edges break the symmetry."""

    def __init__(self, padding_mode="circular"):
        super().__init__()
        self.a = nn.Conv1d(2, 8, 5, padding=2, padding_mode=padding_mode)
        self.b = nn.Conv1d(8, 2, 3, padding=1, padding_mode=padding_mode)

    def forward(self, x):
        return self.b(F.gelu(self.a(x)))


class FlattenByHand(nn.Module):
    """A CNN head that flattens by reading memory as if it were contiguous (``as_strided``):
    a channels_last batch gives other features."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        h = self.conv(x)
        n = h[0].numel()
        return self.head(h.as_strided((h.shape[0], n), (n, 1)))  # the bug: memory order
