"""Global random-number-generator state: derive seeds, seed everything, capture and restore.

The generators: ``random``, NumPy's legacy global one, torch's CPU and CUDA ones, and
Hypothesis' global ``Random`` (which draws the seed of a ``@given`` function that runs
without ``@seed``, e.g. one defined and called inside a test).

Touches only the generators whose libraries are already imported (so a torch-free test run
never imports torch) and reads CUDA generators only once CUDA is initialised (so nothing here
starts CUDA). :func:`seeded` also seeds a library imported while it is active, the moment its
import finishes (an :class:`~pytest_nnrecipe._import_hook.ImportWatch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
import zlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from . import _import_hook

#: Seeds are kept below 2**32 so that NumPy's legacy ``np.random.seed`` accepts them.
SEED_MODULUS = 2**32


def derive_seed(base_seed: int, nodeid: str) -> int:
    """The seed of one test: a function of the base seed and the node id only.

    Independent of test order and of the xdist worker that runs the test.
    """
    return (base_seed + zlib.crc32(nodeid.encode("utf-8"))) % SEED_MODULUS


class _NotImported:
    def __repr__(self) -> str:
        return "NOT_IMPORTED"


#: ``RngState.hypothesis`` when Hypothesis is not imported (its global ``Random`` may be None).
NOT_IMPORTED: Any = _NotImported()


@dataclasses.dataclass(frozen=True)
class RngState:
    python: Any
    numpy: Any | None
    torch_cpu: Any | None
    torch_cuda: Any | None
    hypothesis: Any = NOT_IMPORTED  # the global Random object itself: seeding replaces it


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
        hypothesis=_hypothesis_random(),
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
    if state.hypothesis is not NOT_IMPORTED:
        _set_hypothesis_random(state.hypothesis)


def seed_all(seed: int) -> None:
    """Seed ``random``, NumPy, torch (CPU, and CUDA once initialised) and Hypothesis' global
    ``Random`` with ``seed``."""
    random.seed(seed)
    seed_numpy(seed)
    seed_torch(seed)
    seed_hypothesis(seed)


def seed_numpy(seed: int) -> None:
    """Seed NumPy's legacy global generator (``np.random.seed``), if NumPy is imported."""
    np = sys.modules.get("numpy")
    if np is not None and hasattr(np, "random"):
        np.random.seed(seed % SEED_MODULUS)


def seed_torch(seed: int) -> None:
    """Seed torch's CPU generator, and the CUDA ones if CUDA is already initialised."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "manual_seed"):
        return
    torch.manual_seed(seed)  # also seeds CUDA lazily, without initialising it


def seed_hypothesis(seed: int) -> None:
    """Give Hypothesis a global ``Random(seed)``, if it is imported: a ``@given`` function
    without ``@seed`` (one pytest does not collect) draws its seed from it."""
    if _hypothesis_random() is not NOT_IMPORTED:
        _set_hypothesis_random(random.Random(seed))


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Run the block and then restore every global generator, even if it raises."""
    state = capture()
    try:
        yield
    finally:
        restore(state)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with every generator seeded from ``seed``, then restore them all.

    A library first imported inside the block (torch, NumPy, Hypothesis: a test that imports
    torch in its body) is seeded the moment its import finishes, and put back afterwards to
    the state it had on import, as :func:`preserved` does for the others.
    """
    arrivals = _Arrivals(seed)
    watch = _import_hook.ImportWatch(_ON_IMPORT, arrivals)
    state = capture()
    watch.install()
    try:
        seed_all(seed)
        yield
    finally:
        watch.remove()
        restore(dataclasses.replace(state, **arrivals.states) if arrivals.states else state)


class _Arrivals:
    """Seeds a library the moment it is first imported; keeps its generator's state on import."""

    __slots__ = ("seed", "states")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.states: dict[str, Any] = {}  # RngState field -> the state on import

    def __call__(self, name: str, module: ModuleType) -> None:
        field, seed_it = _ON_IMPORT[name]
        self.states[field] = getattr(capture(), field)
        seed_it(self.seed)


#: The libraries :func:`seeded` seeds on import: their ``RngState`` field and seeder.
_ON_IMPORT: dict[str, tuple[str, Callable[[int], None]]] = {
    "numpy": ("numpy", seed_numpy),
    "torch": ("torch_cpu", seed_torch),
    "hypothesis": ("hypothesis", seed_hypothesis),
}


def _hypothesis_random() -> Any:
    """Hypothesis' global ``Random`` (thread-local since 6.10x, a module global before), None
    until Hypothesis first needs it, or :data:`NOT_IMPORTED`."""
    core = sys.modules.get("hypothesis.core")
    if core is None:
        return NOT_IMPORTED
    local = getattr(core, "threadlocal", None)
    try:
        return local._hypothesis_global_random  # type: ignore[union-attr]
    except AttributeError:
        return getattr(core, "_hypothesis_global_random", NOT_IMPORTED)


def _set_hypothesis_random(value: random.Random | None) -> None:
    core = sys.modules["hypothesis.core"]
    local = getattr(core, "threadlocal", None)
    try:
        local._hypothesis_global_random = value  # type: ignore[union-attr]
    except AttributeError:
        core._hypothesis_global_random = value  # type: ignore[attr-defined]


def _cuda_initialized(torch: Any) -> bool:
    cuda = getattr(torch, "cuda", None)
    return bool(cuda is not None and cuda.is_initialized())
