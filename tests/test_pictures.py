"""PNG pictures of what the checks saw: sizes, content, file names, and the dispatcher."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from pytest_nnrecipe import _png
from pytest_nnrecipe._png import _canvas, _charts, _grids, _matrix
from pytest_nnrecipe._records import (
    BalanceRecord,
    CheckRecord,
    DependencyRecord,
    ScheduleRecord,
    TrainingRecord,
    ValuesRecord,
)


def _pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _size(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def _count_colour(path: str | Path, hex_colour: str, tol: int = 12) -> int:
    rgb = np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)])
    return int((np.abs(_pixels(path).astype(int) - rgb).max(axis=-1) <= tol).sum())


def _eye_with_leak(n: int, leak: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    allowed = np.eye(n, dtype=bool)
    depends = allowed.copy()
    if leak is not None:
        depends[leak] = True
    return depends, allowed


_g = torch.Generator().manual_seed(0)
_CURVE = [2.3 * float(np.exp(-k / 20)) + 1e-3 for k in range(120)]
_LOGITS = [torch.randn(8, 5, generator=_g) for _ in range(6)]

PICTURES: list[Any] = [
    pytest.param(
        lambda p: _png.dependency_matrix(*_eye_with_leak(8, (3, 0)), p),
        _matrix.SIZE,
        id="B x B matrix",
    ),
    pytest.param(
        lambda p: _png.dependency_matrix(
            np.tril(np.ones((300, 300), bool)),
            np.tril(np.ones((300, 300), bool)),
            p,
            rows="output step",
            cols="input step",
        ),
        _matrix.SIZE,
        id="T x T matrix, downsampled",
    ),
    pytest.param(lambda p: _png.loss_curve(_CURVE, p, target=0.01), _charts.LOSS_SIZE, id="loss"),
    pytest.param(
        lambda p: _png.loss_curve(
            _CURVE, p, target=0.01, predictions=_LOGITS, targets=torch.arange(8) % 5
        ),
        _charts.LOSS_WITH_DYNAMICS_SIZE,
        id="loss with prediction dynamics",
    ),
    pytest.param(
        lambda p: _png.init_loss(2.4, p, expected=1.6, highest=2.2, lowest=1.2, noise=0.2),
        _charts.INIT_LOSS_SIZE,
        id="loss at init",
    ),
    pytest.param(
        lambda p: _png.lr_curve([0.1 * 0.9**k for k in range(80)], p, total_steps=200, floor=1e-3),
        _charts.LR_SIZE,
        id="lr schedule",
    ),
    pytest.param(
        lambda p: _png.class_histogram({"cat": 40, "dog": 3}, p, min_share=0.2),
        _charts.CLASSES_SIZE,
        id="class histogram",
    ),
    pytest.param(
        lambda p: _png.batch(torch.rand(10, 3, 12, 12, generator=_g), p),
        _grids.GRID_SIZE,
        id="RGB images",
    ),
    pytest.param(
        lambda p: _png.batch(np.random.rand(5, 28, 28), p),
        _grids.GRID_SIZE,
        id="N x H x W images",
    ),
    pytest.param(
        lambda p: _png.batch(torch.randn(6, 10, generator=_g), p),
        _grids.HEATMAP_SIZE,
        id="table heatmap",
    ),
    pytest.param(
        lambda p: _png.batch(torch.randint(0, 30, (3, 9), generator=_g), p),
        _grids.HEATMAP_SIZE,
        id="token ids",
    ),
    pytest.param(
        lambda p: _png.batch(torch.randn(4, 20, 3, generator=_g), p),
        _grids.HEATMAP_SIZE,
        id="sequences",
    ),
    pytest.param(
        lambda p: _png.conv_weights(torch.nn.Conv2d(3, 12, 5).weight, p),
        _grids.GRID_SIZE,
        id="conv2d filters",
    ),
    pytest.param(
        lambda p: _png.conv_weights(torch.nn.Conv1d(4, 6, 3).weight, p),
        _grids.GRID_SIZE,
        id="conv1d filters",
    ),
]


@pytest.mark.parametrize(("draw", "size"), PICTURES)
def test_each_picture_is_a_png_of_its_declared_size(
    tmp_path: Path, draw: Any, size: tuple[int, int]
) -> None:
    path = draw(tmp_path / "p.png")
    assert path == str(tmp_path / "p.png")
    assert _size(path) == size
    assert _pixels(path).std() > 10  # something is drawn, not a blank canvas


def test_the_size_holds_under_a_tight_bbox_rc_setting(tmp_path: Path) -> None:

    with matplotlib.rc_context({"savefig.bbox": "tight", "figure.dpi": 37}):
        path = _png.loss_curve([3.0, 2.0, 1.0], tmp_path / "l.png")
    assert _size(path) == _charts.LOSS_SIZE


def test_forbidden_cells_are_red_and_absent_when_there_are_none(tmp_path: Path) -> None:
    leak = _png.dependency_matrix(*_eye_with_leak(6, (4, 1)), tmp_path / "leak.png")
    clean = _png.dependency_matrix(*_eye_with_leak(6, None), tmp_path / "clean.png")
    # The legend swatch is red in both; the leaking cell adds a large red block.
    assert _count_colour(leak, _canvas.FORBIDDEN) > _count_colour(clean, _canvas.FORBIDDEN) + 1000


def test_a_single_leak_in_a_large_matrix_stays_visible(tmp_path: Path) -> None:
    allowed = np.tril(np.ones((400, 400), bool))
    depends = allowed.copy()
    one = depends.copy()
    one[7, 350] = True
    leak = _png.dependency_matrix(one, allowed, tmp_path / "leak.png")
    clean = _png.dependency_matrix(depends, allowed, tmp_path / "clean.png")
    assert (
        _count_colour(leak, _canvas.FORBIDDEN, tol=40)
        > _count_colour(clean, _canvas.FORBIDDEN, tol=40) + 20
    )


def test_prediction_dynamics_show_the_probability_of_the_true_class() -> None:
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0], [0.0, 0.0]])
    series, label, _ = _charts.prediction_series([logits, logits], torch.tensor([0, 1, 1]))
    assert label == "p(true class)"
    np.testing.assert_allclose(series[0], [0.5, 0.0, 0.5], atol=1e-6)
    # Class scores of a sequence model (N, T, V) against token targets (N, T): mean over T.
    seq = torch.zeros(2, 3, 4)
    seq[:, :, 2] = 50.0
    series, _, _ = _charts.prediction_series([seq], torch.tensor([[2, 2, 2], [2, 0, 0]]))
    np.testing.assert_allclose(series[0], [1.0, 1 / 3], atol=1e-6)


def test_the_baseline_run_is_drawn_next_to_the_real_one_and_samples_name_their_class(
    tmp_path: Path,
) -> None:
    flat = [1.4] * 30
    real = [1.4 * 0.9**k for k in range(30)]
    alone = _charts.loss_curve(real, tmp_path / "alone.png", target=0.7)
    both = _charts.loss_curve(real, tmp_path / "both.png", target=0.7, baseline=flat)
    # The baseline is a dashed red line across the whole width; only the legend swatch without.
    red = _canvas.FORBIDDEN
    assert _count_colour(both, red, tol=40) > _count_colour(alone, red, tol=40) + 200
    assert _charts._class_labels(torch.tensor([2, 0, 1]), 2) == [2, 0]
    assert _charts._class_labels(torch.rand(3, 2), 2) is None  # soft targets: no one class


def test_prediction_dynamics_keep_scalar_predictions_and_their_targets() -> None:
    preds = [torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.5]])]
    series, _, targets = _charts.prediction_series(preds, torch.tensor([[3.0], [4.0]]))
    np.testing.assert_allclose(series, [[1.0, 2.0], [1.5, 2.5]])
    np.testing.assert_allclose(targets, [3.0, 4.0])
    assert _charts.prediction_series(None) is None
    assert _charts.prediction_series([]) is None


@pytest.mark.parametrize(
    ("shape", "images"),
    [
        pytest.param((8, 3, 32, 32), True, id="NCHW RGB"),
        pytest.param((8, 1, 28, 28), True, id="NCHW grey"),
        pytest.param((8, 32, 32, 3), True, id="NHWC"),
        pytest.param((8, 28, 28), True, id="NHW square"),
        pytest.param((8, 20, 5), False, id="sequence N T F"),
        pytest.param((8, 16), False, id="table"),
        pytest.param((8, 16, 4, 4), False, id="16 channels"),
    ],
)
def test_it_draws_images_only_when_the_batch_looks_like_images(
    shape: tuple[int, ...], images: bool
) -> None:
    assert _grids.looks_like_images(shape) is images


@pytest.mark.parametrize(
    ("nodeid", "readable"),
    [
        pytest.param("tests/test_m.py::test_a", "tests.test_m.py--test_a", id="function"),
        pytest.param(
            "tests/test_m.py::TestA::test_b[cpu-3]",
            "tests.test_m.py--TestA--test_b-cpu-3",
            id="class and params",
        ),
        pytest.param(
            "t.py::test_x[a/b c:d]", "t.py--test_x-a.b_c_d", id="odd characters in params"
        ),
        pytest.param("./t.py::test_y", "t.py--test_y", id="leading dot slash"),
    ],
)
def test_file_stems_are_readable_and_safe(nodeid: str, readable: str) -> None:
    stem = _png.file_stem(nodeid)
    head, crc = stem.rsplit("-", 1)
    assert head == readable and len(crc) == 8
    assert all(ch.isalnum() or ch in "._-" for ch in stem)


def test_file_stems_stay_unique_and_short() -> None:
    ids = ["t.py::test[a/b]", "t.py::test[a.b]", "t.py::test[a b]", "t.py::test[a_b]"]
    long = ["t.py::test[" + "x" * 300 + "1]", "t.py::test[" + "x" * 300 + "2]"]
    stems = [_png.file_stem(i) for i in ids + long]
    assert len(set(stems)) == len(stems)
    assert max(len(s) for s in stems) <= _png._artifacts.MAX_STEM + 9


def _structural(check: str, **extra: Any) -> DependencyRecord:
    depends, allowed = _eye_with_leak(4, (2, 0))
    fields = {"matrix": depends, "allowed": allowed, "method": "grad", "mode": "eval"}
    fields["unit"] = "step" if check == "assert_causal" else "sample"
    return DependencyRecord(check=check, model="Mixer", passed=False, **{**fields, **extra})


def _training(check: str, **fields: Any) -> TrainingRecord:
    return TrainingRecord(check=check, model="CNN", passed=False, **{"steps": 2, **fields})


RECORDS: list[Any] = [
    pytest.param(
        _structural("assert_no_batch_mixing", batch=torch.randn(4, 6)),
        ["dependencies", "batch"],
        id="batch mixing",
    ),
    pytest.param(
        _structural("assert_causal", batch=torch.randint(0, 9, (2, 4))),
        ["dependencies", "batch"],
        id="causal",
    ),
    pytest.param(
        _training(
            "assert_can_overfit",
            losses=[2.0, 1.0, 0.5],
            target=0.1,
            predictions=[torch.randn(2, 3, generator=_g)] * 2,
            prediction_steps=[0, 2],
            batch=torch.randn(2, 3, 8, 8, generator=_g),
            first_layer_weight=torch.randn(4, 3, 3, 3, generator=_g),
        ),
        ["loss", "batch", "first-layer"],
        id="overfit with conv weights",
    ),
    pytest.param(
        _training("assert_loss_decreases", losses=[2.0, 2.0]),
        ["loss"],
        id="a loss curve without a batch or conv weights",
    ),
    pytest.param(
        ScheduleRecord(
            check="assert_lr_schedule",
            model="LambdaLR",
            passed=False,
            lrs=[0.1, 0.0],
            total_steps=10,
            floor=0.001,
            min_fraction=0.01,
        ),
        ["lr"],
        id="lr schedule",
    ),
    pytest.param(
        BalanceRecord(
            check="assert_balanced",
            model="Tensor",
            passed=False,
            n_samples=10,
            counts={"a": 9, "b": 1},
            under=["b"],
            min_share=0.25,
        ),
        ["classes"],
        id="balance",
    ),
    pytest.param(
        _training(
            "assert_init_loss",
            losses=[2.3],
            batch={"input_ids": torch.zeros(2, 3, dtype=torch.long), "mask": None},
        ),
        ["loss", "batch-input_ids"],
        id="keyword inputs",
    ),
    pytest.param(
        ValuesRecord(
            check="assert_finite_data",
            model="Tensor",
            passed=False,
            n_samples=3,
            bad_samples=3,
            counts={"nan": 3},
        ),
        [],
        id="NaN counts are not classes",
    ),
    pytest.param(
        _structural("assert_no_batch_mixing", allowed=None),
        [],
        id="matrix without allowed",
    ),
    pytest.param(
        CheckRecord(check="assert_causal", model="LM", passed=False), [], id="nothing recorded"
    ),
]


@pytest.mark.parametrize(("record", "pictures"), RECORDS)
def test_the_dispatcher_writes_the_pictures_each_record_has_data_for(
    tmp_path: Path, record: Any, pictures: list[str]
) -> None:
    written = _png.write_artifacts(record, tmp_path / "out", "stem")
    check = record.check
    assert written == [str(tmp_path / "out" / f"stem-{check}-{p}.png") for p in pictures]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == sorted(
        Path(w).name for w in written
    )
    for path in written:
        assert _size(path)[0] > 0


def test_one_undrawable_picture_warns_and_the_others_are_written(tmp_path: Path) -> None:
    record = _training(
        "assert_can_overfit", losses=[1.0, 0.5], first_layer_weight=torch.zeros(3, 3)
    )  # 2-D: no conv
    with pytest.warns(RuntimeWarning, match="could not draw the first-layer picture"):
        written = _png.write_artifacts(record, tmp_path, "s")
    assert [Path(w).name for w in written] == ["s-assert_can_overfit-loss.png"]


def test_a_test_s_pictures_cover_failed_checks_numbered_in_call_order(tmp_path: Path) -> None:
    loss = {"losses": [1.0, 0.9], "steps": 1}
    records = [
        TrainingRecord(check="assert_loss_decreases", model="A", passed=True, **loss),
        TrainingRecord(check="assert_loss_decreases", model="B", passed=False, **loss),
        TrainingRecord(check="assert_can_overfit", model="B", passed=True, **loss),
    ]
    nodeid = "tests/test_x.py::test_both"
    stem = _png.file_stem(nodeid)
    failed = _png.write_test_artifacts(nodeid, records, tmp_path / "f")
    assert [Path(p).name for p in failed] == [f"{stem}-assert_loss_decreases-2-loss.png"]
    every = _png.write_test_artifacts(nodeid, records, tmp_path / "a", failed_only=False)
    assert [Path(p).name for p in every] == [
        f"{stem}-assert_loss_decreases-loss.png",
        f"{stem}-assert_loss_decreases-2-loss.png",
        f"{stem}-assert_can_overfit-loss.png",
    ]


def test_without_matplotlib_it_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pytest-nnrecipe\[plot\]") as info:
        _png.write_artifacts(_structural("assert_causal"), tmp_path, "s")
    assert isinstance(info.value, _png.PicturesUnavailable)
    assert "text pictures are in the messages" in str(info.value)
    # Nothing to draw: no matplotlib needed, no error.
    nothing = CheckRecord(check="assert_causal", model="M", passed=False)
    assert _png.write_artifacts(nothing, tmp_path, "s") == []
    assert list(tmp_path.iterdir()) == []


def test_drawing_leaves_the_global_matplotlib_state_alone(tmp_path: Path) -> None:

    backend = matplotlib.get_backend(auto_select=False)
    had_pyplot = "matplotlib.pyplot" in sys.modules
    # dict.items: plain reads (rcParams["backend"] would resolve the backend itself).
    rc = dict(dict.items(matplotlib.rcParams))
    _png.write_artifacts(_structural("assert_no_batch_mixing"), tmp_path, "s")
    assert matplotlib.get_backend(auto_select=False) == backend
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
    assert dict(dict.items(matplotlib.rcParams)) == rc


def test_the_init_loss_picture_shows_the_band_and_colours_the_loss_by_it(tmp_path: Path) -> None:
    band = {"expected": 1.6, "highest": 2.2, "lowest": 1.2, "noise": 0.2}
    outside = _png.init_loss(11.8, tmp_path / "out.png", **band)
    inside = _png.init_loss(1.7, tmp_path / "in.png", **band)
    red, green = _canvas.FORBIDDEN, _canvas.TARGET
    # The loss is a large dot: red outside the band, green inside it; the band is pale green.
    assert _count_colour(outside, red, tol=30) > _count_colour(inside, red, tol=30) + 60
    assert _count_colour(inside, green, tol=30) > _count_colour(outside, green, tol=30) + 60
    pale = _count_colour(inside, "#d5ebd5", tol=12)
    assert pale > 2000  # the band that passes covers a good part of the axis
    # Without a lower bound (rtol >= 1) the band reaches the left edge.
    one_sided = _png.init_loss(1.7, tmp_path / "one.png", expected=1.6, highest=2.2)
    assert _count_colour(one_sided, "#d5ebd5", tol=12) > pale


def test_an_init_loss_record_draws_the_band_not_a_one_point_curve(tmp_path: Path) -> None:
    record = TrainingRecord(
        check="assert_init_loss",
        model="M",
        passed=False,
        losses=[11.8],
        steps=0,
        target=1.6,
        noise_allowance=0.2,
        passing_band=(1.2, 2.2),
    )
    (path,) = _png.write_artifacts(record, tmp_path, "stem")
    assert _size(path) == _charts.INIT_LOSS_SIZE
    assert _count_colour(path, _canvas.FORBIDDEN, tol=30) > 60


def _drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Any, **layout: Any) -> Any:
    """The axes of the batch picture drawn from ``data``."""
    figures: list[Any] = []
    monkeypatch.setattr(_canvas, "save", lambda fig, path: figures.append(fig) or str(path))
    _grids.batch(data, tmp_path / "b.png", **layout)
    return figures[0].axes[0]


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        pytest.param((6, 4, 20), {"time_dim": -1}, id="channels first (B, C, T)"),
        pytest.param((6, 20, 4), {"time_dim": 1}, id="(B, T, C)"),
        pytest.param((20, 6, 4), {"batch_dim": 1, "time_dim": 0}, id="time-major (T, B, C)"),
        pytest.param((6, 20, 20), {"time_dim": 2}, id="square, not images"),
        pytest.param((6, 2, 2, 20), {"time_dim": 3}, id="(B, C, H, T)"),
    ],
)
def test_the_batch_picture_draws_samples_by_time_steps_whatever_the_layout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shape: tuple[int, ...], layout: Any
) -> None:
    data = torch.zeros(shape)
    t, b = layout["time_dim"] % len(shape), layout.get("batch_dim", 0)
    steps = torch.arange(20.0).reshape([20 if d == t else 1 for d in range(len(shape))])
    samples = 100 * torch.arange(6.0).reshape([6 if d == b else 1 for d in range(len(shape))])
    ax = _drawn(monkeypatch, tmp_path, data + steps + samples, **layout)
    assert ax.get_xlabel() == "time step"
    assert ax.get_ylabel() == "sample"
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(shown, 100 * np.arange(6.0)[:, None] + np.arange(20.0)[None, :])


def test_the_causal_record_passes_its_layout_to_the_batch_picture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record = DependencyRecord(
        check="assert_causal",
        model="M",
        passed=False,
        matrix=np.ones((20, 20), bool),
        allowed=np.tril(np.ones((20, 20), bool)),
        method="grad",
        mode="eval",
        batch=torch.zeros(3, 4, 20),
        time_dim=-1,
        unit="step",
    )
    layouts: list[Any] = []
    real = _grids.batch
    monkeypatch.setattr(
        _grids, "batch", lambda data, path, **kw: layouts.append(kw) or real(data, path, **kw)
    )
    _png.write_artifacts(record, tmp_path, "stem")
    assert [(kw["batch_dim"], kw["time_dim"]) for kw in layouts] == [(0, -1)]
