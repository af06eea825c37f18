"""Invariance and equivariance: the model's output under a transform of its inputs.

``assert_invariant(model, inputs, transform)``: ``f(T(x)) == f(x)``;
``assert_equivariant(model, inputs, transform, output_transform)``: ``f(T(x)) == S(f(x))``;
the common cases as conveniences: a permutation along ``dim`` (set models, per-token models),
the memory layout of the inputs (non-contiguous and ``channels_last`` copies), and more padding
(``assert_padding_invariant``: outputs at the real positions are the same with ``extra`` more
padded positions).

These compare values: a reordered sum or another kernel rounds differently, so "the same" means
"within the rounding error of this model at this precision", measured, never a per-dtype
table. Both inputs (before and after the transform, at their own shapes) run again with the
model and the float inputs in float64 (the model's floating parameters and buffers converted in
place, exactly restored afterwards); the largest difference between each run and its float64
rerun is the model's rounding error at this precision, and reruns of the same inputs measure
kernel noise. A transform the model truly respects moves the output by at most the two
rounding errors (the float64 outputs agree to ~1e-16), so a difference counts above
``NOISE_MULTIPLE`` x their sum. A model that cannot run in float64 gets its rounding error
from the change one ulp of its float inputs makes instead, and the message says so.

The modules: ``_checks`` (a transform, a permutation, the layout), ``_padding`` (more padding),
``_transforms`` (what the inputs become), ``_comparison`` (the measurement and the message).
"""

from __future__ import annotations

from ._checks import (
    assert_equivariant,
    assert_invariant,
    assert_layout_invariant,
    assert_permutation_equivariant,
    assert_permutation_invariant,
)
from ._padding import assert_padding_invariant

__all__ = [
    "assert_equivariant",
    "assert_invariant",
    "assert_layout_invariant",
    "assert_padding_invariant",
    "assert_permutation_equivariant",
    "assert_permutation_invariant",
]
