"""Bind a public check to a test's device and seed: what the check fixtures return.

``bind(fn, device, seed)`` gives a function with ``fn``'s signature that moves what it is
handed to ``device`` and runs ``fn`` with the global generators seeded from ``seed`` and
restored afterwards:

- tensors (also inside tuples, lists and dicts) are moved copies;
- modules move in place and get their own tensors back afterwards (the very same storage, so
  nothing is copied back and nothing the check did on the device stays);
- a callable (``lambda x: net(x, mask=mask)``, a bound method, a ``functools.partial``, an
  object with ``__call__``) has the modules it reaches moved the same way (see
  :func:`pytest_nnrecipe._dependency.reach`), and the tensors it closes over or takes as
  defaults or partial arguments moved in a copy of it (the user's function is not changed).

What cannot be moved is named: a module whose tensors refuse to move fails at once; a tensor
the callable reads as a global or an attribute of an object stays where it is, and if the call
then fails on mixed devices, the error names it and says how to fix it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Mapping
from typing import Any

from . import _rng


def bind(fn: Callable[..., Any], device: Any, seed: int) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        import torch

        moves = Moves(torch.device(device))
        try:
            args = tuple(moves.value(a, f"argument {i}") for i, a in enumerate(args))
            kwargs = {k: moves.value(v, f"{k}=") for k, v in kwargs.items()}
            with _rng.preserved():
                _rng.seed_all(seed)
                try:
                    return fn(*args, **kwargs)
                except RuntimeError as e:
                    problem = moves.stranded_text(e)
                    if problem is None:
                        raise
                    raise ValueError(problem) from e
        finally:
            moves.undo()

    return bound


@dataclasses.dataclass
class _Home:
    """A module's own tensors before it moved, to put back afterwards."""

    module: Any
    #: (owning module, name, parameter, its data, its grad, the grad's data)
    params: list[tuple[Any, str, Any, Any, Any, Any]]
    #: (owning module, name, buffer)
    buffers: list[tuple[Any, str, Any]]


