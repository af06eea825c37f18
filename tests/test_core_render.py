"""Text pictures: one legend, one downsampling rule, 80 columns, no colour codes."""

from __future__ import annotations

import numpy as np

from pytest_nnrecipe import _render


def test_a_single_violation_survives_downsampling() -> None:
    n = 200
    allowed = np.tril(np.ones((n, n), dtype=bool))
    depends = allowed.copy()
    depends[10, 150] = True
    text = _render.dependency_matrix(depends, allowed, rows="output step", cols="input step")
    lines = text.splitlines()
    body = [line for line in lines if line[:4].strip().isdigit()]
    assert len(body) == 32
    assert sum(line.count(_render.VIOLATION) for line in body) == 1
    assert "downsampled" in text
    assert all(len(line) <= 80 for line in lines)
    assert "\x1b" not in text


def test_a_small_matrix_is_drawn_cell_by_cell() -> None:
    allowed = np.eye(4, dtype=bool)
    depends = allowed.copy()
    depends[3, 0] = True
    rows = _render.dependency_matrix(depends, allowed, rows="out", cols="in").splitlines()
    assert rows[2:6] == ["  0 o...", "  1 .o..", "  2 ..o.", "  3 #..o"]


def test_blocks_cover_the_range_without_gaps() -> None:
    for n, k in [(5, 32), (100, 32), (33, 32), (1, 3)]:
        blocks = _render.blocks(n, k)
        assert len(blocks) == min(n, k)
        assert [i for b in blocks for i in b] == list(range(n))


def test_a_curve_names_first_min_last_and_target() -> None:
    text = _render.curve([3.0, 2.0, 1.0, float("nan"), 0.5], target=0.1)
    assert "first 3, min 0.5, last 0.5, target 0.1" in text
    assert "?" in text.splitlines()[1]


def test_bars_are_proportional_to_counts() -> None:
    lines = _render.bars({"a": 40, "b": 10}, width=20).splitlines()
    assert lines[0].count("█") == 20 and lines[1].count("█") == 5


def test_a_single_nan_survives_curve_downsampling() -> None:
    values = [1.0 / (k + 1) for k in range(300)]
    values[137] = float("nan")
    lines = _render.curve(values, width=60).splitlines()
    assert len(lines[1].strip()) == 60
    assert lines[1].count("?") == 1
    assert lines[2] == "  (one character = 5 steps (mean); ? = NaN/Inf)"
