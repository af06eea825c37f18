"""What the structural checks cost, as ratios to one forward+backward of the same model.

    python benchmarks/bench_structural.py            # full grid, < 3 min on 2 CPU cores
    python benchmarks/bench_structural.py --quick    # a few rows

Time ratio: the check's wall time (the shortest of a few runs, after a warm-up) divided by the time
of one ``model(x)`` + ``loss.backward()`` on the same batch (parameters requiring grad, as in
training). Memory ratio: the peak of live tensor bytes created during the call (counted with a
``TorchDispatchMode`` that follows every op's output storage until it is freed; parameters and
inputs that exist before the call are not counted) for the check, divided by the same for one
forward+backward. CPU allocators cache and RSS moves in pages, so RSS deltas are too coarse for
models this small; counting tensor storages is exact for what torch allocates.

Targets (issue 3): batch mixing grows like log B and costs <= 5x at B = 16; the all-cuts causal
check costs <= ((T - 1) / B + 2)x; peak memory <= 3x.
"""

from __future__ import annotations

import argparse
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing
from pytest_nnrecipe._dependency import sperner_codes


class PeakMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created by ops inside the block and still alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            del self.live[key]
            self.current -= entry[1]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0:
                continue
            if key in self.live:
                self.live[key][0] += 1
            else:
                self.live[key] = [1, storage.nbytes()]
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(32, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalCNN(nn.Module):
    """A causal temporal conv net over (B, 32, T): 3 dilated convs, left padding."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(32, 32, 3, dilation=d) for d in (1, 2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(nn.functional.pad(x, (2 * conv.dilation[0], 0))))
        return x


class Transformer(nn.Module):
    """2 layers, d = 64, 4 heads, causal mask; token ids (vocab 100) or features in."""

    def __init__(self, tokens: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 64) if tokens else None
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        t = h.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        return self.head(self.encoder(h, mask=mask))


def forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x).float().mean().backward()

    return run


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def compare(
    base: Callable[[], Any], check: Callable[[], Any], budget: float
) -> tuple[float, float, Any]:
    """Shortest wall times of ``base`` and ``check``, run alternately after a warm-up so that
    both see the same machine (other processes only ever add time); a check slower than
    ``budget`` is timed once. Returns (base seconds, check seconds, the check's result)."""
    base()
    t_check, result = timed(check)
    base_times, check_times = [timed(base)[0]], [t_check]
    if t_check > budget:
        return min(base_times), t_check, result
    check_times = []
    start = time.perf_counter()
    while len(check_times) < 7 and (len(check_times) < 3 or time.perf_counter() - start < budget):
        base_times.append(timed(base)[0])
        t_check, result = timed(check)
        check_times.append(t_check)
    return min(base_times), min(check_times), result


def peak(fn: Callable[[], Any]) -> int:
    with PeakMemory() as pm:
        fn()
    return pm.peak


def batch_of(kind: str, model_name: str, b: int, t: int) -> torch.Tensor:
    if kind == "token":
        return torch.randint(0, 100, (b, t))
    if model_name == "mlp":
        return torch.randn(b, 64)
    if model_name == "cnn":
        return torch.randn(b, 3, 32, 32)
    if model_name == "temporal-cnn":
        return torch.randn(b, 32, t)
    return torch.randn(b, t, 64)


def row(
    check: str,
    model_name: str,
    kind: str,
    b: int,
    t: int | None,
    memory: bool,
    budget: float,
    method: str = "auto",
) -> None:
    torch.manual_seed(0)
    factories: dict[str, Callable[[], nn.Module]] = {
        "mlp": MLP,
        "cnn": CNN,
        "transformer": lambda: Transformer(kind == "token"),
        "temporal-cnn": TemporalCNN,
    }
    model = factories[model_name]()
    x = batch_of(kind, model_name, b, t or 16)
    train_step = forward_backward(model, x)

    def base() -> None:
        model.train()
        train_step()
        model.eval()

    if check == "mixing":

        def run() -> Any:
            return assert_no_batch_mixing(model, x, method=method)

        target = 5.0 if b == 16 else None
        detail = f"{sperner_codes(b).shape[1]} passes"
    else:
        steps = t or 16

        time_dim = -1 if model_name == "temporal-cnn" else 1

        def run() -> Any:
            return assert_causal(model, x, method=method, time_dim=time_dim)

        target = (steps - 1) / b + 2
        detail = f"{steps - 1} cuts"
    fb, took, result = compare(base, run, budget)
    ratio = took / fb
    mem = ""
    if memory:
        base_peak = peak(base)
        mem_ratio = peak(run) / max(base_peak, 1)
        mem = f"{mem_ratio:5.2f}x {'ok' if mem_ratio <= 3 else 'OVER'}"
    verdict = "" if target is None else ("ok" if ratio <= target else "OVER")
    target_text = "" if target is None else f"<= {target:.1f}x"
    print(
        f"{check:7} {model_name:11} {kind:5} B={b:<3} T={t if t else '-':<4} {result.method:8} "
        f"{detail:10} fwd+bwd {fb * 1e3:7.2f} ms  check {took * 1e3:8.2f} ms  "
        f"time {ratio:6.2f}x {target_text:9} {verdict:4}  mem {mem}",
        flush=True,
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rows only")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine intra-op threads stall each other)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = [16] if args.quick else [4, 16, 64]
    steps = [16] if args.quick else [16, 64, 256]
    budget = 0.1 if args.quick else 0.3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
    warm = nn.Linear(4, 4)  # the first check of a process pays one-off set-up costs
    assert_no_batch_mixing(warm, torch.randn(3, 4))
    assert_causal(warm, torch.randn(2, 3, 4), method="perturb")
    print("assert_no_batch_mixing (all B(B-1) pairs):")
    for name, kind in [("mlp", "float"), ("cnn", "float"), ("transformer", "float"),
                       ("transformer", "token")]:  # fmt: skip
        for b in batches:
            row("mixing", name, kind, b, 16 if name == "transformer" else None, b == 16, budget)
    print("\nassert_causal (all T-1 cuts, all (t, t' > t) pairs):")
    for kind in ["float", "token"]:
        for t in steps:
            for b in batches:
                row("causal", "transformer", kind, b, t, b == 16 and t <= 64, budget)
    for t in steps:
        for b in batches:
            row("causal", "temporal-cnn", "float", b, t, b == 16 and t <= 64, budget)
    print("\ntoken ids by gradient at the embedding output (method='grad'):")
    for t in steps:
        row("causal", "transformer", "token", 16, t, t <= 64, budget, method="grad")


if __name__ == "__main__":
    main(sys.argv[1:])
