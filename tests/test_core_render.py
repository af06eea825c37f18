"""Text pictures: one legend, one downsampling rule, 80 columns, no colour codes."""

from __future__ import annotations

import numpy as np

from pytest_nnrecipe import _text_pictures


def test_a_single_violation_survives_downsampling() -> None:
    n = 200
    allowed = np.tril(np.ones((n, n), dtype=bool))
    depends = allowed.copy()
    depends[10, 150] = True
    text = _text_pictures.dependency_matrix(depends, allowed, rows="output step", cols="input step")
    lines = text.splitlines()
    body = [line for line in lines if line[:4].strip().isdigit()]
    assert len(body) == 32
    assert sum(line.count(_text_pictures.VIOLATION) for line in body) == 1
    assert "downsampled" in text
    assert all(len(line) <= 80 for line in lines)
    assert "\x1b" not in text


def test_a_small_matrix_is_drawn_cell_by_cell() -> None:
    allowed = np.eye(4, dtype=bool)
    depends = allowed.copy()
    depends[3, 0] = True
    rows = _text_pictures.dependency_matrix(depends, allowed, rows="out", cols="in").splitlines()
    assert rows[2:6] == ["  0 o...", "  1 .o..", "  2 ..o.", "  3 #..o"]


def test_column_labels_are_never_cut() -> None:
    for n in [*range(2, 40), 99, 100, 101, 200, 1000]:
        eye = np.eye(n, dtype=bool)
        lines = _text_pictures.dependency_matrix(eye, eye, rows="o", cols="i").splitlines()
        ticks = next(line for line in lines if line.lstrip().startswith("0"))[4:]
        cols = _text_pictures.blocks(n, _text_pictures.MAX_SIDE)
        start = 0
        for word in ticks.split():
            at = ticks.index(word, start)
            assert int(word) == cols[at].start, (n, ticks)  # the whole number of its column
            start = at + len(word)
        assert ticks.split()[0] == "0"


def test_blocks_cover_the_range_without_gaps() -> None:
    for n, k in [(5, 32), (100, 32), (33, 32), (1, 3)]:
        blocks = _text_pictures.blocks(n, k)
        assert len(blocks) == min(n, k)
        assert [i for b in blocks for i in b] == list(range(n))


def test_a_curve_names_first_min_last_and_target() -> None:
    text = _text_pictures.curve([3.0, 2.0, 1.0, float("nan"), 0.5], target=0.1)
    assert "first 3, min 0.5, last 0.5, target 0.1" in text
    assert "?" in text.splitlines()[1]


def test_bars_are_proportional_to_counts() -> None:
    lines = _text_pictures.bars({"a": 40, "b": 10}, width=20).splitlines()
    assert lines[0].count("█") == 20 and lines[1].count("█") == 5


def test_a_single_nan_survives_curve_downsampling() -> None:
    values = [1.0 / (k + 1) for k in range(300)]
    values[137] = float("nan")
    lines = _text_pictures.curve(values, width=60).splitlines()
    assert len(lines[1].strip()) == 60
    assert lines[1].count("?") == 1
    assert lines[2] == "  (one character = 5 steps (mean); ? = NaN/Inf)"


def test_curves_share_one_scale_so_their_levels_compare() -> None:
    text = _text_pictures.curves({"low": [1.0, 1.0, 1.0], "high": [10.0, 10.0, 10.0]}, log=False)
    lines = text.splitlines()
    assert lines[0] == "loss over 3 steps, one shared scale: ▁ = 1 ... █ = 10"
    assert lines[1] == "  low   ▁▁▁" and lines[2] == "  high  ███"
    # A target is a flat row on the same scale; a shorter curve ends early on the shared x axis.
    text = _text_pictures.curves(
        {"a": [4.0, 3.0, 2.0, 1.0], "b": [4.0, 4.0]}, target=2.5, log=False
    )
    rows = {line.split()[0]: line.split()[1] for line in text.splitlines()[1:4]}
    assert rows == {"a": "█▆▃▁", "b": "██", "target": "▅▅▅▅"}
    assert all(len(line) <= 80 for line in text.splitlines())


def test_one_log_rule_for_every_curve() -> None:
    assert _text_pictures.use_log([2.3, 1.0, 0.01])  # positive, more than two decades
    assert not _text_pictures.use_log([2.3, 0.5])  # within two decades: linear
    assert not _text_pictures.use_log([2.3, 0.0, 0.001])  # not all positive
    assert _text_pictures.use_log([0.1, float("nan"), 1e-4])  # non-finite values are ignored
    assert "log scale" in _text_pictures.curve([1.0, 1e-3])
    assert "log scale" not in _text_pictures.curve([1.0, 0.5])
    assert "(log)" in _text_pictures.curves(
        {"a": [1.0, 0.5], "b": [1e-3, 1e-3]}
    )  # all series together


def test_fit_cuts_in_the_middle_and_keeps_the_distinctive_end() -> None:
    name = "bert.encoder.layer.11.attention.self.query.weight"
    short = _text_pictures.fit(name, 30)
    assert short == "bert.….layer.11.….query.weight" and len(short) == 30
    assert "…" in short and _text_pictures.fit("lin.weight", 30) == "lin.weight"
    assert _text_pictures.fit("model.encoder.layer.11.attention.output.LayerNorm.weight", 36) == (
        "model.….layer.11.….LayerNorm.weight"
    )
    text = "a long sentence that is not a dotted name at all"
    assert len(_text_pictures.fit(text, 20)) == 20 and _text_pictures.fit(text, 20).endswith(
        "at all"
    )


def test_a_table_fits_80_columns_by_cutting_names_and_wrapping_the_last_column() -> None:
    names = [f"model.encoder.layer.{k}.attention.output.LayerNorm.weight" for k in (1, 11)]
    rows = [(n, "(768,)", "no gradient: ran in forward, cut off from the loss") for n in names]
    lines = _text_pictures.table(rows).splitlines()
    assert all(len(line) <= 80 for line in lines)
    first, second = (line.split()[0] for line in lines if not line.startswith("    "))
    assert first.endswith("LayerNorm.weight") and "…" in first
    assert "layer.1." in first and "layer.11." in second  # the layer numbers stay
    assert "cut off from the loss" in " ".join(line.strip() for line in lines)
    assert _text_pictures.table([("a.weight", "(3,)", "ok")]) == "  a.weight  (3,)  ok"
