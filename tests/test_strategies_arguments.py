"""Bad arguments fail when the strategy is made, as InvalidArgument naming ``name=value``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from pytest_nnrecipe import strategies as nst

BAD = [
    ("min_dims=-1", lambda: nst.tensor_shapes(min_dims=-1), r"min_dims=-1 must be at least 0"),
    (
        "max_dims<min_dims",
        lambda: nst.tensor_shapes(min_dims=3, max_dims=2),
        r"max_dims=2 < min_dims=3",
    ),
    (
        "max_side<min_side",
        lambda: nst.tensor_shapes(min_side=4, max_side=3),
        r"max_side=3 < min_side=4",
    ),
    ("min_side-float", lambda: nst.tensor_shapes(min_side=1.5), r"min_side=1.5"),
    ("min_side-bool", lambda: nst.tensor_shapes(min_side=True), r"min_side=True"),
    (
        "max_elements=0",
        lambda: nst.tensor_shapes(max_elements=0),
        r"max_elements=0 must be at least 1",
    ),
    (
        "max_elements<smallest",
        lambda: nst.tensor_shapes(min_dims=3, min_side=5, max_elements=100),
        r"\(5, 5, 5\), has 125 elements, more than max_elements=100",
    ),
    ("min_batch=0", lambda: nst.batch_shapes(min_batch=0), r"min_batch=0 must be at least 1"),
    (
        "max_batch<min_batch",
        lambda: nst.batch_shapes(min_batch=4, max_batch=3),
        r"max_batch=3 < min_batch=4",
    ),
    (
        "sample_shape+min_dims",
        lambda: nst.batch_shapes(sample_shape=(3,), min_dims=2),
        r"sample_shape=\(3,\) fixes .* drop min_dims=2",
    ),
    (
        "sample_shape-negative",
        lambda: nst.batch_shapes(sample_shape=(3, -1)),
        r"sample_shape\[1\]=-1 must be at least 0",
    ),
    ("sample_shape-str", lambda: nst.batch_shapes(sample_shape="3"), r"sample_shape='3'"),
    (
        "channels+min_channels",
        lambda: nst.image_shapes(channels=3, min_channels=1),
        r"either channels=3 .* min_channels=1",
    ),
    ("channels=0", lambda: nst.image_shapes(channels=0), r"channels=0 must be at least 1"),
    ("multiple_of=0", lambda: nst.image_shapes(multiple_of=0), r"multiple_of=0 must be at least 1"),
    (
        "no-multiple-in-range",
        lambda: nst.image_shapes(multiple_of=8, min_height=9, max_height=15),
        r"multiple_of=8 .* min_height=9 and max_height=15",
    ),
    (
        "max_width<min_width",
        lambda: nst.image_shapes(min_width=5, max_width=4),
        r"max_width=4 < min_width=5",
    ),
    (
        "image-too-big",
        lambda: nst.image_shapes(channels=3, min_height=32, min_width=32),
        r"more than max_elements=4096",
    ),
    ("channels_last-str", lambda: nst.image_shapes(channels_last="yes"), r"channels_last='yes'"),
    (
        "features+max_features",
        lambda: nst.sequence_shapes(features=4, max_features=8),
        r"either features=4 .* max_features=8",
    ),
    (
        "max_length<min_length",
        lambda: nst.sequence_shapes(min_length=5, max_length=2),
        r"max_length=2 < min_length=5",
    ),
    (
        "dtype-complex",
        lambda: nst.tensors((2,), dtype=torch.complex64),
        r"Unsupported dtype=torch.complex64",
    ),
    ("dtype-str", lambda: nst.tensors((2,), dtype="float32"), r"Unsupported dtype='float32'"),
    ("shape-float", lambda: nst.tensors((2.0,)), r"shape\[0\]=2.0"),
    ("shape-none", lambda: nst.tensors(None), r"shape=None"),
    (
        "max_value<min_value",
        lambda: nst.tensors((2,), min_value=1, max_value=0),
        r"max_value=0 < min_value=1",
    ),
    ("min_value-nan", lambda: nst.tensors((2,), min_value=float("nan")), r"min_value=nan"),
    (
        "fp16-out-of-range",
        lambda: nst.tensors((2,), dtype=torch.float16, max_value=1e6),
        r"max_value=1000000.0 is outside .*float16",
    ),
    (
        "int8-out-of-range",
        lambda: nst.tensors((2,), dtype=torch.int8, min_value=-200),
        r"min_value=-200 is outside .*int8",
    ),
    (
        "int-with-nan",
        lambda: nst.tensors((2,), dtype=torch.int64, allow_nan=True),
        r"allow_nan=True needs a floating dtype",
    ),
    (
        "no-int-in-range",
        lambda: nst.tensors((2,), dtype=torch.int64, min_value=0.2, max_value=0.8),
        r"No integer .* min_value=0.2 and max_value=0.8",
    ),
    (
        "bool-with-bounds",
        lambda: nst.tensors((2,), dtype=torch.bool, min_value=0),
        r"dtype=torch.bool takes no bounds .* min_value=0",
    ),
    ("flag-not-bool", lambda: nst.tensors((2,), allow_nan=1), r"allow_nan=1"),
    ("device-int", lambda: nst.tensors((2,), device=0), r"device=0"),
    ("vocab_size=0", lambda: nst.token_batches(vocab_size=0), r"vocab_size=0 must be at least 1"),
    (
        "pad_id>=vocab",
        lambda: nst.token_batches(vocab_size=5, pad_id=5),
        r"pad_id=5 must be a token id below vocab_size=5",
    ),
    (
        "pad_id-negative",
        lambda: nst.token_batches(vocab_size=5, pad_id=-1),
        r"pad_id=-1 must be at least 0",
    ),
    (
        "vocab-only-pad",
        lambda: nst.token_batches(vocab_size=1, pad_id=0),
        r"vocab_size=1 leaves no token besides pad_id=0",
    ),
    (
        "padding_side",
        lambda: nst.token_batches(vocab_size=5, padding_side="middle"),
        r"padding_side='middle'",
    ),
    (
        "token-dtype",
        lambda: nst.token_batches(vocab_size=5, dtype=torch.float32),
        r"dtype=torch.float32",
    ),
    (
        "tokens-too-many",
        lambda: nst.token_batches(vocab_size=5, min_batch=4, min_length=100, max_elements=300),
        r"\(4, 100\), has 400 elements, more than max_elements=300",
    ),
]


@pytest.mark.parametrize("make, message", [pytest.param(m, msg, id=i) for i, m, msg in BAD])
def test_bad_arguments_raise_invalid_argument_when_the_strategy_is_made(make, message):
    with pytest.raises(InvalidArgument, match=message):
        make()


@given(nst.tensors(st.just((2, 3)), min_value=-1.0, max_value=1.0))
def test_a_shape_strategy_is_accepted_where_a_shape_is(x: torch.Tensor) -> None:
    assert x.shape == (2, 3) and x.dtype == torch.float32
    assert bool(((x >= -1.0) & (x <= 1.0)).all())
