"""Failure messages in one shape: headline, evidence, location, cause, facts, reproduction.

```
assert_no_batch_mixing failed: output of sample 3 depends on input of sample 0.
  Mixing pairs: 12 of 240 (5.0%)
  Likely cause: a reshape/view across the batch dimension, or normalisation over the batch.
  Checked: method=grad, device=cpu, mode=eval, seed=2718281
  Reproduce: pytest "tests/test_model.py::test_batch" --nn-seed=0

<picture>
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import _context


def compose(
    check: str,
    headline: str,
    *,
    msg: str | None = None,
    evidence: Iterable[str] = (),
    cause: str | None = None,
    facts: Mapping[str, Any] | None = None,
    picture: str | None = None,
) -> str:
    """The full failure message of ``check``. ``msg`` replaces the headline, keeps the rest."""
    lines = [f"{check} failed: {msg if msg is not None else headline}"]
    if msg is not None:
        lines.append(f"  Finding: {headline}")
    lines.extend(f"  {line}" for line in evidence)
    if cause:
        lines.append(f"  Likely cause: {cause}")
    lines.extend(f"  {line}" for line in footer(facts))
    if picture:
        lines.append("")
        lines.append(picture)
    return "\n".join(lines)


def footer(facts: Mapping[str, Any] | None = None) -> list[str]:
    """The "Checked:" line (method, device, mode, seed, ...) and, under pytest, "Reproduce:"."""
    ctx = _context.current()
    merged: dict[str, Any] = dict(facts or {})
    if ctx is not None and ctx.seed is not None:
        merged.setdefault("seed", ctx.seed)
    out = []
    if merged:
        out.append("Checked: " + ", ".join(f"{k}={v}" for k, v in merged.items()))
    if ctx is not None and ctx.reproduce:
        out.append(f"Reproduce: {ctx.reproduce}")
    return out


def fail(check: str, headline: str, **kwargs: Any) -> AssertionError:
    """An ``AssertionError`` carrying :func:`compose`'s message (raise it)."""
    return AssertionError(compose(check, headline, **kwargs))


class PrecisionWarning(UserWarning):
    """A check passed, but at this precision it could not decide everything it covers: e.g. a
    structural check saw outputs that the changed inputs must not reach move, within the
    measured rerun noise (non-deterministic kernels). The warning states the noise floor,
    the threshold and the size of what moved."""
