"""Non-finite and out-of-range values, and class balance: indices, counts and a histogram."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import pytest_nnrecipe as nn


def test_finite_data_in_bounds_passes_with_its_range() -> None:
    x = torch.rand(64, 3, 4, 4)
    result = nn.assert_finite_data(x, low=0.0, high=1.0)
    assert 0.0 <= result.min < result.max <= 1.0 and result.n_values == 64 * 48


def test_it_names_the_sample_and_position_of_each_nan_and_inf() -> None:
    x = torch.rand(64, 3, 4, 4)
    x[5, 1, 2, 3] = float("nan")
    x[40, 0, 0, 0] = float("inf")
    x[40, 0, 0, 1] = float("nan")
    with pytest.raises(AssertionError) as info:
        nn.assert_finite_data(x)
    text = str(info.value)
    assert "2 of 64 samples hold bad values: 2 nan, 1 +inf" in text
    assert "sample 5: 1 nan (first at (1, 2, 3): nan)" in text
    assert "sample 40: 1 nan (first at (0, 0, 1): nan), 1 +inf (first at (0, 0, 0): inf)" in text
    assert "division by zero" in text


def test_out_of_bounds_values_are_counted_per_side() -> None:
    x = np.linspace(0, 1, 100).reshape(50, 2)
    x[3, 1] = 255.0
    x[9, 0] = -1.0
    with pytest.raises(AssertionError, match=r"1 below low, 1 above high \[low=0, high=1\]"):
        nn.assert_finite_data(x, low=0, high=1)


def test_every_leaf_of_tuple_samples_is_checked_and_key_narrows_it() -> None:
    data = [(torch.rand(2, 2), torch.tensor(3)) for _ in range(5)]
    data[2] = (torch.tensor([[0.1, float("-inf")], [0.2, 0.3]]), torch.tensor(3))
    with pytest.raises(AssertionError, match=r"sample 2\[0\]: 1 -inf \(first at \(0, 1\)"):
        nn.assert_finite_data(data)
    with pytest.raises(AssertionError, match=r"sample 0\[1\]: 1 above high"):
        nn.assert_finite_data([(torch.rand(2), torch.tensor(3))], high=1.0)
    nn.assert_finite_data([(torch.rand(2), torch.tensor(3))], high=1.0, key=lambda s: s[0])


def test_balanced_labels_pass_with_counts() -> None:
    labels = torch.arange(300) % 3
    result = nn.assert_balanced(labels, min_share=0.3)
    assert result.counts == {0: 100, 1: 100, 2: 100} and result.ratio == 1.0


def test_a_1_to_50_imbalance_fails_with_the_histogram() -> None:
    labels = torch.cat([torch.zeros(500), torch.ones(10)]).long()
    with pytest.raises(AssertionError) as info:
        nn.assert_balanced(labels, min_share=0.1)
    text = str(info.value)
    assert "1 of 2 classes are under-represented" in text
    assert "class 1: 10 of 510 samples (1.96%), below min_share=0.1 (10.0%)" in text
    assert "Largest : smallest class = 50:1" in text
    assert "0 ████████████████████████████████████████ 500 (98.0%)" in text


def test_the_default_share_is_half_a_uniform_share() -> None:
    nn.assert_balanced(["cat"] * 30 + ["dog"] * 20)
    with pytest.raises(AssertionError, match=r"class 'dog'.*below min_share=0.25"):
        nn.assert_balanced(["cat"] * 40 + ["dog"] * 10)


def test_an_expected_class_with_no_samples_fails() -> None:
    with pytest.raises(
        AssertionError, match=r"class 2: 0 of 20 samples.*\n.*inf \(an empty class\)"
    ):
        nn.assert_balanced(torch.arange(20) % 2, classes=[0, 1, 2], min_share=0.1)


@pytest.mark.parametrize(
    "classes", [torch.arange(3), np.arange(3), [np.int64(0), 1, torch.tensor(2)]],
    ids=["tensor", "array", "mixed-scalars"],
)  # fmt: skip
def test_classes_given_as_a_tensor_are_matched_by_value(classes: Any) -> None:
    labels = torch.tensor([0, 1] * 10)
    with pytest.raises(AssertionError, match=r"1 of 3 classes.*\n.*class 2: 0 of 20 samples"):
        nn.assert_balanced(labels, classes=classes, min_share=0.1)


@pytest.mark.parametrize(
    "count", [3, np.int64(3), torch.tensor(3)], ids=["int", "numpy-int", "0-d-tensor"]
)  # fmt: skip
def test_classes_may_be_a_count_of_the_labels_0_to_n_minus_1(count: Any) -> None:
    labels = torch.tensor([0, 1] * 10)
    with pytest.raises(AssertionError, match=r"1 of 3 classes.*\n.*class 2: 0 of 20 samples"):
        nn.assert_balanced(labels, classes=count, min_share=0.1)
    result = nn.assert_balanced(labels, classes=2)
    assert result.counts == {0: 10, 1: 10}
    with pytest.raises(AssertionError, match=r"labels outside classes=: \[2\]"):
        nn.assert_balanced(torch.tensor([0, 1, 2] * 5), classes=2)


@pytest.mark.parametrize(
    "as_data", [lambda y: y, lambda y: y.tolist(), lambda y: [(torch.zeros(2), v) for v in y]],
    ids=["tensor", "list", "pairs"],
)  # fmt: skip
def test_nan_labels_fail_as_missing_labels_not_as_classes(
    as_data: Callable[[torch.Tensor], Any],
) -> None:
    y = torch.tensor([0.0, 1.0] * 10)
    y[[3, 11]] = float("nan")
    key = (lambda s: s[1]) if isinstance(as_data(y)[0], tuple) else None
    with pytest.raises(
        AssertionError, match=r"2 of 20 labels are NaN: missing labels.*\n.*samples: 3, 11"
    ):
        nn.assert_balanced(as_data(y), key=key)


def test_per_class_shares_and_labels_from_a_dataset() -> None:
    ds = torch.utils.data.TensorDataset(torch.randn(40, 2), torch.tensor([0] * 36 + [1] * 4))
    nn.assert_balanced(ds, key=lambda s: s[1], min_share={1: 0.05})
    with pytest.raises(AssertionError, match=r"class 1: 4 of 40"):
        nn.assert_balanced(ds, key=lambda s: s[1], min_share={1: 0.2})
