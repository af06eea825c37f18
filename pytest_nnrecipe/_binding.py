"""Bind a public check to a test's device and seed: what the check fixtures return.

``bind(fn, device, seed)`` gives a function with ``fn``'s signature that moves every module
and tensor it is handed to ``device`` (modules go back to where they were afterwards), and
runs ``fn`` with the global generators seeded from ``seed`` and restored afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from . import _rng


def bind(fn: Callable[..., Any], device: Any, seed: int) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        import torch

        dev = torch.device(device)
        homes = []
        seen: set[int] = set()
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.nn.Module) and id(value) not in seen:
                seen.add(id(value))
                home = _home(value)
                if home is not None and home != dev:
                    homes.append((value, home))
        try:
            for module, _home_device in homes:
                module.to(dev)
            args = tuple(to_device(a, dev) for a in args)
            kwargs = {k: to_device(v, dev) for k, v in kwargs.items()}
            with _rng.preserved():
                _rng.seed_all(seed)
                return fn(*args, **kwargs)
        finally:
            for module, home_device in homes:
                module.to(home_device)

    return bound


def _home(module: Any) -> Any:
    """The one device a module lives on, or ``None`` (no tensors, or several devices)."""
    devices = {t.device for t in (*module.parameters(), *module.buffers())}
    return devices.pop() if len(devices) == 1 else None


def to_device(value: Any, device: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, Mapping) and type(value) is dict:
        return {k: to_device(v, device) for k, v in value.items()}
    return value