class Moves:
    """Moves values to ``device`` for one call, and puts the modules back in :meth:`undo`."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.homes: list[_Home] = []
        self.stranded: list[tuple[str, Any]] = []  # (where, tensor) left on another device
        self._done: dict[int, Any] = {}

    def value(self, value: Any, where: str) -> Any:
        """``value`` on the device: a moved copy of tensors and callables, modules in place."""
        import torch

        if isinstance(value, torch.Tensor):
            return value if value.device == self.device else value.to(self.device)
        if isinstance(value, torch.nn.Module):
            self.module(value, where)
            return value
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            moved = tuple(self.value(v, f"{where}[{i}]") for i, v in enumerate(value))
            return value if all(a is b for a, b in zip(moved, value, strict=True)) else moved
        if isinstance(value, list):
            moved_list = [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
            same = all(a is b for a, b in zip(moved_list, value, strict=True))
            return value if same else moved_list
        if isinstance(value, Mapping) and type(value) is dict:
            moved_dict = {k: self.value(v, f"{where}[{k!r}]") for k, v in value.items()}
            same = all(moved_dict[k] is v for k, v in value.items())
            return value if same else moved_dict
        if callable(value) and not isinstance(value, type):
            return self.callable(value, where)
        return value

    def module(self, module: Any, where: str) -> None:
        """Move ``module`` to the device in place, unless its tensors already live there (or
        on several devices: a model split across devices stays as the user placed it)."""
        if id(module) in self._done:
            return
        self._done[id(module)] = module
        devices = {t.device for t in (*module.parameters(), *module.buffers())}
        if len(devices) != 1 or devices == {self.device}:
            return
        home = _Home(
            module,
            [
                (owner, name, p, p.data, p.grad, None if p.grad is None else p.grad.data)
                for owner in module.modules()
                for name, p in owner._parameters.items()
                if p is not None
            ],
            [
                (owner, name, buf)
                for owner in module.modules()
                for name, buf in owner._buffers.items()
                if buf is not None
            ],
        )
        self.homes.append(home)
        try:
            module.to(self.device)
        except (RuntimeError, NotImplementedError) as e:
            raise ValueError(
                f"{where} is a {type(module).__name__} on {devices.pop()} that cannot move to "
                f"{self.device} (the test's nn_device): "
                f"{type(e).__name__}: {e}. Put it on {self.device} before the check, or call "
                "pytest_nnrecipe's plain function instead of the fixture."
            ) from e

    def callable(self, fn: Any, where: str) -> Any:
        """Move the modules ``fn`` reaches in place; return ``fn``, or a copy of it whose
        closure cells, defaults or partial arguments hold the moved tensors."""
        from . import _dependency

        reached = _dependency.reach(fn)
        for place, module in reached.modules:
            self.module(module, f"{where} ({place})")
        for place, tensor in reached.stranded:
            if tensor.device != self.device:
                self.stranded.append((f"{where}: {place}", tensor))
        return self._copy(fn, 0)

    def _copy(self, fn: Any, depth: int) -> Any:
        if id(fn) in self._done:
            return self._done[id(fn)]
        self._done[id(fn)] = fn  # cycles end here
        copied = fn
        if depth <= 4 and isinstance(fn, functools.partial):
            func = self._inner(fn.func, depth)
            args = tuple(self._inner(a, depth) for a in fn.args)
            keywords = {k: self._inner(v, depth) for k, v in fn.keywords.items()}
            if func is not fn.func or _changed(args, fn.args) or _changed(keywords, fn.keywords):
                copied = functools.partial(func, *args, **keywords)
        elif depth <= 4 and isinstance(fn, types.FunctionType):
            copied = self._copy_function(fn, depth)
        self._done[id(fn)] = copied
        return copied

    def _copy_function(self, fn: types.FunctionType, depth: int) -> Any:
        contents = []
        for cell in fn.__closure__ or ():
            try:
                contents.append(self._inner(cell.cell_contents, depth))
            except ValueError:  # an empty cell (a name assigned later)
                contents.append(_EMPTY)
        defaults = tuple(self._inner(d, depth) for d in fn.__defaults__ or ())
        kwdefaults = {k: self._inner(v, depth) for k, v in (fn.__kwdefaults__ or {}).items()}
        old = [_contents(c) for c in fn.__closure__ or ()]
        if (
            not _changed(contents, old)
            and not _changed(defaults, fn.__defaults__ or ())
            and not _changed(kwdefaults, fn.__kwdefaults__ or {})
        ):
            return fn
        cells = tuple(types.CellType() if c is _EMPTY else types.CellType(c) for c in contents)
        copy = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, defaults or None, cells or None
        )
        copy.__kwdefaults__ = kwdefaults or None
        copy.__dict__.update(fn.__dict__)
        copy.__qualname__ = fn.__qualname__
        copy.__module__ = fn.__module__
        copy.__doc__ = fn.__doc__
        return copy

    def _inner(self, value: Any, depth: int) -> Any:
        import torch

        if isinstance(value, torch.Tensor):
            return value if value.device == self.device else value.to(self.device)
        if isinstance(value, torch.nn.Module) or value is _EMPTY:
            return value  # modules moved in place by callable()
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            items = [self._inner(v, depth + 1) for v in value]
            return value if not _changed(items, value) else type(value)(items)
        if isinstance(value, Mapping) and type(value) is dict:
            moved = {k: self._inner(v, depth + 1) for k, v in value.items()}
            return value if not _changed(moved, value) else moved
        if callable(value) and not isinstance(value, type):
            return self._copy(value, depth + 1)
        return value

    def stranded_text(self, error: BaseException) -> str | None:
        """The fix for a call that failed on mixed devices because of a tensor left behind."""
        text = str(error)
        if not self.stranded or not any(m in text for m in _MIXED_DEVICES):
            return None
        listed = "; ".join(
            f"{where} (a tensor of shape {tuple(t.shape)} on {t.device})"
            for where, t in self.stranded[:3]
        )
        return (
            f"the check ran on {self.device} (the test's nn_device) and failed on mixed "
            f"devices ({str(error).splitlines()[0][:120]}). The fixture moves the modules a "
            f"callable reaches and the tensors it closes over, but cannot move {listed}. "
            f"Register it as a buffer of a module (module.register_buffer), close over it "
            f"(lambda x, mask=mask: ...), pass it in inputs=, or create it on nn_device."
        )

    def undo(self) -> None:
        """Every moved module gets its own tensors back (the same storage it had)."""
        for home in reversed(self.homes):
            # .to() either swaps a parameter's data or puts a new parameter in its place
            for owner, name, param, data, grad, grad_data in home.params:
                if grad is not None:
                    grad.data = grad_data
                param.data = data
                param.grad = grad
                owner._parameters[name] = param
            for owner, name, buf in home.buffers:
                owner._buffers[name] = buf
            for sub in home.module.modules():
                if hasattr(sub, "_init_flat_weights"):  # an RNN's list of its weights
                    sub._init_flat_weights()
        self.homes.clear()


_EMPTY = object()
#: How torch words an op that met tensors on different devices.
_MIXED_DEVICES = ("same device", "expected device", "two devices", "on different devices")


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY


def _changed(new: Any, old: Any) -> bool:
    if isinstance(new, dict):
        return any(new[k] is not v for k, v in old.items())
    return any(a is not b for a, b in zip(new, old, strict=True))


def to_device(value: Any, device: Any) -> Any:
    """``value`` with its tensors (also inside tuples, lists and dicts) moved to ``device``."""
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
