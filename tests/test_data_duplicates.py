"""Duplicates, leakage and label conflicts: found by hashing, named by index pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pytest_nnrecipe as nn


def clean(n: int = 200, d: int = 8) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def test_distinct_samples_pass_and_the_result_says_what_was_read() -> None:
    result = nn.assert_no_duplicates(clean())
    assert result.n_samples == 200 and result.n_duplicates == 0 and result.pairs == ()


def test_it_names_every_duplicate_pair_and_counts_groups() -> None:
    x = clean()
    x[50], x[120], x[199] = x[3], x[3], x[7]
    with pytest.raises(AssertionError) as info:
        nn.assert_no_duplicates(x)
    text = str(info.value)
    assert "3 of 200 samples (1.5%) are duplicates of earlier samples, in 2 group(s)" in text
    assert "(3, 50), (3, 120), (7, 199)" in text
    assert "Likely cause:" in text and "method=exact hashing" in text


def test_msg_replaces_the_headline_and_keeps_the_evidence() -> None:
    x = clean()
    x[9] = x[8]
    with pytest.raises(
        AssertionError, match=r"failed: train split has repeats\n  Finding: 1 of 200.*\n.*\(8, 9\)"
    ):
        nn.assert_no_duplicates(x, msg="train split has repeats")


def test_near_duplicates_are_found_only_with_atol() -> None:
    x = torch.round(clean(), decimals=2)
    x[60] = x[6] + 1e-6
    nn.assert_no_duplicates(x)
    with pytest.raises(
        AssertionError,
        match=r"near-duplicates.*\n.*\(6, 60\).*\n.*\n.*\n.*rounding grid atol=0.001",
    ):
        nn.assert_no_duplicates(x, atol=1e-3)


def test_it_catches_leakage_between_a_float32_and_a_float64_split() -> None:
    train = torch.randn(30, 5)  # loaded with torch
    test = np.concatenate([np.random.default_rng(1).normal(size=(9, 5)), train[[4, 17]].numpy()])
    with pytest.raises(AssertionError, match=r"2 sample\(s\) of test.*\n.*\(train 4, test 9\)"):
        nn.assert_disjoint(train, test.astype(np.float64))  # the same rows via pandas


def test_ragged_token_ids_in_an_object_array_are_compared_per_sample() -> None:
    texts = [[101, 7592, 102], [101, 2088, 999, 102], [101, 7592, 102], [101, 102]]
    ids = np.empty(len(texts), dtype=object)
    ids[:] = [np.array(t, dtype=np.int32) for t in texts]  # what a tokenised column holds
    with pytest.raises(AssertionError, match=r"1 of 4 samples.*\n.*\(0, 2\)"):
        nn.assert_no_duplicates(ids)
    nn.assert_disjoint(ids[:2], ids[3:])
    with pytest.raises(AssertionError, match=r"\(train 0, test 0\)"):
        nn.assert_disjoint(ids[:2], [torch.tensor(texts[0])])  # int32 vs int64: same ids


def test_atol_leaves_integers_exact() -> None:
    x = torch.arange(20).reshape(10, 2)
    nn.assert_no_duplicates(x, atol=100.0)


def test_key_compares_only_the_input_of_a_pair() -> None:
    x = clean(20)
    pairs = [(x[i], i % 2) for i in range(20)]
    pairs[11] = (x[4], 1)
    nn.assert_no_duplicates(pairs)  # whole samples differ (labels 0 vs 1)
    with pytest.raises(AssertionError, match=r"\(4, 11\)"):
        nn.assert_no_duplicates(pairs, key=lambda s: s[0])


def test_disjoint_splits_pass_and_leakage_names_both_sides() -> None:
    x = clean(300)
    nn.assert_disjoint(x[:200], x[200:])
    with pytest.raises(AssertionError) as info:
        nn.assert_disjoint(x[:200], x[190:])
    text = str(info.value)
    assert (
        "10 sample(s) of test also appear in an earlier split: leakage between train / test" in text
    )
    assert "(train 190, test 0), (train 191, test 1)" in text and "train=200, test=110" in text


def test_leakage_between_any_of_three_named_splits_is_found() -> None:
    x = clean(30)
    train, val, test = x[:10], x[10:20], torch.cat([x[20:29], x[15:16]])
    with pytest.raises(AssertionError, match=r"\(val 5, test 9\)"):
        nn.assert_disjoint(train, val, test, names=("train", "val", "test"))


def test_repeats_inside_one_split_are_not_leakage() -> None:
    x = clean(20)
    x[5] = x[4]
    nn.assert_disjoint(x[:10], x[10:])


def test_leakage_is_found_across_data_kinds() -> None:
    x = clean(20).double()
    test_list = [row.numpy() for row in x[15:]]
    with pytest.raises(AssertionError, match=r"5 sample\(s\) of test"):
        nn.assert_disjoint(x[:20], test_list)


def test_the_same_input_with_another_label_is_a_label_conflict() -> None:
    x, y = clean(50), torch.arange(50) % 5
    x[40], y[40] = x[2], (y[2] + 1) % 5
    x[41], y[41] = x[3], y[3]  # a plain duplicate, same label: not a conflict
    with pytest.raises(AssertionError) as info:
        nn.assert_consistent_labels(x, y)
    text = str(info.value)
    assert "label conflict: 1 sample(s) repeat an earlier input with a different label" in text
    assert "sample 2 is labelled 2, its duplicate sample 40 is labelled 3" in text


def test_label_conflicts_in_a_dataset_of_pairs() -> None:
    x, y = clean(30), torch.arange(30) % 3
    ds = torch.utils.data.TensorDataset(x, y)
    nn.assert_consistent_labels(ds)
    x[20], y[20] = x[1], (y[1] + 1) % 3
    with pytest.raises(
        AssertionError, match=r"sample 1 is labelled 1, its duplicate sample 20 is labelled 2"
    ):
        nn.assert_consistent_labels(torch.utils.data.TensorDataset(x, y))


def test_string_labels_and_numpy_inputs_work() -> None:
    x = np.eye(4)
    nn.assert_consistent_labels(x, ["a", "b", "c", "d"])
    with pytest.raises(AssertionError, match=r"labelled 'a', .* labelled 'z'"):
        nn.assert_consistent_labels(np.vstack([x, x[:1]]), ["a", "b", "c", "d", "z"])
