"""Leave no trace: snapshot a model (and the global RNGs) and put everything back.

Every check runs its work inside :func:`untouched`. Whatever the check or the model does
(switch modes, freeze parameters, accumulate gradients, update BatchNorm statistics, raise
half-way), the model leaves with the parameter and buffer values, ``.training`` flags,
``requires_grad`` flags and ``.grad`` fields it came with, and the global generators
(torch CPU and CUDA, ``random``, NumPy) are as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import _rng


@contextlib.contextmanager
def untouched(*objects: Any) -> Iterator[None]:
    """Restore every ``torch.nn.Module`` among ``objects`` and the global RNG state on exit.

    Non-module objects (plain callables) are ignored: only their RNG use is undone.
    """
    import torch

    modules = [m for m in objects if isinstance(m, torch.nn.Module)]
    snapshots = [_snapshot(m) for m in modules]
    rng = _rng.capture()
    try:
        yield
    finally:
        for module, snap in zip(modules, snapshots, strict=True):
            _restore(module, snap)
        _rng.restore(rng)


def _snapshot(module: Any) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        params = [
            (p, p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.clone())
            for p in module.parameters()
        ]
        buffers = [(b, b.detach().clone()) for b in module.buffers()]
    training = [(m, m.training) for m in module.modules()]
    return {"params": params, "buffers": buffers, "training": training}


def _restore(module: Any, snap: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for p, value, requires_grad, grad in snap["params"]:
            if p.data.shape != value.shape or p.data.device != value.device:
                p.data = value
            else:
                p.data.copy_(value)
            p.requires_grad_(requires_grad)
            p.grad = grad
        for b, value in snap["buffers"]:
            if b.shape != value.shape or b.device != value.device:
                b.data = value
            else:
                b.copy_(value)
    for m, training in snap["training"]:
        m.training = training
