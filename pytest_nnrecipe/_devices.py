"""Which device a test runs on: is CUDA usable, which GPU each pytest-xdist worker takes, and
how many CPU threads each worker gets.

The rules are pure functions over plain values (worker id, ``CUDA_VISIBLE_DEVICES``, device
count), so they are tested as tables on any machine. Only :func:`probe_cuda` asks torch, and
the plugin calls it only under ``--nn-gpu``. Standard library only at import time.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class CudaProbe:
    """What torch says about CUDA, read without initialising CUDA."""

    torch_version: str
    gpu_build: bool  # built with CUDA (or ROCm)
    cuda_version: str | None
    device_count: int


def probe_cuda() -> CudaProbe:
    """Ask torch for its build and device count (imports torch; does not initialise CUDA)."""
    import torch

    cuda = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    return CudaProbe(
        torch_version=torch.__version__,
        gpu_build=bool(cuda or hip),
        cuda_version=cuda or (f"ROCm {hip}" if hip else None),
        device_count=torch.cuda.device_count(),
    )


def why_unusable(probe: CudaProbe, visible: str | None) -> str | None:
    """Why ``--nn-gpu`` cannot run, with what to do; ``None`` when at least one device is usable.

    ``visible`` is the caller's ``CUDA_VISIBLE_DEVICES`` (``None`` when unset).
    """
    if probe.device_count > 0:
        return None
    if not probe.gpu_build:
        why = f"torch {probe.torch_version} has no CUDA support (a CPU-only build)"
    elif visible is not None:
        why = (
            f"no CUDA device visible: CUDA_VISIBLE_DEVICES={visible!r} "
            f"(torch {probe.torch_version}, CUDA {probe.cuda_version})"
        )
    else:
        why = (
            f"no CUDA device found (torch {probe.torch_version}, CUDA {probe.cuda_version}; "
            "is the NVIDIA driver loaded? try nvidia-smi)"
        )
    return (
        f"--nn-gpu: {why}.\n"
        "  Drop --nn-gpu to run on the CPU, install a CUDA build of torch "
        "(https://pytorch.org/get-started/locally/), or check CUDA_VISIBLE_DEVICES."
    )


def worker_number(worker_id: str | None) -> int | None:
    """``"gw3"`` -> 3; ``None`` for no worker id or the xdist controller (``"master"``)."""
    match = re.fullmatch(r"gw(\d+)", worker_id or "")
    return int(match.group(1)) if match else None


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one process runs its tests under ``--nn-gpu``.

    ``cuda_visible_devices``: the value to put in ``CUDA_VISIBLE_DEVICES`` before CUDA starts
    (``None``: leave it as it is); ``device``: what ``nn_device`` is in that process.
    """

    device: str
    cuda_visible_devices: str | None = None


def place(
    worker_id: str | None, visible: str | None, count: int, *, cuda_started: bool = False
) -> Placement:
    """The GPU rule: xdist worker ``gwN`` takes visible device ``N % count``.

    "Visible" respects the caller's ``CUDA_VISIBLE_DEVICES`` list (indices, UUIDs or MIG ids):
    the worker narrows it to its one entry, so its GPU is ``cuda:0`` and code that says just
    ``"cuda"`` lands on it too. If CUDA already started in that process, the variable no longer
    has any effect, so the worker names its device by index instead. Outside xdist: ``cuda:0``.
    """
    if count < 1:
        raise ValueError(f"count={count!r}: place() needs at least one visible CUDA device")
    number = worker_number(worker_id)
    if number is None:
        return Placement("cuda:0")
    index = number % count
    if cuda_started:
        return Placement(f"cuda:{index}")
    if visible is None:
        return Placement("cuda:0", str(index))
    entries = [entry.strip() for entry in visible.split(",")]
    if index >= len(entries) or not entries[index]:
        return Placement(f"cuda:{index}")
    return Placement("cuda:0", entries[index])


def threads_per_worker(cpu_count: int | None, workers: int) -> int:
    """Each xdist worker's share of the CPUs for torch's intra-op threads, at least 1."""
    return max(1, (cpu_count or 1) // max(1, workers))
