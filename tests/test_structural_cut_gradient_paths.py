"""Dependencies that no gradient shows: the forward cuts the gradient path (``.detach()``,
``torch.no_grad()``, ``.item()``, integer casts, ``round``) and the leak runs through the cut. With
``method="auto"`` a gradient pass that saw such a cut is confirmed by perturbation."""

from __future__ import annotations

import pytest
import torch

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing


def _mean_under_no_grad(x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return x + x.mean(0)


MIXING_THROUGH_A_CUT = [
    pytest.param(lambda x: x + x.mean(0).detach(), "detach", id="detached-batch-mean"),
    pytest.param(lambda x: x + x.data.mean(0), "data", id="batch-mean-of-data"),
    pytest.param(_mean_under_no_grad, "mean", id="batch-mean-under-no-grad"),
    pytest.param(lambda x: x / x.abs().max().item(), "item", id="scaled-by-batch-max-item"),
    pytest.param(lambda x: x + (10 * x.sum(0)).round(), "round", id="rounded-batch-sum"),
    pytest.param(lambda x: x + (10 * x.sum(0)).long(), "long", id="batch-sum-cast-to-int"),
]


@pytest.mark.parametrize(("model", "op"), MIXING_THROUGH_A_CUT)
def test_it_catches_batch_mixing_through_a_cut_gradient_path(model, op):
    with pytest.raises(AssertionError, match=rf"cuts the gradient path at '{op}'") as err:
        assert_no_batch_mixing(model, torch.randn(4, 3) + 2.0)
    assert "output of sample" in str(err.value)
    assert "method=perturb (gradients miss it" in str(err.value)


def test_it_catches_a_causal_leak_through_a_detached_mean_over_time():
    def leaky(x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(1) + x.mean(1, keepdim=True).detach()

    with pytest.raises(
        AssertionError, match=r"(?s)depends on input at step .*cuts the gradient path"
    ):
        assert_causal(leaky, torch.randn(2, 6, 3), method="auto")


def test_a_correct_model_with_a_cut_passes_and_says_both_methods_ran():
    def relu_by_mask(x: torch.Tensor) -> torch.Tensor:
        return (x * (x > 0)).cumsum(1)  # the mask cuts the path, but only within a sample

    x = torch.randn(3, 5, 2)
    assert assert_no_batch_mixing(relu_by_mask, x).method.startswith("grad+perturb")
    assert assert_causal(relu_by_mask, x).method.startswith("grad+perturb")
    # without a cut the gradient pass alone decides
    assert assert_no_batch_mixing(lambda x: x.cumsum(1), x).method == "grad"


def test_a_model_that_rejects_perturbed_inputs_keeps_the_gradient_verdict():
    def validating(x: torch.Tensor) -> torch.Tensor:
        if bool((x < 0).any()):  # a cut; perturbed inputs (noise) fail this check
            raise ValueError("inputs must be non-negative")
        return x.sqrt().cumsum(1)

    x = torch.rand(3, 5, 2) + 0.1
    result = assert_no_batch_mixing(validating, x)
    assert result.method.startswith("grad (the forward cuts the gradient path at lt")
    assert "ValueError: inputs must be non-negative" in result.method
    assert assert_causal(validating, x).method.startswith("grad (the forward cuts")
