"""Data checks at scale: time and peak memory of duplicate detection at 10k, 100k, 1M samples.

    python benchmarks/bench_data.py            # ~1 min on 2 cores
    python benchmarks/bench_data.py --quick    # 10k and 100k only

Samples are 16-float vectors, given as one tensor (read in bulk chunks) and as a map-style
``Dataset`` (read one ``__getitem__`` at a time, like files). Each check is timed in a plain
run, then run again under ``tracemalloc`` for its peak memory: tracemalloc sees every Python
and NumPy allocation the check makes (the hash table, digests, chunks), not the data, which
exists before tracing starts; it slows Python code down, hence the separate timed run. A
linear, streaming check shows ~10x time and ~10x memory per 10x samples, and a constant
number of bytes per sample (the ``fingerprint -> first index`` table, never the samples).
"""

from __future__ import annotations

import itertools
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch

from pytest_nnrecipe import assert_disjoint, assert_no_duplicates


class Rows(torch.utils.data.Dataset):
    """A dataset that hands out one row per ``__getitem__``."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """(seconds, peak MiB allocated by fn)."""
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20


def main() -> None:
    sizes = [10_000, 100_000] if "--quick" in sys.argv else [10_000, 100_000, 1_000_000]
    torch.set_num_threads(1)
    cases: dict[str, Callable[[torch.Tensor], Callable[[], Any]]] = {
        "no_duplicates, tensor": lambda x: lambda: assert_no_duplicates(x),
        "no_duplicates, Dataset": lambda x: lambda: assert_no_duplicates(Rows(x)),
        "disjoint 80/20, tensor": lambda x: (
            lambda: assert_disjoint(x[: len(x) * 4 // 5], x[len(x) * 4 // 5 :])
        ),
    }
    results: dict[tuple[str, int], tuple[float, float]] = {}
    print(
        f"{'check, data':<26} {'samples':>9} {'time s':>8} {'us/sample':>10} {'peak MiB':>9} {'B/sample':>9}"
    )
    for n in sizes:
        x = torch.randn(n, 16, generator=torch.Generator().manual_seed(n))
        for name, make in cases.items():
            seconds, peak = measure(make(x))
            results[name, n] = seconds, peak
            print(
                f"{name:<26} {n:>9,} {seconds:>8.2f} {seconds / n * 1e6:>10.2f} {peak:>9.1f} "
                f"{peak * 2**20 / n:>9.0f}"
            )
    print("\nscaling per 10x samples (linear = 10.0):")
    for name in cases:
        for a, b in itertools.pairwise(sizes):
            (ta, ma), (tb, mb) = results[name, a], results[name, b]
            print(
                f"  {name:<26} {a:>9,} -> {b:>9,}: time x{tb / ta:5.1f}, peak memory x{mb / ma:5.1f}"
            )


if __name__ == "__main__":
    main()
