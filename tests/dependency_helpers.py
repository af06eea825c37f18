"""Helpers shared by the structural-check tests: the expected dependency matrix of a model
wired with known pairs, and the message of a check that must fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def expected(size: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Each output depends on its own input (the diagonal) and on the wired (row, col) pairs."""
    m = np.eye(size, dtype=bool)
    for row, col in pairs:
        m[row, col] = True
    return m


def caught(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The AssertionError message of ``fn(*args, **kwargs)``, which must fail."""
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)
