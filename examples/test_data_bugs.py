"""Each classic data bug from the recipe's "become one with the data", caught with its message.

Every test plants one bug in an otherwise clean dataset and checks the failure names it.
"""

from __future__ import annotations

import pytest
import torch

from pytest_nnrecipe import (
    assert_augmentation_consistent,
    assert_balanced,
    assert_consistent_labels,
    assert_disjoint,
    assert_finite_data,
    assert_no_duplicates,
    assert_normalized,
)


def features(n: int, seed: int = 0) -> torch.Tensor:
    """n samples of 16 float features."""
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def test_planted_duplicates_are_listed_as_index_pairs() -> None:
    x = features(1000)
    x[500], x[900] = x[12], x[12]  # the same file listed three times
    with pytest.raises(
        AssertionError, match=r"2 of 1000 samples .* duplicates(.*\n)*.*\(12, 500\), \(12, 900\)"
    ):
        assert_no_duplicates(x)


def test_split_leakage_names_the_shared_samples() -> None:
    data = features(1000)
    train, test = data[:800], torch.cat([data[800:], data[:5]])  # test got 5 training samples
    with pytest.raises(
        AssertionError, match=r"5 sample\(s\) of test also appear(.*\n)*.*\(train 0, test 200\)"
    ):
        assert_disjoint(train, test)


def test_a_nan_is_found_with_its_sample_and_position() -> None:
    x = features(1000)
    x[321, 7] = float("nan")  # a failed decode
    with pytest.raises(
        AssertionError,
        match=r"1 of 1000 samples hold bad values: 1 nan(.*\n)*.*sample 321: 1 nan \(first at \(7,\)",
    ):
        assert_finite_data(x)


def test_a_mislabelled_duplicate_is_a_label_conflict() -> None:
    x, y = features(1000), torch.arange(1000) % 10
    x[700], y[700] = x[42], 3  # sample 42 is labelled 2; its copy is labelled 3
    with pytest.raises(
        AssertionError,
        match=r"label conflict(.*\n)*.*sample 42 is labelled 2, its duplicate sample 700 is labelled 3",
    ):
        assert_consistent_labels(x, y)


def test_a_1_to_50_imbalance_shows_the_class_histogram() -> None:
    labels = torch.tensor([0] * 500 + [1] * 10)
    with pytest.raises(AssertionError) as info:
        assert_balanced(labels, min_share=0.1)
    assert "class 1: 10 of 510 samples (1.96%), below min_share=0.1" in str(info.value)
    assert "Largest : smallest class = 50:1" in str(info.value)
    assert "1 █ 10 (2.0%)" in str(info.value)  # the histogram


def test_un_normalised_0_255_images_are_caught_before_the_net() -> None:
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (16, 3, 32, 32), generator=g).float()  # forgot ToTensor/Normalize
    with pytest.raises(
        AssertionError,
        match=r"values in \[0, 255\] \(the range of 8-bit pixels\)(.*\n)*.*forgot to normalise",
    ):
        assert_normalized(batch)


def test_a_flip_that_forgets_the_keypoints_is_caught() -> None:
    def flip(image: torch.Tensor, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image.flip(-1), keypoints  # BUG: x should become W - 1 - x

    image = torch.rand(3, 32, 32)
    keypoints = torch.tensor([[4.0, 5.0], [10.0, 20.0], [25.0, 8.0]])  # (x, y) pixels
    with pytest.raises(
        AssertionError,
        match=r"moved the input but returned the keypoints label unchanged(.*\n)*.*forgot to transform the label",
    ):
        assert_augmentation_consistent(flip, image, keypoints, label_type="keypoints")
