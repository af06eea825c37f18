"""Global random-number-generator state: derive seeds, seed everything, capture and restore.

Touches only the generators whose libraries are already imported (so a torch-free test run
never imports torch) and reads CUDA generators only once CUDA is initialised (so nothing here
starts CUDA).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
import zlib
from collections.abc import Iterator
from typing import Any

#: Seeds are kept below 2**32 so that NumPy's legacy ``np.random.seed`` accepts them.
SEED_MODULUS = 2**32


def derive_seed(base_seed: int, nodeid: str) -> int:
    """The seed of one test: a function of the base seed and the node id only.

    Independent of test order and of the xdist worker that runs the test.
    """
    return (base_seed + zlib.crc32(nodeid.encode("utf-8"))) % SEED_MODULUS


@dataclasses.dataclass(frozen=True)
class RngState:
    python: Any
    numpy: Any | None
    torch_cpu: Any | None
    torch_cuda: Any | None


def capture() -> RngState:
    """Snapshot every global generator that is in use."""
    np = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    torch_cpu = torch_cuda = None
    if torch is not None and hasattr(torch, "get_rng_state"):
        torch_cpu = torch.get_rng_state()
        if _cuda_initialized(torch):
            torch_cuda = torch.cuda.get_rng_state_all()
    return RngState(
        python=random.getstate(),
        numpy=np.random.get_state() if np is not None and hasattr(np, "random") else None,
        torch_cpu=torch_cpu,
        torch_cuda=torch_cuda,
    )


def restore(state: RngState) -> None:
    """Put every generator captured in ``state`` back as it was."""
    random.setstate(state.python)
    if state.numpy is not None:
        sys.modules["numpy"].random.set_state(state.numpy)
    torch = sys.modules.get("torch")
    if torch is not None:
        if state.torch_cpu is not None:
            torch.set_rng_state(state.torch_cpu)
        if state.torch_cuda is not None:
            torch.cuda.set_rng_state_all(state.torch_cuda)


def seed_all(seed: int) -> None:
    """Seed ``random``, NumPy and torch (CPU, and CUDA once initialised) with ``seed``."""
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None and hasattr(np, "random"):
        np.random.seed(seed % SEED_MODULUS)
    seed_torch(seed)


def seed_torch(seed: int) -> None:
    """Seed torch's CPU generator, and the CUDA ones if CUDA is already initialised."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "manual_seed"):
        return
    torch.manual_seed(seed)  # also seeds CUDA lazily, without initialising it


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Run the block and then restore every global generator, even if it raises."""
    state = capture()
    try:
        yield
    finally:
        restore(state)


def _cuda_initialized(torch: Any) -> bool:
    cuda = getattr(torch, "cuda", None)
    return bool(cuda is not None and cuda.is_initialized())
