"""The invariance checks on a transform: any transform, a permutation along a dimension, a
change of memory layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from .._inputs import Inputs
from .._results import Invariance
from ._comparison import Comparison
from ._transforms import Permutation, applied, channels_last, check_callable, same, strided

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Model, ModelInputs, OutputSelector


def assert_invariant(
    model: Model,
    inputs: ModelInputs,
    transform: Callable[[Any], Any],
    *,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert ``model(transform(inputs)) == model(inputs)`` within the model's measured
    rounding error at this precision.

    Args:
        model: a ``torch.nn.Module`` or any callable taking ``inputs``.
        inputs: a tensor, a tuple/list or a dict of tensors.
        transform: takes ``inputs`` as given (same kind) and returns the transformed inputs.
        output: which tensor of the model's output to compare.
        train: run in train mode (default eval).
        msg: replaces the failure headline; the evidence stays.
    """
    __tracebackhide__ = True
    check_callable(transform, "transform")
    comparison = Comparison(
        "assert_invariant", model, inputs, output, train, msg, describe="the transform"
    )
    return comparison.run([("transform", applied(transform, inputs), same, same)])


def assert_equivariant(
    model: Model,
    inputs: ModelInputs,
    transform: Callable[[Any], Any],
    output_transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert ``model(transform(inputs)) == output_transform(model(inputs))`` within the
    model's measured rounding error at this precision.

    Args:
        model, inputs, output, train, msg: as :func:`assert_invariant`.
        transform: takes ``inputs`` as given and returns the transformed inputs.
        output_transform: takes the checked output tensor and returns what the output of the
            transformed inputs must be (e.g. the same roll, permutation or flip).
    """
    __tracebackhide__ = True
    check_callable(transform, "transform")
    check_callable(output_transform, "output_transform")
    comparison = Comparison(
        "assert_equivariant", model, inputs, output, train, msg, describe="the transform"
    )
    variant = ("transform", applied(transform, inputs), output_transform, same)
    return comparison.run([variant])


def assert_permutation_invariant(
    model: Model,
    inputs: ModelInputs,
    *,
    dim: int = 1,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that permuting the inputs along ``dim`` (a set's elements) leaves the output
    unchanged, within the model's measured rounding error.

    Every input tensor with ``dim`` of the first one's length is permuted the same way; the
    permutation moves every element (a derangement, drawn from the test's seed).
    """
    __tracebackhide__ = True
    perm = Permutation.drawn(Inputs.of(inputs, model=model), dim)
    comparison = Comparison(
        "assert_permutation_invariant", model, inputs, output, train, msg, perm.describe
    )
    return comparison.run([perm.variant(same)])


def assert_permutation_equivariant(
    model: Model,
    inputs: ModelInputs,
    *,
    dim: int = 1,
    output_dim: int | None = None,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that permuting the inputs along ``dim`` permutes the output the same way along
    ``output_dim`` (default ``dim``): per-element or per-token models.
    """
    __tracebackhide__ = True
    perm = Permutation.drawn(Inputs.of(inputs, model=model), dim)
    n = len(perm.order)
    odim = dim if output_dim is None else output_dim
    if isinstance(odim, bool) or not isinstance(odim, int):
        raise TypeError(f"output_dim={output_dim!r} must be an int (a dimension of the output).")

    def moved(out: torch.Tensor) -> torch.Tensor:
        if not -out.dim() <= odim < out.dim() or out.shape[odim] != n:
            raise ValueError(
                f"the checked output (shape {tuple(out.shape)}) has no dimension of "
                f"{n} elements at output_dim={odim}; pass the output's dimension "
                "that follows the permuted inputs (or output= to pick another tensor)."
            )
        return out.index_select(odim, perm.order.to(out.device))

    comparison = Comparison(
        "assert_permutation_equivariant", model, inputs, output, train, msg, perm.describe
    )
    return comparison.run([perm.variant(moved)])


def assert_layout_invariant(
    model: Model,
    inputs: ModelInputs,
    *,
    output: OutputSelector = None,
    train: bool = False,
    msg: str | None = None,
) -> Invariance:
    """Assert that the memory layout of the inputs changes nothing: a non-contiguous copy of
    every float input and, for 4-D (5-D) float inputs, a ``channels_last`` (``_3d``) copy give
    the same output, within the model's measured rounding error.
    """
    __tracebackhide__ = True
    ins = Inputs.of(inputs, model=model)
    variants = [("non-contiguous", ins.map(lambda _label, t: strided(t)), same, same)]
    if any(t.dim() in (4, 5) and t.is_floating_point() for _label, t in ins.tensors()):
        variants.append(("channels_last", ins.map(lambda _label, t: channels_last(t)), same, same))
    comparison = Comparison(
        "assert_layout_invariant",
        model,
        inputs,
        output,
        train,
        msg,
        describe="a change of memory layout",
    )
    return comparison.run(variants)
