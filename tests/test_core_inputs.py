"""Inputs as the API accepts them: a tensor, positional or keyword arguments."""

from __future__ import annotations

import pytest
import torch

from pytest_nnrecipe._inputs import Inputs


def test_it_calls_the_model_with_each_form() -> None:
    x, y = torch.ones(3, 2), torch.zeros(3, 2)

    def model(a, b=None, *, scale=1.0):
        return a * scale if b is None else a + b

    assert torch.equal(Inputs.of(x).call(model), x)
    assert torch.equal(Inputs.of((x, y)).call(model), x + y)
    assert torch.equal(Inputs.of({"a": x, "scale": 2.0}).call(model), 2 * x)


def test_it_maps_tensors_and_passes_other_entries_through() -> None:
    x = torch.ones(3, 2)
    mapped = Inputs.of((x, "keep", {"not": "a tensor"})).map(lambda label, t: t * 0)
    assert torch.equal(mapped.args[0], torch.zeros(3, 2))
    assert mapped.args[1:] == ("keep", {"not": "a tensor"})
    assert [label for label, _ in Inputs.of({"ids": x}).tensors()] == ["inputs['ids']"]


def test_it_finds_the_batch_size_shared_by_every_tensor() -> None:
    size, labels = Inputs.of((torch.ones(4, 3), torch.ones(4))).batched(0)
    assert (size, labels) == (4, ["inputs[0]", "inputs[1]"])


@pytest.mark.parametrize(
    ("inputs", "batch_dim", "error", "match"),
    [
        pytest.param(3, 0, TypeError, r"inputs= must be a tensor.*got int", id="not-a-tensor"),
        pytest.param({1: torch.ones(2)}, 0, TypeError, r"non-string keys", id="int-keys"),
        pytest.param(("a",), 0, ValueError, r"holds no tensor", id="no-tensor"),
        pytest.param(torch.ones(2, 3), 2, ValueError, r"batch_dim=2 is out of range", id="dim"),
        pytest.param(
            (torch.ones(2, 3), torch.ones(3, 3)),
            0,
            ValueError,
            r"different batch sizes.*inputs\[0\] has 2, inputs\[1\] has 3",
            id="batch-sizes",
        ),
    ],
)
def test_it_rejects_bad_inputs_naming_the_argument(inputs, batch_dim, error, match) -> None:
    with pytest.raises(error, match=match):
        Inputs.of(inputs).batched(batch_dim)


class _ThreeInputs(torch.nn.Module):
    def forward(self, q, k, v, mask=None):
        return q + k + v


class _AnyInputs(torch.nn.Module):
    def forward(self, *xs):
        return sum(xs)


@pytest.mark.parametrize(
    ("model", "n"),
    [
        pytest.param(_ThreeInputs(), 3, id="module-with-3-same-shape-inputs"),
        pytest.param(_ThreeInputs(), 4, id="module-with-an-optional-4th"),
        pytest.param(_AnyInputs(), 9, id="module-with-star-args"),
        pytest.param(lambda q, k, v: q + k + v, 3, id="function-with-3-inputs"),
        pytest.param(torch.add, 2, id="builtin-without-a-signature"),
    ],
)
def test_same_shape_positional_arguments_the_model_takes_are_not_samples(model, n) -> None:
    xs = [torch.ones(4, 3) for _ in range(n)]
    assert Inputs.of(xs, model=model).args == tuple(xs)


def test_a_list_of_samples_is_told_apart_only_when_the_model_cannot_take_it() -> None:
    net = torch.nn.Linear(3, 2)
    samples = [torch.ones(3) for _ in range(4)]
    with pytest.raises(ValueError, match=r"model= takes 1 positional argument: Linear\.forward"):
        Inputs.of(samples, model=net)
    Inputs.of(samples)  # without a model: positional arguments, as the API says
    Inputs.of([torch.ones(3), torch.ones(2), torch.ones(3), torch.ones(3)], model=net)  # shapes
    handle = net.register_forward_pre_hook(lambda module, args: (torch.stack(args),))
    try:  # a pre-hook may take the arguments apart itself: no guessing
        assert torch.equal(Inputs.of(samples, model=net).call(net), net(*samples))
    finally:
        handle.remove()
