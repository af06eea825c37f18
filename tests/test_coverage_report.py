"""The recipe report: which steps ran on which models, what no test covers, JSON transport."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from pytest_nnrecipe import _recipe_coverage
from pytest_nnrecipe._records import (
    BalanceRecord,
    CheckRecord,
    DependencyRecord,
    DuplicatesRecord,
    TrainingRecord,
)


def _session() -> list[dict[str, Any]]:
    """Entries as an xdist worker would send them: through JSON."""
    eye = np.eye(3, dtype=bool)
    calls = [
        ("t.py::test_init", _training("assert_init_loss", "TinyMLP", True, target=2.3)),
        ("t.py::test_init_2", _training("assert_init_loss", "TinyMLP", False)),
        (
            "t.py::test_mix",
            DependencyRecord(
                check="assert_no_batch_mixing",
                model="TinyMLP",
                passed=True,
                matrix=eye,
                allowed=eye,
                batch=torch.zeros(3, 2),
                method="grad",
                mode="eval",
            ),
        ),
        (
            "t.py::test_causal",
            DependencyRecord(
                check="assert_causal",
                model="TinyLM",
                passed=False,
                matrix=eye,
                allowed=eye,
                method="grad",
                mode="eval",
            ),
        ),
        ("t.py::test_fit", _training("assert_can_overfit", "TinyLM", True, losses=[1.0, 0.1])),
        (
            "t.py::test_data",
            BalanceRecord(
                check="assert_balanced",
                model="Tensor",
                passed=True,
                n_samples=3,
                counts={"a": 3},
                under=[],
            ),
        ),
        (
            "t.py::test_data",
            DuplicatesRecord(
                check="assert_no_duplicates",
                model="Tensor",
                passed=False,
                n_samples=4,
                n_duplicates=1,
                n_groups=1,
                pairs=[(0, 3)],
            ),
        ),
    ]
    return [json.loads(json.dumps(_recipe_coverage.to_json(n, r))) for n, r in calls]


def _training(check: str, model: str, passed: bool, **fields: Any) -> TrainingRecord:
    return TrainingRecord(
        check=check, model=model, passed=passed, **{"losses": [2.0], "steps": 0, **fields}
    )


def test_the_report_counts_checks_per_model_and_names_failures() -> None:
    text = _recipe_coverage.build_report(_session())
    lines = text.splitlines()
    assert lines[0] == "Recipe coverage: 7 check calls in 6 tests on 2 models; 3 failed."
    mlp = lines.index(next(line for line in lines if line.startswith("TinyMLP ")))
    assert lines[mlp].split()[-4:] == ["ran", "passed", "caught", "failed"]
    assert lines[mlp + 1].split() == ["assert_init_loss", "2", "1", "0", "1", "FAILED"]
    assert lines[mlp + 2].split() == ["assert_no_batch_mixing", "1", "1", "0", "0"]
    lm = lines.index(next(line for line in lines if line.startswith("TinyLM ")))
    assert lines[lm + 1].split() == ["assert_can_overfit", "1", "1", "0", "0"]
    assert lines[lm + 2].split() == ["assert_causal", "1", "0", "0", "1", "FAILED"]
    data = lines.index(next(line for line in lines if line.startswith("data checks ")))
    assert lines[data + 1].split() == ["assert_no_duplicates", "1", "0", "0", "1", "FAILED"]
    assert lines[data + 2].split() == ["assert_balanced", "1", "1", "0", "0"]


def test_a_check_that_failed_where_the_test_expected_it_is_a_caught_bug() -> None:
    record = _training("assert_init_loss", "TinyMLP", False)
    entries = [
        json.loads(json.dumps(_recipe_coverage.to_json("t.py::test_a", record, expected=True))),
        _recipe_coverage.to_json("t.py::test_b", record),
        _recipe_coverage.to_json(
            "t.py::test_c", _training("assert_init_loss", "TinyMLP", True), expected=True
        ),
    ]
    assert [e["caught"] for e in entries] == [True, False, False]
    text = _recipe_coverage.build_report(entries)
    assert text.splitlines()[0].endswith("; 1 failed, 1 caught bug.")
    assert "assert_init_loss 3 1 1 1 FAILED" in " ".join(text.split())
    assert _rows(text)["Verify loss @ init / Init well"] == ["3", "1 FAILED (1 test caught a bug)"]
    assert "Tensor" not in text  # data sources are not models


def _rows(text: str) -> dict[str, list[str]]:
    """The steps table as step name -> [tests, verdict]."""
    width = max(len(step.name) for step in _recipe_coverage.STEPS)
    return {line[:width].strip(): line[width:].split(maxsplit=1) for line in text.splitlines()}


def test_the_steps_table_says_which_steps_ran_and_which_failed() -> None:
    rows = _rows(_recipe_coverage.build_report(_session()))
    assert rows["Verify loss @ init / Init well"] == ["2", "1 FAILED"]
    assert rows["Use backprop to chart dependencies"] == ["2", "1 FAILED"]
    assert rows["Overfit one batch"] == ["1", "ok"]
    assert rows["Become one with the data"] == ["1", "1 FAILED"]
    assert rows["Input-independent baseline"] == ["-", "not covered"]


def test_uncovered_steps_are_listed_with_how_to_cover_them() -> None:
    text = _recipe_coverage.build_report(_session())
    tail = " ".join(text[text.index("Not covered by any test") :].split())  # lines wrap
    for step in [
        "Input-independent baseline: assert_beats_input_independent_baseline",
        "Verify decreasing training loss: assert_optimizer_covers, assert_loss_decreases, "
        "assert_params_update",
        "Don't trust LR decay defaults: assert_lr_schedule",
        "Fix random seed: assert_deterministic",
        "Visualize just before the net: run with --nn-artifacts DIR",
        "Generalize a special case: Hypothesis tests",
    ]:
        assert f"- {step}" in tail
    for covered in ["Overfit one batch", "Use backprop", "Verify loss @ init"]:
        assert covered not in tail
    # Per model: the model steps its checks did not reach.
    assert "not checked on this model: Fix random seed; Input-independent baseline;" in text


def test_artifacts_and_hypothesis_tests_cover_their_steps() -> None:
    text = _recipe_coverage.build_report(
        _session(), artifacts_dir="pics", artifacts_written=4, property_tests=3
    )
    rows = _rows(text)
    assert rows["Visualize just before the net"] == ["all", "4 pictures in pics"]
    assert rows["Visualize prediction dynamics"] == [
        "1",
        "pictures of loss and predictions",
    ]
    assert rows["Generalize a special case"] == ["3", "Hypothesis tests ran"]
    assert _rows(_recipe_coverage.build_report(_session()))["Visualize prediction dynamics"] == [
        "1",
        "text curves only (no --nn-artifacts)",
    ]
    tail = text[text.index("Not covered by any test") :]
    assert "Visualize" not in tail and "Generalize" not in tail


def test_every_step_covered_says_so() -> None:
    checks = ["assert_no_duplicates", "assert_init_loss", "assert_can_overfit",
              "assert_beats_input_independent_baseline", "assert_loss_decreases",
              "assert_causal", "assert_lr_schedule", "assert_deterministic"]  # fmt: skip
    entries = [_recipe_coverage.Entry(f"t::{c}", c, "M", True) for c in checks]
    text = _recipe_coverage.build_report(
        entries, artifacts_dir="d", artifacts_written=2, property_tests=1
    )
    assert text.endswith("Every recipe step is covered.")


def test_an_artifacts_directory_with_no_picture_in_it_covers_no_visualisation() -> None:
    text = _recipe_coverage.build_report(_session(), artifacts_dir="pics", artifacts_written=0)
    rows = _rows(text)
    assert rows["Visualize just before the net"] == ["-", "no picture written to pics"]
    assert rows["Visualize prediction dynamics"] == ["1", "text curves only (no picture written)"]
    tail = text[text.index("Not covered by any test") :]
    assert "- Visualize just before the net: run with --nn-artifacts DIR" in tail
    assert "- Visualize prediction dynamics:" in tail


def test_the_report_fits_80_columns_without_colour_codes() -> None:
    long_model = "AVeryLongModelClassNameThatWouldOverflowTheColumnsOfTheTable" * 2
    entries = [
        *_session(),
        _recipe_coverage.to_json(
            "t::x", CheckRecord(check="assert_causal", model=long_model, passed=True)
        ),
    ]
    text = _recipe_coverage.build_report(entries, artifacts_dir="/a/very/long/path/" * 6)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "\x1b" not in text


def test_an_empty_session_lists_every_step_as_uncovered() -> None:
    text = _recipe_coverage.build_report([])
    assert text.startswith("Recipe coverage: 0 check calls in 0 tests on 0 models; 0 failed.")
    assert text.count("\n  - ") == len(_recipe_coverage.STEPS)


def test_records_travel_as_small_json_without_arrays_or_tensors() -> None:
    record = TrainingRecord(
        check="assert_can_overfit",
        model="TinyMLP",
        passed=False,
        losses=[1.0, 0.5],
        target=0.01,
        steps=40,
        mode="train",
        optimizer="x" * 500,
        batch=torch.zeros(2, 3),
        predictions=[np.eye(2)],
        rtol=float("nan"),
    )
    data = _recipe_coverage.to_json("t.py::test_a[1]", record)
    assert data == {
        "nodeid": "t.py::test_a[1]",
        "check": "assert_can_overfit",
        "model": "TinyMLP",
        "passed": False,
        "caught": False,
        "facts": {"steps": 40, "mode": "train", "target": 0.01},
    }
    entry = _recipe_coverage.from_json(json.loads(json.dumps(data)))
    assert entry == _recipe_coverage.Entry(
        "t.py::test_a[1]",
        "assert_can_overfit",
        "TinyMLP",
        False,
        facts=(("mode", "train"), ("steps", 40), ("target", 0.01)),
    )
    assert entry.step == "Overfit one batch"
    assert _recipe_coverage.from_json(_recipe_coverage.to_json("ignored", entry)) == entry


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"check": "assert_causal", "model": "M", "passed": True}, id="no nodeid"),
        pytest.param(["assert_causal"], id="not a mapping"),
    ],
)
def test_a_malformed_entry_is_a_value_error(data: Any) -> None:
    with pytest.raises(ValueError, match="not a check entry"):
        _recipe_coverage.from_json(data)


def test_every_public_check_maps_to_one_recipe_step() -> None:
    known = {check for step in _recipe_coverage.STEPS for check in step.checks}
    for check in ["assert_no_batch_mixing", "assert_causal", "assert_init_loss",
                  "assert_can_overfit", "assert_loss_decreases",
                  "assert_beats_input_independent_baseline", "assert_params_update",
                  "assert_lr_schedule", "assert_no_duplicates", "assert_disjoint",
                  "assert_consistent_labels", "assert_finite_data", "assert_balanced",
                  "assert_normalized", "assert_augmentation_consistent"]:  # fmt: skip
        assert check in known, check
    pairs = [check for step in _recipe_coverage.STEPS for check in step.checks]
    assert len(pairs) == len(set(pairs))
