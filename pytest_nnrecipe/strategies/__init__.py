"""Hypothesis strategies for the shapes, tensors and token batches that neural nets eat.

Test a model over many batch sizes, image sizes and sequence lengths instead of one
hand-picked shape (the recipe's "generalize a special case")::

    from hypothesis import given
    from pytest_nnrecipe import strategies as nst

    @given(x=nst.image_batches(channels=3, multiple_of=8, max_height=32, max_width=32))
    def test_the_net_keeps_samples_apart(x):
        assert_no_batch_mixing(net, x)

Every strategy takes keyword-only ``min_*``/``max_*`` bounds whose defaults follow each other,
checks them when it is called (bad bounds raise :class:`hypothesis.errors.InvalidArgument`
naming ``name=value``), and is a composition of Hypothesis' own strategies, so a failure
shrinks towards the smallest shape and the simplest values. Shapes respect ``max_elements``
by construction (each dimension is drawn within what the budget leaves), never by filtering.

Importing this module registers the settings profile ``"nnrecipe"`` (see
:data:`PROFILE`), which the pytest plugin loads unless told otherwise.
"""

from __future__ import annotations

from .._hypothesis_plugin import PROFILE, register_profile
from ._shapes import (
    DEFAULT_MAX_ELEMENTS,
    batch_shapes,
    image_shapes,
    sequence_shapes,
    tensor_shapes,
)
from ._tensors import DEFAULT_MAGNITUDE, image_batches, sequence_batches, tensors
from ._tokens import token_batches

__all__ = [
    "DEFAULT_MAGNITUDE",
    "DEFAULT_MAX_ELEMENTS",
    "PROFILE",
    "batch_shapes",
    "image_batches",
    "image_shapes",
    "sequence_batches",
    "sequence_shapes",
    "tensor_shapes",
    "tensors",
    "token_batches",
]

register_profile()
