"""The shape strategies: every drawn shape keeps its bounds, and failures shrink to the
smallest shape."""

from __future__ import annotations

import math

import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from pytest_nnrecipe import strategies as nst


@given(st.data())
def test_tensor_shapes_keep_their_bounds(data):
    min_dims = data.draw(st.integers(0, 3), label="min_dims")
    max_dims = data.draw(st.integers(min_dims, 5), label="max_dims")
    min_side = data.draw(st.integers(0, 4), label="min_side")
    max_side = data.draw(st.integers(min_side, 12), label="max_side")
    max_elements = data.draw(st.integers(max(min_side, 1) ** min_dims, 2000), label="cap")
    shape = data.draw(
        nst.tensor_shapes(
            min_dims=min_dims,
            max_dims=max_dims,
            min_side=min_side,
            max_side=max_side,
            max_elements=max_elements,
        )
    )
    assert min_dims <= len(shape) <= max_dims
    assert all(min_side <= n <= max_side for n in shape)
    assert math.prod(shape) <= max_elements


@given(nst.tensor_shapes())
def test_tensor_shapes_default_to_one_to_three_dims_of_one_to_eight(shape):
    assert 1 <= len(shape) <= 3
    assert all(1 <= n <= 8 for n in shape)


@given(nst.batch_shapes())
def test_batch_shapes_have_at_least_two_samples_by_default(shape):
    assert 2 <= shape[0] <= 8
    assert 1 <= len(shape) - 1 <= 3
    assert math.prod(shape) <= nst.DEFAULT_MAX_ELEMENTS


@given(nst.batch_shapes(min_batch=3, max_batch=5, sample_shape=(10,)))
def test_batch_shapes_keep_a_fixed_sample_shape(shape):
    assert shape[1:] == (10,)
    assert 3 <= shape[0] <= 5


@given(nst.batch_shapes(sample_shape=(7, 9), max_elements=200))
def test_batch_shapes_fit_the_element_cap_with_a_fixed_sample(shape):
    assert shape[1:] == (7, 9)
    assert 2 <= shape[0] <= 3  # 3 * 63 = 189 <= 200 < 4 * 63


@given(nst.image_shapes(channels=3, multiple_of=8, max_height=64, max_width=32))
def test_image_shapes_keep_channels_and_divisibility(shape):
    batch, channels, height, width = shape
    assert channels == 3
    assert height % 8 == 0 and 8 <= height <= 64
    assert width % 8 == 0 and 8 <= width <= 32
    assert batch >= 2
    assert math.prod(shape) <= nst.DEFAULT_MAX_ELEMENTS


@given(
    nst.image_shapes(min_channels=2, max_channels=5, min_height=3, max_height=9, channels_last=True)
)
def test_image_shapes_draw_channels_and_put_them_last_when_asked(shape):
    batch, height, width, channels = shape
    assert batch >= 2
    assert 2 <= channels <= 5
    assert 3 <= height <= 9
    assert 1 <= width <= 8


@given(nst.sequence_shapes(features=16, min_length=4, max_length=12, max_batch=4))
def test_sequence_shapes_are_batch_time_features(shape):
    batch, length, features = shape
    assert 2 <= batch <= 4
    assert 4 <= length <= 12
    assert features == 16


@given(nst.sequence_shapes(max_length=64, max_features=64, max_elements=300))
def test_sequence_shapes_respect_the_element_cap(shape):
    assert math.prod(shape) <= 300


@pytest.mark.parametrize(
    "strategy, smallest",
    [
        pytest.param(nst.tensor_shapes(), (1,), id="tensor_shapes"),
        pytest.param(nst.batch_shapes(), (2, 1), id="batch_shapes"),
        pytest.param(nst.batch_shapes(sample_shape=(10,)), (2, 10), id="batch_shapes-fixed"),
        pytest.param(nst.image_shapes(channels=3, multiple_of=8), (2, 3, 8, 8), id="image_shapes"),
        pytest.param(nst.sequence_shapes(features=4), (2, 1, 4), id="sequence_shapes"),
    ],
)
def test_shapes_shrink_to_the_smallest_one(strategy, smallest):
    assert find(strategy, lambda shape: True) == smallest


def test_a_failure_that_needs_an_odd_length_shrinks_to_length_one():
    found = find(nst.sequence_shapes(features=4), lambda s: s[1] % 2 == 1)
    assert found == (2, 1, 4)


def test_a_failure_that_needs_batch_equal_to_channels_shrinks_to_the_smallest_such_shape():
    found = find(nst.image_shapes(), lambda s: s[0] == s[1])
    assert found == (2, 2, 1, 1)


def test_a_failure_that_needs_a_large_image_shrinks_to_the_boundary():
    found = find(nst.image_shapes(channels=1, multiple_of=4), lambda s: s[2] * s[3] >= 64)
    assert found in {(2, 1, 4, 16), (2, 1, 8, 8), (2, 1, 16, 4)}
