"""The padding and invariance checks in pytest: fixtures, --nn-report rows, --nn-artifacts."""

from __future__ import annotations

import fnmatch

import pytest

SUITE = """
import pytest
import torch
from torch import nn


class Pool(nn.Module):
    def __init__(self, masked):
        super().__init__()
        self.masked = masked
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids)
        m = attention_mask[..., None].float() if self.masked else torch.ones_like(h[..., :1])
        return self.head((h * m).sum(1) / m.sum(1))


def batch():
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    return {"input_ids": torch.randint(1, 10, (3, 4)) * mask, "attention_mask": mask}


def test_masked_pooling(assert_padding_ignored, assert_padding_invariant):
    assert assert_padding_ignored(Pool(True), batch()).pooled
    assert_padding_invariant(Pool(True), batch(), extra=3)


def test_pooling_over_padding(assert_padding_ignored):
    assert_padding_ignored(Pool(False), batch())


def test_sets(assert_permutation_invariant, assert_layout_invariant):
    sets = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
    assert_permutation_invariant(lambda x: sets(x).sum(1), torch.randn(2, 5, 3), dim=1)
    assert_layout_invariant(nn.Conv2d(3, 2, 3), torch.randn(2, 3, 5, 5))


def test_a_set_model_that_reads_positions(assert_permutation_invariant):
    slots = torch.randn(5, 3)
    assert_permutation_invariant(lambda x: torch.relu(x + slots).sum(1), torch.randn(2, 5, 3))
"""


def test_the_checks_are_fixtures_with_report_rows_and_pictures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_padding=SUITE)
    # a subprocess: torch and NumPy cannot be imported twice in one process
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--nn-report", "--nn-artifacts", "art"
    )
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*assert_padding_ignored failed: pooled output of sample * depends on the content "
            "of padded position *",
            "*Likely cause: the mask does not reach the output*",
            "assert_padding_ignored on Pool: FAILED (method=grad, mode=eval)",
            "  picture: art/*-assert_padding_ignored-dependencies.png",
        ]
    )
    pictures = sorted(p.name for p in (pytester.path / "art").iterdir())
    for picture in (
        "assert_padding_ignored-dependencies.png",
        "assert_padding_ignored-batch.png",
        "assert_permutation_invariant-difference.png",
        "assert_permutation_invariant-batch.png",
    ):
        assert any(name.endswith(picture) for name in pictures), (picture, pictures)
    lines = result.stdout.lines
    row = "Use backprop to chart dependencies * 4  2 FAILED"
    assert any(fnmatch.fnmatchcase(line, row) for line in lines), lines
    for check in ("assert_padding_invariant", "assert_permutation_invariant"):
        assert any(line.split()[:2] == [check, "1"] for line in lines), check
