"""Which tensor of a model's output a check looks at (``output=``)."""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch

from pytest_nnrecipe._outputs import select

A, B = torch.zeros(2), torch.ones(2)


@dataclasses.dataclass
class Out:
    hidden: torch.Tensor
    logits: torch.Tensor


@dataclasses.dataclass
class NoLogits:
    note: str
    hidden: torch.Tensor


Pair = collections.namedtuple("Pair", ["first", "second"])


@pytest.mark.parametrize(
    ("out", "output", "expected"),
    [
        pytest.param(A, None, A, id="tensor"),
        pytest.param(("x", A, B), None, A, id="first-tensor-of-tuple"),
        pytest.param([A, B], 1, B, id="index"),
        pytest.param([A, B], -1, B, id="negative-index"),
        pytest.param({"h": A, "logits": B}, None, B, id="logits-of-dict"),
        pytest.param({"h": A, "z": B}, None, A, id="first-tensor-of-dict"),
        pytest.param({"h": A, "z": B}, "z", B, id="key"),
        pytest.param(Out(A, B), None, B, id="dataclass-logits"),
        pytest.param(NoLogits("n", A), None, A, id="dataclass-first-tensor"),
        pytest.param(Out(A, B), "hidden", A, id="attribute"),
        pytest.param(Pair(A, B), "second", B, id="namedtuple-field"),
        pytest.param((A, B), lambda o: o[1], B, id="callable"),
    ],
)
def test_it_selects_the_documented_tensor(out, output, expected) -> None:
    assert select(out, output) is expected


def test_it_reads_logits_of_a_hugging_face_model_output() -> None:
    import transformers  # installed by the test extra

    out = transformers.modeling_outputs.CausalLMOutput(logits=B)
    assert select(out) is B


@pytest.mark.parametrize(
    ("out", "output", "match"),
    [
        pytest.param(("a", 1), None, r"no tensor in it; pass output=", id="no-tensor"),
        pytest.param({"h": A}, "logits", r"output='logits' finds no tensor.*\['h'\]", id="key"),
        pytest.param([A], 3, r"output=3 finds no tensor", id="index"),
        pytest.param(A, lambda o: "x", r"returned str, not a tensor", id="callable"),
    ],
)
def test_it_names_output_when_nothing_matches(out, output, match) -> None:
    with pytest.raises(ValueError, match=match):
        select(out, output)


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        pytest.param({"h": A, "logits": B}, B, id="logits-of-dict"),
        pytest.param({"note": "n", "h": A}, A, id="the-only-tensor"),
        pytest.param(NoLogits("n", A), A, id="dataclass-only-tensor"),
        pytest.param((A, B), A, id="tuple-first-tensor"),
    ],
)
def test_with_single_a_mapping_with_one_tensor_or_logits_is_still_read(out, expected) -> None:
    assert select(out, single=True) is expected


def test_with_single_a_mapping_of_several_tensors_and_no_logits_needs_output() -> None:
    out = {"embedding": torch.zeros(8, 16), "scores": torch.zeros(8, 4)}
    with pytest.raises(
        ValueError,
        match=r"a dict with 2 tensors and no 'logits': 'embedding' \(8, 16\), 'scores' \(8, 4\)"
        r"\. .*Pass output=, e\.g\. output='embedding'",
    ):
        select(out, single=True)
    assert select(out) is out["embedding"]  # the structural checks keep the documented rule
