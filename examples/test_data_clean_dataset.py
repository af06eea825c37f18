"""Become one with the data: a clean image-classification dataset passes every data check.

The checks are fixtures of the same name (they run under the test's seed and leave the global
RNGs as they were) and plain functions (``from pytest_nnrecipe import assert_balanced``).
"""

from __future__ import annotations

import pytest
import torch

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Shapes(torch.utils.data.Dataset):
    """A tiny synthetic dataset: 3 x 16 x 16 images in 0..1 and a class label each.

    Samples are made on demand from their index (like files read from disk), so the checks
    stream over it without holding it in memory.
    """

    def __init__(self, n: int, offset: int = 0) -> None:
        self.n, self.offset = n, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.offset + i)
        mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
        image = (torch.randn(3, 16, 16, generator=g) * std + mean).clamp(0, 1)
        return image, (self.offset + i) % 4


def normalise(image: torch.Tensor) -> torch.Tensor:
    return (image - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def hflip(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A random horizontal flip that flips the segmentation mask too."""
    if torch.rand(()) < 0.5:
        return image.flip(-1), mask.flip(-1)
    return image, mask


train, test = Shapes(400), Shapes(100, offset=400)


def test_no_sample_is_repeated(assert_no_duplicates) -> None:
    assert_no_duplicates(train, key=lambda s: s[0])


def test_the_test_split_does_not_leak_into_train(assert_disjoint) -> None:
    assert_disjoint(train, test, key=lambda s: s[0])


def test_no_image_carries_two_labels(assert_consistent_labels) -> None:
    assert_consistent_labels(train)


def test_pixels_are_finite_and_in_0_1(assert_finite_data) -> None:
    result = assert_finite_data(train, low=0.0, high=1.0, key=lambda s: s[0])
    assert result.max <= 1.0


def test_every_class_has_its_share(assert_balanced) -> None:
    result = assert_balanced(train, key=lambda s: s[1], min_share=0.2)
    assert result.counts == {0: 100, 1: 100, 2: 100, 3: 100}


def test_raw_pixels_have_the_pretrained_statistics(assert_normalized) -> None:
    assert_normalized(train, mean=MEAN, std=STD, key=lambda s: s[0], max_samples=64)


def test_what_enters_the_net_is_normalised(assert_normalized) -> None:
    batch = torch.stack([normalise(train[i][0]) for i in range(32)])  # just before model(batch)
    assert_normalized(batch)


def test_the_flip_moves_the_mask_with_the_image(assert_augmentation_consistent) -> None:
    image, _ = train[0]
    mask = torch.zeros(16, 16)
    mask[2:9, 1:6] = 1
    result = assert_augmentation_consistent(hflip, image, mask, label_type="mask")
    assert 0 < result.moved < result.trials  # the random flip fired in some trials only


def test_look_at_the_data(describe_data, capsys: pytest.CaptureFixture[str]) -> None:
    summary = describe_data(train)
    shown = capsys.readouterr().out
    print(shown)  # visible with pytest -s
    assert "describe_data: Shapes of 400, 400 samples" in shown
    assert "labels ([1]): 4 classes" in shown and "duplicates: none" in shown
    assert summary.label_counts == {0: 100, 1: 100, 2: 100, 3: 100}
