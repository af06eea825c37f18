"""Per-channel statistics before the net: forgot to normalise, wrong mean, wrong std, BGR."""

from __future__ import annotations

import pytest
import torch

import pytest_nnrecipe as nn

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])


def raw_images(n: int = 16) -> torch.Tensor:
    """0..1 images whose channels have ImageNet's mean and std."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g) * STD[:, None, None] + MEAN[:, None, None]
    return x.clamp(0, 1)


def normalised(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN[:, None, None]) / STD[:, None, None]


def test_normalised_inputs_pass_with_per_channel_stats() -> None:
    result = nn.assert_normalized(normalised(raw_images()))
    assert len(result.mean) == 3 and all(abs(m) < 0.2 for m in result.mean)
    assert all(0.8 < s < 1.2 for s in result.std)


def test_raw_images_match_the_pretrained_mean_and_std() -> None:
    nn.assert_normalized(raw_images(), mean=MEAN.tolist(), std=STD.tolist())


def test_it_catches_raw_0_to_255_pixels_with_a_channel_table() -> None:
    pixels = (raw_images() * 255).round()
    with pytest.raises(AssertionError) as info:
        nn.assert_normalized(pixels)
    text = str(info.value)
    assert "inputs are unnormalised values in [0, 255] (the range of 8-bit pixels)" in text
    assert "forgot to normalise: scale to 0..1 by the data's maximum (x / 255)" in text
    table = text.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["channel", "mean", "expected", "std", "expected", "min", "max"]
    assert len(table) == 5 and table[1].split()[0] == "0" and "✗" in table[1]


def test_values_in_0_to_16_are_described_as_they_are_with_the_scale_the_data_suggests() -> None:
    # scikit-learn's digits: 8x8 images of integer values 0..16, as 64 features.
    g = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 17, (100, 64), generator=g).float()
    with pytest.raises(AssertionError) as info:
        nn.assert_normalized(digits, dim=None)
    text = str(info.value)
    assert "inputs are unnormalised values in [0, 16], not mean 0, std 1 as expected." in text
    assert "255" not in text and "pixels" not in text
    assert "scale to 0..1 by the data's maximum (x / 16)" in text
    mean, std = digits.mean().item(), digits.std().item()
    assert f"this data's own statistics give (x - {mean:.4g}) / {std:.4g}" in text


def test_per_channel_data_gets_its_own_per_channel_constants() -> None:
    with pytest.raises(AssertionError) as info:
        nn.assert_normalized(raw_images() * 40)
    text = str(info.value)
    assert "unnormalised values in [0, 40], not mean 0, std 1 as expected" in text
    assert "(x / 40)" in text and "own per-channel statistics" in text


def test_it_catches_0_to_1_values_that_were_never_normalised() -> None:
    with pytest.raises(AssertionError, match=r"0..1 values .* scaled but not normalised"):
        nn.assert_normalized(raw_images())


def test_it_catches_the_wrong_mean() -> None:
    wrong = raw_images() / STD[:, None, None]  # divided by std, no mean subtracted
    with pytest.raises(AssertionError) as info:
        nn.assert_normalized(wrong)
    assert "the mean is off in 3 channel(s) while the spread matches" in str(info.value)
    assert "used the wrong mean" in str(info.value)


def test_it_catches_the_wrong_std() -> None:
    with pytest.raises(AssertionError, match=r"std is off by a factor of about 1\.9"):
        nn.assert_normalized(normalised(raw_images()) * 2)


def test_it_recognises_swapped_channels() -> None:
    mean, std = torch.tensor([0.7, 0.5, 0.2]), torch.tensor([0.1, 0.1, 0.1])
    rgb = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.1
    rgb += mean[:, None, None]
    nn.assert_normalized(rgb, mean=mean.tolist(), std=std.tolist())
    with pytest.raises(AssertionError, match=r"reverse channel order(.*\n)*.*BGR vs RGB"):
        nn.assert_normalized(rgb.flip(1), mean=mean.tolist(), std=std.tolist())


def test_nan_inputs_fail_instead_of_passing_silently() -> None:
    x = normalised(raw_images())
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(AssertionError, match=r"NaN or Inf"):
        nn.assert_normalized(x)


def test_channels_last_a_dataset_and_a_global_dim() -> None:
    x = normalised(raw_images())
    nn.assert_normalized(x.permute(0, 2, 3, 1), dim=-1)
    nn.assert_normalized(torch.utils.data.TensorDataset(x, torch.zeros(16)), key=lambda s: s[0])
    nn.assert_normalized(x, dim=None)
    with pytest.raises(AssertionError, match=r"1 of 1 channel"):
        nn.assert_normalized(x * 10, dim=None)


def test_tolerances_are_in_units_of_the_expected_std() -> None:
    x = normalised(raw_images()) + 0.4
    nn.assert_normalized(x)
    with pytest.raises(AssertionError, match=r"mean_tol=0.3"):
        nn.assert_normalized(x, mean_tol=0.3)


@pytest.mark.parametrize("seed", range(5))
def test_a_normalised_batch_of_32_feature_vectors_passes_despite_sampling_noise(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    batch = torch.randn(32, 128, generator=g)  # per-feature means scatter by 1/sqrt(32)
    nn.assert_normalized(batch)
    with pytest.raises(AssertionError, match=r"0\.\.1 values.*\n(.*\n)*.*widened for the sampling"):
        nn.assert_normalized(torch.rand(32, 128, generator=g))
    with pytest.raises(AssertionError, match=r"the mean is off"):
        nn.assert_normalized(batch + 1.5)
