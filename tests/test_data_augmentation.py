"""Augmentations must move the label with the input: flips, rotations, crops, resizes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pytest_nnrecipe as nn

H, W = 20, 24
IMG = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
MASK = torch.zeros(H, W, dtype=torch.long)
MASK[3:9, 2:8] = 1
MASK[12:15, 15:22] = 2
KPS = torch.tensor([[2.0, 3.0], [5.0, 15.0], [20.0, 10.0]])
BOXES = torch.tensor([[1.0, 2.0, 9.0, 7.0], [14.0, 11.0, 22.0, 18.0]])


def hflip_mask(img: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return img.flip(-1), mask.flip(-1)


def hflip_keypoints(img: torch.Tensor, kps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = kps.clone()
    out[:, 0] = img.shape[-1] - 1 - kps[:, 0]
    return img.flip(-1), out


def hflip_boxes(img: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = img.shape[-1]
    return img.flip(-1), torch.stack(
        [w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1
    )


def forgot_labels(img: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return img.flip(-1), label


def random_flip_forgetting_labels(img: torch.Tensor, label: Any) -> tuple[torch.Tensor, Any]:
    if torch.rand(()) < 0.5:
        return img.flip(-1), label
    return img, label


@pytest.mark.parametrize(
    ("augment", "label", "label_type"),
    [
        pytest.param(hflip_mask, MASK, "mask", id="mask"),
        pytest.param(hflip_keypoints, KPS, "keypoints", id="keypoints"),
        pytest.param(hflip_boxes, BOXES, "boxes", id="boxes"),
    ],
)
def test_a_flip_that_flips_the_label_passes_and_one_that_forgets_fails(
    augment: Any, label: torch.Tensor, label_type: str
) -> None:
    result = nn.assert_augmentation_consistent(augment, IMG, label, label_type=label_type, trials=2)
    assert result.moved == 2
    with pytest.raises(AssertionError) as info:
        nn.assert_augmentation_consistent(
            forgot_labels, IMG, label, label_type=label_type, trials=2
        )
    text = str(info.value)
    assert f"moved the input but returned the {label_type} label unchanged in 2 of 2 trials" in text
    assert "forgot to transform the label with the input" in text
    assert "A: label painted into the input, augmented (where it must be)" in text


def test_a_random_flip_is_exercised_over_several_seeds() -> None:
    with pytest.raises(AssertionError, match=r"pair 0: [1-7] of 8 trials fail"):
        nn.assert_augmentation_consistent(
            random_flip_forgetting_labels, IMG, KPS, label_type="keypoints"
        )


def test_a_label_flipped_along_the_wrong_axis_is_caught() -> None:
    def wrong_axis(img: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return img.flip(-1), mask.flip(-2)

    with pytest.raises(
        AssertionError, match=r"moved differently from the input(.*\n)*.*wrong axis"
    ):
        nn.assert_augmentation_consistent(wrong_axis, IMG, MASK, trials=1)


def test_rotations_random_crops_resizes_and_colour_jitter_pass_when_labels_follow() -> None:
    def rot90_boxes(img: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = img.shape[-1]  # rotate 90 degrees counter-clockwise: (x, y) -> (y, W - x)
        x1, y1, x2, y2 = boxes.unbind(1)
        return img.rot90(1, (-2, -1)), torch.stack([y1, w - x2, y2, w - x1], 1)

    def crop_jitter(img: torch.Tensor, kps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top, left = int(torch.randint(0, 4, ())), int(torch.randint(0, 4, ()))
        out = img[..., top : top + 16, left : left + 18] * (0.5 + torch.rand(()))
        return out, kps - torch.tensor([left, top])

    def half_size(img: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        small = F.interpolate(img[None].float(), scale_factor=0.5, mode="bilinear")[0]
        m = F.interpolate(mask[None, None].float(), scale_factor=0.5, mode="nearest")[0, 0]
        return small, m

    nn.assert_augmentation_consistent(rot90_boxes, IMG, BOXES, label_type="boxes", trials=1)
    nn.assert_augmentation_consistent(crop_jitter, IMG, KPS, label_type="keypoints", trials=4)
    big_mask = torch.zeros(64, 64, dtype=torch.long)
    big_mask[11:41, 9:31] = 1  # odd borders: bilinear and nearest disagree at the edge
    result = nn.assert_augmentation_consistent(half_size, torch.rand(3, 64, 64), big_mask, trials=1)
    assert 0.8 <= result.scores[0][0] < 1.0  # imperfect overlap, inside the default min_iou


def test_channels_last_numpy_images_and_several_pairs() -> None:
    imgs = [np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 200, np.uint8)]
    masks = [MASK.numpy(), MASK.numpy()[::-1].copy()]

    def flip(img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return img[:, ::-1], mask[:, ::-1]

    result = nn.assert_augmentation_consistent(flip, imgs, masks, spatial_dims=(0, 1), trials=1)
    assert result.n_pairs == 2
    with pytest.raises(AssertionError, match=r"pair 0: 1 of 1(.*\n)pair 1: 1 of 1|pair 1: 1 of 1"):
        nn.assert_augmentation_consistent(
            lambda i, m: (i[:, ::-1], m), imgs, masks, spatial_dims=(0, 1), trials=1
        )


def test_structured_labels_use_a_paint_callable() -> None:
    target = {"boxes": BOXES, "labels": torch.tensor([1, 2])}

    def paint(t: dict[str, torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
        m = torch.zeros(hw, dtype=torch.bool)
        for x1, y1, x2, y2 in t["boxes"].round().long().tolist():
            m[y1:y2, x1:x2] = True
        return m

    def flip(img: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        _, boxes = hflip_boxes(img, t["boxes"])
        return img.flip(-1), {**t, "boxes": boxes}

    nn.assert_augmentation_consistent(flip, IMG, target, label_type=paint, trials=1)
    with pytest.raises(AssertionError, match=r"returned the paint label unchanged"):
        nn.assert_augmentation_consistent(forgot_labels, IMG, target, label_type=paint, trials=1)


def test_the_global_rngs_are_as_before() -> None:
    torch.manual_seed(3)
    random.seed(3)
    before = torch.get_rng_state(), random.getstate()
    nn.assert_augmentation_consistent(hflip_mask, IMG, MASK, trials=3)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]


def test_a_one_hot_mask_is_compared_per_class_so_a_forgotten_flip_shows() -> None:
    mask = torch.zeros(24, 32, dtype=torch.long)
    mask[5:15, 8:20], mask[16:20, 2:6] = 1, 2
    one_hot = torch.nn.functional.one_hot(mask, 3).permute(2, 0, 1)  # background is channel 0

    def flip(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x.flip(-1), y.flip(-1)) if torch.rand(()) < 0.5 else (x, y)

    def flip_image_only(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x.flip(-1), y) if torch.rand(()) < 0.5 else (x, y)

    image = torch.rand(3, 24, 32)
    assert nn.assert_augmentation_consistent(flip, image, one_hot).moved > 0
    with pytest.raises(
        AssertionError, match=r"moved the input but returned the mask label unchanged"
    ):
        nn.assert_augmentation_consistent(flip_image_only, image, one_hot.float())
