"""What the padding and invariance checks cost, as ratios to one forward+backward.

    python benchmarks/bench_invariance.py            # CUDA when available, else the CPU
    python benchmarks/bench_invariance.py --device cpu

Time ratio: the check's wall time (the shortest of a few runs, after a warm-up) divided by the
time of one ``model(x)`` + ``loss.backward()`` on the same batch (parameters requiring grad,
as in training); on CUDA both are synchronised.

What to expect: ``assert_padding_ignored`` on a passing model costs one forward and one
backward (gradient) or three forwards (perturbation: two reruns and one perturbed run);
the value comparisons (``assert_*invariant``, ``assert_equivariant``) cost six forwards (two
reruns of each input, each input again in float64), ``assert_layout_invariant`` twice that
for 4-D inputs (two layouts).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pytest_nnrecipe import (
    assert_layout_invariant,
    assert_padding_ignored,
    assert_padding_invariant,
    assert_permutation_invariant,
)


class Encoder(nn.Module):
    """Embedding, a 2-layer transformer encoder with the padding mask, masked mean pooling."""

    def __init__(self, d: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        m = attention_mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))


class DeepSets(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 128))
        self.rho = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rho(self.phi(x).sum(1))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def forward_backward(model: nn.Module, inputs: Any) -> Callable[[], None]:
    def run() -> None:
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)

    return run


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(parser.parse_args(argv).device)
    torch.manual_seed(0)
    b, t = 16, 64
    pos = torch.arange(t)
    lengths = torch.randint(t // 4, t + 1, (b, 1))
    mask = (pos < lengths).long().to(device)
    tokens = {
        "input_ids": torch.randint(1, 100, (b, t), device=device) * mask,
        "attention_mask": mask,
    }
    encoder = Encoder().to(device)
    sets, points = DeepSets().to(device), torch.randn(b, 32, 16, device=device)
    net, images = cnn().to(device), torch.randn(b, 3, 32, 32, device=device)
    rows = [
        ("assert_padding_ignored (grad)", encoder, tokens,
         lambda: assert_padding_ignored(encoder, tokens, method="grad")),
        ("assert_padding_ignored (perturb)", encoder, tokens,
         lambda: assert_padding_ignored(encoder, tokens, method="perturb")),
        ("assert_padding_invariant", encoder, tokens,
         lambda: assert_padding_invariant(encoder, tokens, extra=8)),
        ("assert_permutation_invariant", sets, points,
         lambda: assert_permutation_invariant(sets, points, dim=1)),
        ("assert_layout_invariant", net, images, lambda: assert_layout_invariant(net, images)),
    ]  # fmt: skip
    print(f"device={device}, B={b}, T={t} (transformer d=64, 2 layers), torch {torch.__version__}")
    print(f"{'check':<36} {'check s':>9} {'fwd+bwd s':>10} {'ratio':>7}")
    for name, model, inputs, check in rows:
        base = timed(forward_backward(model, inputs))
        cost = timed(check)
        print(f"{name:<36} {cost:>9.4f} {base:>10.4f} {cost / base:>6.1f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
