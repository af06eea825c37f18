"""What the structural checks cost, as ratios to one forward+backward of the same model.

    python benchmarks/bench_structural.py            # CUDA when available, else the CPU grid
    python benchmarks/bench_structural.py --device cpu --quick    # a few rows

Time ratio: the check's wall time (the shortest of a few runs, after a warm-up) divided by the time
of one ``model(x)`` + ``loss.backward()`` on the same batch (parameters requiring grad, as in
training); on CUDA both are synchronised. Memory ratio: the peak of tensor bytes allocated during
the call, for the check divided by the same for one forward+backward (parameters and inputs that
exist before the call are not counted). On the CPU it is counted with a ``TorchDispatchMode``
that follows every op's output storage until it is freed (allocators cache and RSS moves in
pages, too coarse for models this small); on CUDA it is ``torch.cuda.max_memory_allocated``
above what was allocated before the call.

Targets: batch mixing grows like log B and costs <= 5x at B = 16 on the CPU, <= 3x for the
d_model = 512 transformer on CUDA; the all-cuts causal check costs <= ((T - 1) / B + 2)x, and on
CUDA, where the gradient products of all cuts are packed into batched backwards as memory
allows, at most half of that; peak memory <= 3x. The last line sums it up.
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
    """2 layers, causal mask; token ids (vocab 100) or features in. d = 64 (4 heads, feed-forward
    128), or d = 512 (8 heads, feed-forward 2048)."""

    def __init__(self, tokens: bool, d: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, d) if tokens else None
        heads, ff = (4, 2 * d) if d <= 64 else (8, 4 * d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        t = h.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=h.device), 1)
        return self.head(self.encoder(h, mask=mask))


def forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(x).float().mean().backward()

    return run


#: Where the rows run (set by main): "cpu" or "cuda".
DEVICE = torch.device("cpu")
#: The clock (set by main): wall time, or this process's CPU time (``--clock cpu``: on a shared
#: machine other processes then add nothing; for one-thread CPU runs only).
CLOCK = time.perf_counter


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    synchronize()
    t0 = CLOCK()
    result = fn()
    synchronize()
    return CLOCK() - t0, result


def compare(
    base: Callable[[], Any], check: Callable[[], Any], budget: float
) -> tuple[float, float, Any]:
    """Shortest wall times of ``base`` and ``check``, run alternately after a warm-up so that
    both see the same machine (other processes only ever add time); a check slower than
    ``budget`` is timed once. Returns (base seconds, check seconds, the check's result)."""
    base()
    if DEVICE.type == "cuda":
        check()  # kernels, cuBLAS handles, the allocator's pool: not the check's cost
    t_check, result = timed(check)
    base_times, check_times = [timed(base)[0]], [t_check]
    if t_check > budget:
        return min(base_times), t_check, result
    check_times = []
    start = CLOCK()
    while len(check_times) < 7 and (len(check_times) < 3 or CLOCK() - start < budget):
        base_times.append(timed(base)[0])
        t_check, result = timed(check)
        check_times.append(t_check)
    return min(base_times), min(check_times), result


def peak(fn: Callable[[], Any]) -> int:
    if DEVICE.type == "cuda":
        synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        synchronize()
        return torch.cuda.max_memory_allocated() - before
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
    return torch.randn(b, t, 512 if model_name == "transformer-512" else 64)


#: Rows over their time or memory target, for the summary line.
OVER: list[str] = []
ROWS: list[str] = []
#: --only: a substring of the rows to run (e.g. "causal transformer float B=16").
ONLY: list[str | None] = [None]


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
    name = f"{check} {model_name} {kind} B={b} T={t if t else '-'}"
    if ONLY[0] is not None and ONLY[0] not in f"{name} method={method}":
        return
    torch.manual_seed(0)
    factories: dict[str, Callable[[], nn.Module]] = {
        "mlp": MLP,
        "cnn": CNN,
        "transformer": lambda: Transformer(kind == "token"),
        "transformer-512": lambda: Transformer(kind == "token", d=512),
        "temporal-cnn": TemporalCNN,
    }
    model = factories[model_name]().to(DEVICE)
    x = batch_of(kind, model_name, b, t or 16).to(DEVICE)
    train_step = forward_backward(model, x)

    def base() -> None:
        model.train()
        train_step()
        model.eval()

    if check == "mixing":

        def run() -> Any:
            return assert_no_batch_mixing(model, x, method=method)

        target = 3.0 if model_name == "transformer-512" else 5.0 if b == 16 else None
        detail = f"{sperner_codes(b).shape[1]} passes"
    else:
        steps = t or 16

        time_dim = -1 if model_name == "temporal-cnn" else 1

        def run() -> Any:
            return assert_causal(model, x, method=method, time_dim=time_dim)

        target = (steps - 1) / b + 2
        if DEVICE.type == "cuda":
            target /= 2  # the cuts' products packed into batched backwards
        detail = f"{steps - 1} cuts"
    fb, took, result = compare(base, run, budget)
    ratio = took / fb
    mem = ""
    ROWS.append(name)
    if memory:
        base_peak = peak(base)
        mem_ratio = peak(run) / max(base_peak, 1)
        mem = f"{mem_ratio:5.2f}x {'ok' if mem_ratio <= 3 else 'OVER'}"
        if mem_ratio > 3:
            OVER.append(f"{name} (memory {mem_ratio:.2f}x)")
    verdict = "" if target is None else ("ok" if ratio <= target else "OVER")
    if verdict == "OVER":
        OVER.append(f"{name} (time {ratio:.2f}x > {target:.1f}x)")
    target_text = "" if target is None else f"<= {target:.1f}x"
    print(
        f"{check:7} {model_name:15} {kind:5} B={b:<3} T={t if t else '-':<4} "
        f"{result.method[:8]:8} {detail:10} fwd+bwd {fb * 1e3:7.2f} ms  "
        f"check {took * 1e3:8.2f} ms  time {ratio:6.2f}x {target_text:9} {verdict:4}  mem {mem}",
        flush=True,
    )


def main(argv: list[str]) -> None:
    global CLOCK, DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rows only")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where the rows run (default: cuda when available)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine intra-op threads stall each other)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time (default), or this process's CPU time: steadier on a loaded machine "
        "(CPU rows with one thread only)",
    )
    parser.add_argument("--only", default=None, help="run only rows whose name contains this")
    args = parser.parse_args(argv)
    DEVICE = torch.device(args.device)
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu" and (DEVICE.type == "cuda" or args.threads != 1):
        parser.error("--clock cpu measures one-thread CPU runs only")
    ONLY[0] = args.only
    torch.set_num_threads(args.threads)
    gpu = DEVICE.type == "cuda"
    batches = [16] if args.quick else [4, 16, 64]
    steps = [16] if args.quick else [16, 64, 256]
    budget = 0.1 if args.quick else 0.3
    where = torch.cuda.get_device_name() if gpu else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}\n")
    warm = nn.Linear(4, 4).to(DEVICE)  # the first check of a process pays one-off set-up costs
    assert_no_batch_mixing(warm, torch.randn(3, 4, device=DEVICE))
    assert_causal(warm, torch.randn(2, 3, 4, device=DEVICE), method="perturb")
    print("assert_no_batch_mixing (all B(B-1) pairs):")
    for name, kind in [("mlp", "float"), ("cnn", "float"), ("transformer", "float"),
                       ("transformer", "token")]:  # fmt: skip
        for b in batches:
            row("mixing", name, kind, b, 16 if name == "transformer" else None, b == 16, budget)
    if gpu:
        for kind, b, t in [("float", 16, 256), ("float", 64, 128), ("token", 16, 256)]:
            row("mixing", "transformer-512", kind, b, t, True, budget)
    print("\nassert_causal (all T-1 cuts, all (t, t' > t) pairs):")
    for kind in ["float", "token"]:
        for t in steps:
            for b in batches:
                row("causal", "transformer", kind, b, t, gpu or (b == 16 and t <= 64), budget)
    for t in steps:
        for b in batches:
            row("causal", "temporal-cnn", "float", b, t, gpu or (b == 16 and t <= 64), budget)
    if gpu:
        for kind, b, t in [("float", 8, 1024), ("float", 16, 256), ("token", 8, 1024)]:
            row("causal", "transformer-512", kind, b, t, True, budget)
    print("\ntoken ids by gradient at the embedding output (method='grad'):")
    for t in steps:
        row("causal", "transformer", "token", 16, t, gpu or t <= 64, budget, method="grad")
    summary = f"bench_structural ({DEVICE.type}): {len(ROWS)} rows, {len(OVER)} over target"
    print(f"\n{summary}" + (": " + "; ".join(OVER) if OVER else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
