"""tensors, image_batches, sequence_batches and token_batches: dtype, device, bounds and
special values, token ids and masks; failures shrink to small, simple tensors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from pytest_nnrecipe import _context
from pytest_nnrecipe import strategies as nst

FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
INTS = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


@pytest.mark.parametrize("dtype", FLOATS + INTS, ids=str)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # nn_device: one value
@given(data=st.data())
def test_tensors_have_the_shape_dtype_and_bounds_asked_for(dtype, data, nn_device):
    shape = data.draw(nst.batch_shapes(max_elements=64), label="shape")
    lo = data.draw(st.integers(0, 5), label="min_value")
    hi = data.draw(st.integers(lo, 100), label="max_value")
    x = data.draw(nst.tensors(shape, dtype=dtype, min_value=lo, max_value=hi), label="x")
    assert x.shape == shape and x.dtype == dtype and x.device == nn_device  # the test's device
    assert bool(torch.isfinite(x.double()).all())
    assert lo <= x.double().min() and x.double().max() <= hi


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@given(data=st.data())
def test_default_float_tensors_are_finite_normal_and_within_ten(dtype, data):
    x = data.draw(nst.tensors(nst.tensor_shapes(max_elements=32), dtype=dtype))
    values = x.double()
    assert bool(torch.isfinite(values).all())
    assert values.abs().max() <= 10
    tiny = torch.finfo(dtype).smallest_normal
    assert not bool(((values != 0) & (values.abs() < tiny)).any())


@given(nst.tensors((5,), dtype=torch.bool))
def test_bool_tensors_hold_booleans(x):
    assert x.dtype == torch.bool and x.shape == (5,)


def test_a_default_bound_moves_so_the_range_is_not_empty():
    x = find(nst.tensors((3,), min_value=50), lambda t: True)
    assert x.tolist() == [50.0, 50.0, 50.0]
    y = find(nst.tensors((3,), max_value=-50), lambda t: True)
    assert y.tolist() == [-50.0, -50.0, -50.0]


@pytest.mark.parametrize(
    "flag, dtype, looks_for",
    [
        ("allow_nan", torch.float32, lambda t: bool(t.isnan().any())),
        ("allow_infinity", torch.bfloat16, lambda t: bool(t.isinf().any())),
        ("allow_huge", torch.float16, lambda t: bool((t.abs() == 65504).any())),
        ("allow_huge", torch.int8, lambda t: bool((t == 127).any())),
        (
            "allow_subnormal",
            torch.float32,
            lambda t: bool(((t != 0) & (t.abs() < torch.finfo(t.dtype).smallest_normal)).any()),
        ),
        ("allow_zero", torch.float64, lambda t: bool((t == 0).any())),
    ],
    ids=lambda v: (
        v
        if isinstance(v, str)
        else str(v).replace("torch.", "")
        if isinstance(v, torch.dtype)
        else ""
    ),
)
def test_special_values_appear_when_asked_even_outside_the_bounds(flag, dtype, looks_for):
    x = find(nst.tensors((4,), dtype=dtype, min_value=1, max_value=2, **{flag: True}), looks_for)
    assert looks_for(x)


def test_tensors_shrink_to_a_small_shape_of_simple_values():
    x = find(nst.tensors(nst.batch_shapes()), lambda t: bool((t > 1).any()))
    assert x.shape == (2, 1)
    assert sorted(x.flatten().tolist())[-1] == 2.0  # the simplest float above 1
    y = find(nst.tensors(nst.tensor_shapes()), lambda t: t.numel() >= 6)
    assert y.numel() == 6 and bool((y == 0).all())  # (6,) or (2, 3): no element to spare


def test_the_device_defaults_to_the_running_tests_device(nn_device):
    strategy = nst.tensors((2,))
    with _context.activate(_context.RunContext(device="meta")):
        assert find(strategy, lambda t: True).device.type == "meta"
    assert find(strategy, lambda t: True).device == nn_device  # cpu, or cuda under --nn-gpu


def test_an_explicit_device_wins_over_the_tests_device():
    with _context.activate(_context.RunContext(device="meta")):
        assert find(nst.tensors((2,), device="cpu"), lambda t: True).device.type == "cpu"


@given(
    nst.image_batches(
        channels=3, multiple_of=4, max_height=8, max_width=8, min_value=0, max_value=1
    )
)
def test_image_batches_are_tensors_of_image_shapes(x):
    assert x.ndim == 4 and x.shape[1] == 3 and x.shape[2] % 4 == 0 and x.shape[3] % 4 == 0
    assert bool(((0 <= x) & (x <= 1)).all())


@given(nst.sequence_batches(features=5, dtype=torch.float64))
def test_sequence_batches_are_batch_time_features_tensors(x):
    assert x.ndim == 3 and x.shape[2] == 5 and x.shape[0] >= 2 and x.dtype == torch.float64


@given(nst.token_batches(vocab_size=11, min_length=2, max_length=9))
def test_token_batches_without_padding_are_id_tensors(ids):
    assert ids.dtype == torch.int64 and ids.ndim == 2
    assert ids.shape[0] >= 2 and 2 <= ids.shape[1] <= 9
    assert bool(((0 <= ids) & (ids < 11)).all())


@pytest.mark.parametrize("side", ["right", "left"])
@given(data=st.data())
def test_padded_token_batches_have_a_mask_that_matches_the_padding(side, data):
    pad_id = data.draw(st.integers(0, 6), label="pad_id")
    batch = data.draw(
        nst.token_batches(
            vocab_size=7, pad_id=pad_id, min_length=1, max_length=10, padding_side=side
        )
    )
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and mask.dtype == ids.dtype == torch.int64
    assert bool(((0 <= ids) & (ids < 7)).all())
    assert torch.equal(mask.bool(), ids != pad_id)  # real tokens never equal pad_id
    lengths = mask.sum(dim=1)
    assert int(lengths.min()) >= 1 and int(lengths.max()) == ids.shape[1]  # longest unpadded
    # padding is contiguous on the chosen side
    positions = torch.arange(ids.shape[1])
    expected = (
        positions < lengths[:, None]
        if side == "right"
        else positions >= ids.shape[1] - lengths[:, None]
    )
    assert torch.equal(mask.bool(), expected)


def test_padded_token_batches_shrink_to_short_sequences_of_the_first_real_token():
    batch = find(nst.token_batches(vocab_size=5, pad_id=0), lambda b: b["input_ids"].shape[1] >= 3)
    assert batch["input_ids"].shape == (2, 3)
    assert set(batch["input_ids"].flatten().tolist()) <= {0, 1}
    assert math.prod(batch["input_ids"].shape) == 6
