"""Reading data: every accepted kind, hashing that agrees across kinds, max_samples, bad input."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import pytest_nnrecipe as nn
from pytest_nnrecipe._data import _samples


class Pairs(torch.utils.data.Dataset):
    """A map-style dataset of (input, label) pairs built on the fly (nothing stored)."""

    def __init__(self, n: int, dup: tuple[int, int] | None = None) -> None:
        self.n, self.dup = n, dup

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.dup is not None and i == self.dup[1]:
            i = self.dup[0]
        g = torch.Generator().manual_seed(i)
        return torch.randn(4, generator=g), i % 3


class Stream(torch.utils.data.IterableDataset):
    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __iter__(self) -> Any:
        return iter(self.rows)


class Broken(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == 3:
            raise OSError("cannot decode image_0003.jpg")
        return torch.zeros(2)


def test_a_tensor_row_an_array_and_a_list_are_the_same_sample() -> None:
    row = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    digests = {
        _samples.fingerprint(_samples.canonical(v))
        for v in (row, row.numpy(), [1.0, 2.0, 3.0], np.array([1.0, 2.0, 3.0]))
    }
    assert len(digests) == 1
    assert _samples.fingerprint(_samples.canonical(3)) == _samples.fingerprint(
        _samples.canonical(torch.tensor(3))
    )


def test_shape_and_kind_of_number_are_part_of_a_sample() -> None:
    a = torch.zeros(4)
    others = [a.reshape(2, 2), a.int(), a.bool(), a + 1e-7]
    fa = _samples.fingerprint(_samples.canonical(a))
    assert all(_samples.fingerprint(_samples.canonical(o)) != fa for o in others)


def test_numbers_compare_by_value_whatever_their_width() -> None:
    x = torch.tensor([0.5, -2.5, 3.0])  # exactly representable in float16 too
    same = [x.double(), x.half(), x.bfloat16(), x.numpy().astype(np.float64)]
    assert len({_samples.fingerprint(_samples.canonical(v)) for v in [x, *same]}) == 1
    ids = [
        torch.tensor([5, 7, 9]),
        np.array([5, 7, 9], dtype=np.int32),
        np.array([5, 7, 9], dtype=np.uint16),
    ]
    assert len({_samples.fingerprint(_samples.canonical(v)) for v in ids}) == 1


def test_minus_zero_and_nan_payloads_do_not_split_a_repeat() -> None:
    a = np.array([np.nan, 0.0, 1.0])
    b = np.array([-np.nan, -0.0, 1.0])
    b.view(np.int64)[0] |= 1  # another NaN payload
    assert _samples.fingerprint(a) == _samples.fingerprint(b)
    rows = np.stack([a, b, a]).astype(np.float32)
    assert len(set(_samples.row_fingerprints(rows))) == 1
    assert _samples.row_fingerprints(rows) == [_samples.fingerprint(r) for r in rows]


@pytest.mark.parametrize("block_bytes", [1 << 24, 100], ids=["one-block", "many-blocks"])
def test_bulk_row_hashing_gives_the_same_digests_as_one_by_one(
    block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_samples, "BLOCK_BYTES", block_bytes)
    rows = np.random.default_rng(0).normal(size=(50, 3, 2)).astype(np.float32)
    assert _samples.row_fingerprints(rows) == [_samples.fingerprint(r) for r in rows]
    assert _samples.row_fingerprints(rows, atol=0.1) == [
        _samples.fingerprint(r, atol=0.1) for r in rows
    ]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda x: x, id="tensor"),
        pytest.param(lambda x: x.numpy(), id="ndarray"),
        pytest.param(lambda x: list(x), id="list-of-tensors"),
        pytest.param(lambda x: x.tolist(), id="nested-lists"),
        pytest.param(lambda x: torch.utils.data.TensorDataset(x), id="TensorDataset"),
        pytest.param(lambda x: Stream(x), id="IterableDataset"),
        pytest.param(lambda x: (r for r in x), id="generator"),
    ],
)
def test_every_kind_of_data_finds_the_same_duplicate(make: Callable[[torch.Tensor], Any]) -> None:
    x = torch.arange(40, dtype=torch.float64).reshape(10, 4)
    x[7] = x[2]
    with pytest.raises(AssertionError, match=r"\(2, 7\)"):
        nn.assert_no_duplicates(make(x))


def test_max_samples_reads_a_sorted_random_subset_and_leaves_global_rngs_alone() -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    src = _samples.open_data(torch.zeros(1000, 2), max_samples=50)
    seen = [i for i, _ in src]
    assert len(seen) == 50 and seen == sorted(seen) and seen[-1] > 500
    assert "a random 50 of 1000" in src.read_note()
    assert torch.equal(torch.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]


def test_the_checks_never_change_the_data() -> None:
    x = torch.randn(30, 3, 4, 4)
    x[5] = x[1]
    copy = x.clone()
    with pytest.raises(AssertionError, match=r"1 of 30 samples .* are duplicates[\s\S]*\(1, 5\)"):
        nn.assert_no_duplicates(x)
    nn.describe_data(x, show=False)
    nn.assert_finite_data(x)
    assert torch.equal(x, copy)


def test_a_dataset_is_streamed_not_stacked() -> None:
    ds = Pairs(2000, dup=(10, 1500))
    with pytest.raises(AssertionError, match=r"\(10, 1500\)"):
        nn.assert_no_duplicates(ds, key=lambda s: s[0])


def test_the_progress_line_goes_to_stderr_only_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    x = torch.randn(100, 2)
    nn.assert_no_duplicates(x, progress=False)
    nn.assert_no_duplicates(x)
    assert capsys.readouterr().err == ""


BAD_INPUT: list[Any] = [
    pytest.param(
        lambda: nn.assert_no_duplicates([[1, 2], [[1, 2], [3]]]),
        ValueError, r"sample 1 of data is ragged", id="ragged-sample",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates([torch.zeros(2), object()]),
        TypeError, r"sample 1 of data is a object.*key=", id="unhashable-sample",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates(Broken()),
        ValueError, r"data\[3\] raised OSError: cannot decode image_0003", id="getitem-raises",
    ),
    pytest.param(
        lambda: nn.describe_data(Broken(), show=False),
        ValueError, r"data\[3\] raised OSError", id="getitem-raises-in-summary",
    ),
    pytest.param(
        lambda: nn.assert_normalized([torch.zeros(3, 2, 2), torch.zeros(4, 2, 2)], dim=1),
        ValueError, r"sample 1 has 4 channels along dim=1 but sample 0 has 3: ragged", id="ragged-channels",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates({"x": torch.zeros(3)}),
        TypeError, r"data= must be .*pass the columns separately", id="mapping-of-columns",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates(torch.tensor(1.0)),
        ValueError, r"data= is a 0-d Tensor", id="0-d-tensor",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates(torch.zeros(3, 2), max_samples=0),
        ValueError, r"max_samples=0 must be a positive int", id="max-samples-0",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates(torch.zeros(3, 2), atol=-1),
        ValueError, r"atol=-1 must be a positive number", id="negative-atol",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates(torch.zeros(3, 2), key=3),
        TypeError, r"key=3 must be a callable", id="key-not-callable",
    ),
    pytest.param(
        lambda: nn.assert_no_duplicates(Pairs(3), key=lambda s: s[5]),
        ValueError, r"key= raised IndexError.* on sample 0", id="key-raises",
    ),
    pytest.param(
        lambda: nn.assert_disjoint(torch.zeros(2, 1), torch.ones(2, 1), names=("a",)),
        ValueError, r"names=\('a',\) must give 2 distinct names", id="disjoint-names",
    ),
    pytest.param(
        lambda: nn.assert_consistent_labels(torch.zeros(3, 2), torch.zeros(4)),
        ValueError, r"inputs= has 3 samples but labels= has 4", id="labels-length",
    ),
    pytest.param(
        lambda: nn.assert_consistent_labels(torch.zeros(3, 2)),
        ValueError, r"sample 0 of inputs is a ndarray, not an \(input, label\) pair", id="labels-missing",
    ),
    pytest.param(
        lambda: nn.assert_finite_data(torch.zeros(3), low=1, high=0),
        ValueError, r"low=1 is above high=0", id="low-above-high",
    ),
    pytest.param(
        lambda: nn.assert_balanced(torch.tensor([0, 1, 2]), min_share=0.5),
        ValueError, r"min_share=0.5 for each of 3 classes adds up to 1.50 > 1", id="impossible-share",
    ),
    pytest.param(
        lambda: nn.assert_balanced(torch.zeros(4, 3)),
        ValueError, r"class labels must be scalars", id="one-hot-labels",
    ),
    pytest.param(
        lambda: nn.assert_balanced(torch.tensor([0, 1]), classes=0),
        ValueError, r"classes=0 must be a positive number of classes", id="zero-classes",
    ),
    pytest.param(
        lambda: nn.assert_balanced(torch.tensor([0, 1]), classes=2.0),
        TypeError, r"classes=2.0 must be a number of classes n .*e\.g\. classes=10", id="float-classes",
    ),
    pytest.param(
        lambda: nn.assert_balanced(torch.tensor([0, 1]), classes=True),
        TypeError, r"classes=True must be a number of classes", id="bool-classes",
    ),
    pytest.param(
        lambda: nn.assert_normalized(torch.zeros(2, 3, 4), mean=(0.0, 0.0)),
        ValueError, r"mean= has 2 values but the data has 3 channels", id="mean-length",
    ),
    pytest.param(
        lambda: nn.assert_normalized(torch.zeros(2, 3), dim=4),
        ValueError, r"dim=4 is out of range for inputs of shape \(2, 3\)", id="dim-out-of-range",
    ),
    pytest.param(
        lambda: nn.assert_consistent_labels([{"image": torch.zeros(2), "label": 0}]),
        ValueError, r"dict with keys \['image', 'label'\].*key=lambda s: \(s\['image'\], s\['label'\]\)",
        id="dict-samples-without-key",
    ),
    pytest.param(
        lambda: nn.assert_balanced([{"text": "a", "label": 0}, {"text": "b", "label": 1}]),
        ValueError, r"class labels must be scalars.*key=lambda s: s\['label'\]",
        id="dict-labels-without-key",
    ),
    pytest.param(
        lambda: nn.assert_normalized(torch.zeros(1, 4)),
        ValueError, r"1 value per channel along dim=1: a std needs at least 2", id="one-row-batch",
    ),
    pytest.param(
        lambda: nn.assert_normalized(torch.zeros(2, 3), std=0.0),
        ValueError, r"std=0.0 must be positive", id="zero-std",
    ),
    pytest.param(
        lambda: nn.assert_augmentation_consistent(lambda x, y: (x, y), torch.zeros(4, 4), torch.zeros(4, 4), label_type="polygon"),
        ValueError, r"label_type='polygon' must be one of", id="label-type",
    ),
    pytest.param(
        lambda: nn.assert_augmentation_consistent(lambda x, y: x, torch.zeros(4, 4), torch.zeros(4, 4)),
        TypeError, r"augment returned Tensor; it must return \(input, label\)", id="augment-returns-one",
    ),
    pytest.param(
        lambda: nn.assert_augmentation_consistent(lambda x, y: (x, y), torch.zeros(4, 4), torch.zeros(3, 3)),
        ValueError, r"mask label of shape \(3, 3\) does not end in the input's H x W = \(4, 4\)", id="mask-shape",
    ),
    pytest.param(
        lambda: nn.assert_augmentation_consistent(_unseeded_noise, torch.zeros(4, 4), torch.zeros(4, 4)),
        ValueError, r"different results for pair 0 under the same seed", id="augment-not-reproducible",
    ),
]  # fmt: skip

_private = np.random.default_rng(0)


def _unseeded_noise(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x + float(_private.random()), y


EMPTY: list[Any] = [
    pytest.param(lambda: [], id="list"),
    pytest.param(lambda: torch.zeros(0, 3), id="tensor"),
    pytest.param(lambda: np.zeros((0, 3)), id="array"),
    pytest.param(lambda: Pairs(0), id="dataset"),
    pytest.param(lambda: Stream(torch.zeros(0, 3)), id="iterable-dataset"),
]
SOME = torch.arange(6.0).reshape(3, 2)

EMPTY_CHECKS: list[Any] = [
    pytest.param(lambda e: nn.assert_no_duplicates(e), "data=", id="no_duplicates"),
    pytest.param(lambda e: nn.assert_disjoint(e, SOME), "train=", id="disjoint-train"),
    pytest.param(lambda e: nn.assert_disjoint(SOME, e), "test=", id="disjoint-test"),
    pytest.param(
        lambda e: nn.assert_disjoint(SOME, SOME + 9, e, names=("train", "val", "holdout")),
        "more[0]= (split 'holdout')", id="disjoint-third-split",
    ),
    pytest.param(lambda e: nn.assert_consistent_labels(e), "inputs=", id="labels-pairs"),
    pytest.param(lambda e: nn.assert_consistent_labels(e, []), "inputs=", id="labels-aligned"),
    pytest.param(lambda e: nn.assert_finite_data(e), "data=", id="finite_data"),
    pytest.param(lambda e: nn.assert_balanced(e), "labels=", id="balanced"),
    pytest.param(lambda e: nn.assert_balanced(e, classes=3), "labels=", id="balanced-classes"),
    pytest.param(lambda e: nn.assert_normalized(e), "batch=", id="normalized"),
    pytest.param(lambda e: nn.describe_data(e, show=False), "data=", id="describe_data"),
]  # fmt: skip


@pytest.mark.parametrize("empty", EMPTY)
@pytest.mark.parametrize(("check", "argument"), EMPTY_CHECKS)
def test_every_data_check_refuses_an_empty_dataset_naming_the_argument(
    check: Callable[[Any], Any], argument: str, empty: Callable[[], Any]
) -> None:
    with pytest.raises(
        ValueError, match=rf"^{re.escape(argument)} is empty \(.*\): nothing to check: 0 samples\."
    ):
        check(empty())


def test_an_augmentation_check_of_no_images_is_refused() -> None:
    with pytest.raises(ValueError, match=r"inputs= is an empty list: nothing to check: 0 samples"):
        nn.assert_augmentation_consistent(lambda x, y: (x, y), [], [], label_type="mask")


@pytest.mark.parametrize(
    "data", [np.array(["a", "b"]), ["a", "b"], np.zeros((4, 0))], ids=["str-array", "str-list", "no-values"]
)  # fmt: skip
def test_finite_data_refuses_data_without_numbers(data: Any) -> None:
    with pytest.raises(ValueError, match=r"data= holds no numeric values.*nothing to check.*key="):
        nn.assert_finite_data(data)


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUT)
def test_bad_input_raises_a_clear_error_naming_the_index_or_argument(
    call: Callable[[], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_progress_true_writes_a_counter_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    nn.assert_no_duplicates(torch.randn(100, 2), progress=True)
    err = capsys.readouterr().err
    assert "data: 100/100 samples (100%)" in err and err.endswith("\r")


def test_every_check_records_one_entry_per_call() -> None:
    from pytest_nnrecipe import _context

    ctx = _context.RunContext(nodeid="t")
    x = torch.randn(20, 3, 2, 2)
    with _context.activate(ctx):
        nn.assert_no_duplicates(x)
        with pytest.raises(
            AssertionError, match=r"20 of 20 samples hold bad values: \d+ above high"
        ):
            nn.assert_finite_data(x, high=0.0)
        nn.describe_data(x, show=False)
    assert [(r.check, r.model, r.passed) for r in ctx.records] == [
        ("assert_no_duplicates", "Tensor[20, 3, 2, 2] float32", True),
        ("assert_finite_data", "Tensor[20, 3, 2, 2] float32", False),
        ("describe_data", "Tensor[20, 3, 2, 2] float32", True),
    ]
    assert ctx.records[1].bad_samples == 20
