"""describe_data: the table a person reads before writing checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import pytest_nnrecipe as nn


def test_it_prints_size_fields_features_labels_duplicates_and_outliers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, 4, 4, generator=g)
    x[17] = x[4]
    x[99] *= 40  # a corrupted sample
    x[:, 2] = 0.5  # a dead channel
    y = torch.arange(200) % 4
    summary = nn.describe_data(torch.utils.data.TensorDataset(x, y))
    printed = capsys.readouterr().out
    assert printed.strip() == str(summary) == summary.text
    assert "describe_data: TensorDataset of 200, 200 samples (all 200 samples)" in printed
    assert "[0]      float32   (3, 4, 4)" in printed and "[1]      int64     ()" in printed
    assert "per feature of [0] (dim 0, 3 features)" in printed
    assert "labels ([1]): 4 classes" in printed and "50 (25.0%)" in printed
    assert "duplicates: none" in printed  # (x, y) pairs differ in y...
    assert "field [0] alone: 1 repeats: (4, 17)" in printed  # ...but the input repeats
    assert "sample 99[0]: std" in printed or "sample 99[0]: min" in printed
    assert "constant features: [0][2]" in printed
    assert summary.n_samples == 200 and summary.label_counts == {0: 50, 1: 50, 2: 50, 3: 50}
    assert summary.outliers[0][0] == 99 and summary.fields[0].repeats == 1
    assert all(len(line) <= 80 for line in printed.splitlines())


def test_a_plain_tensor_with_nans_and_explicit_labels() -> None:
    x = np.random.default_rng(0).normal(size=(50, 6))
    x[3, 2] = np.nan
    out = io.StringIO()
    summary = nn.describe_data(x, labels=["a"] * 45 + ["b"] * 5, file=out)
    text = out.getvalue()
    assert "(sample) float64   (6,)" in text and summary.fields[0].nan == 1
    assert "labels (labels=): 2 classes" in text and summary.label_counts == {"a": 45, "b": 5}


def test_ragged_samples_are_shown_not_rejected() -> None:
    seqs = [torch.ones(n) for n in (3, 3, 5, 7)]
    summary = nn.describe_data(seqs, show=False)
    assert "3 shapes!" in summary.text and "ragged: (3,) x2" in summary.text


def test_max_samples_summarises_a_random_subset_without_touching_global_rngs() -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    summary = nn.describe_data(torch.arange(10_000), max_samples=100, show=False)
    assert summary.n_samples == 100 and "a random 100 of 10000 samples" in summary.text
    assert torch.equal(torch.get_rng_state(), before)


def test_binary_multi_label_targets_have_no_outlier_samples_but_a_black_image_does() -> None:
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(40, 3, 8, 8, generator=g) * 1.3).clamp(0, 1)
    images[7] = 0  # a failed decode
    targets = (torch.rand(40, 5, generator=g) > 0.5).float()  # 0/1 per tag
    targets[3] = 0  # an untagged sample is a category of its own, not an outlier
    summary = nn.describe_data(torch.utils.data.TensorDataset(images, targets), show=False)
    assert [(i, path) for i, path, *_ in summary.outliers] == [(7, "[0]")]
