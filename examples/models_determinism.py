"""Models for the "fix random seed" examples: one that is reproducible (dropout draws from
torch's seeded generator), and three that are not, each for a different reason."""

from __future__ import annotations

import time

import torch
from torch import nn


def batch(device="cpu"):
    """16 samples of 8 features and their class (one of 3)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    return x.to(device), y.to(device)


class DropoutNet(nn.Module):
    """Correct: dropout draws from torch's global generator, which the seed resets."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.body(x))


class ClockNoise(nn.Module):
    """Noise from a generator seeded from the clock: no seed reaches it."""

    def __init__(self):
        super().__init__()
        self.gen = torch.Generator().manual_seed(time.time_ns() % 2**62)

    def forward(self, x):
        return x + 0.1 * torch.randn(x.shape, generator=self.gen).to(x.device)


class CallCounter(nn.Module):
    """Scales by how often it has been called: state carried from call to call."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * (1 + 0.1 * self.calls)


class Wrapped(nn.Module):
    """``Linear -> middle -> Linear``: the middle module is where runs part."""

    def __init__(self, middle):
        super().__init__()
        self.embed, self.middle, self.head = nn.Linear(8, 32), middle, nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.middle(self.embed(x)))


class ScatterPool(nn.Module):
    """Sums the features of many rows into a few bins with ``index_add_``: on CUDA, atomic
    adds in whatever order the threads arrive, so the float sums differ from run to run."""

    def __init__(self, rows=1 << 16, bins=8):
        super().__init__()
        self.rows, self.bins = rows, bins
        self.register_buffer("index", torch.arange(rows) % bins)
        self.proj = nn.Linear(8, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        h = self.proj(x)  # (B, 32)
        spread = h.repeat(self.rows // x.shape[0], 1) * torch.linspace(
            0.5, 1.5, self.rows, device=x.device
        ).unsqueeze(1)
        pooled = torch.zeros(self.bins, h.shape[1], device=x.device)
        pooled = pooled.index_add(0, self.index, spread)  # (bins, 32), many rows per bin
        # multiplied in, so the last bits of every sum reach the output
        return self.head(h * (pooled.mean(0) / (self.rows // self.bins)))
