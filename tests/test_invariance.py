"""Invariance and equivariance: values compared within the model's measured rounding error."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from pytest_nnrecipe import (
    Invariance,
    assert_equivariant,
    assert_invariant,
    assert_layout_invariant,
    assert_padding_invariant,
    assert_permutation_equivariant,
    assert_permutation_invariant,
)


class DeepSets(nn.Module):
    """phi per element, a sum over the set, rho: permutation invariant; ``positions=True``
    adds a learned embedding per slot (the bug: the set model reads positions)."""

    def __init__(self, positions: bool = False, size: int = 7) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.phi = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 16))
        self.rho = nn.Linear(16, 2)
        self.slot = nn.Parameter(torch.randn(size, 16)) if positions else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.phi(x)
        if self.slot is not None:  # a slot embedding, then a non-linearity: order matters
            h = torch.relu(h + self.slot)
        return self.rho(h.sum(1))


class PerElement(nn.Module):
    """Per-element outputs with set context (the set's mean): permutation equivariant;
    ``cumulative=True`` uses a running mean (order matters)."""

    def __init__(self, cumulative: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cumulative = cumulative
        self.f = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cumulative:
            ctx = x.cumsum(1) / torch.arange(1, x.shape[1] + 1)[:, None]
        else:
            ctx = x.mean(1, keepdim=True).expand_as(x)
        return self.f(torch.cat([x, ctx], -1))


def _set(seed: int, *, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(4, 7, 3, generator=gen) * scale).to(dtype)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("scale", "dtype"),
    [(1.0, torch.float32), (1000.0, torch.float32), (1.0, torch.bfloat16)],
    ids=["float32", "inputs x1000", "bfloat16"],
)
def test_a_sum_pooled_set_model_is_permutation_invariant(
    seed: int, scale: float, dtype: torch.dtype
) -> None:
    model = DeepSets().to(dtype)
    result = assert_permutation_invariant(model, _set(seed, scale=scale, dtype=dtype), dim=1)
    assert isinstance(result, Invariance)
    assert result.largest <= result.threshold and result.compared == 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_set_model_that_reads_positions_fails_with_where_and_ratio(dtype: torch.dtype) -> None:
    model = DeepSets(positions=True).to(dtype)
    with pytest.raises(AssertionError) as info:
        assert_permutation_invariant(model, _set(0, dtype=dtype), dim=1)
    text = str(info.value)
    assert re.search(r"the output changed under a permutation along dim=1 \(order \[", text)
    assert re.search(r"by up to \S+ at index \(\d, \d\), \S+ x the threshold", text)
    assert "Largest difference:" in text and "expected" in text
    assert re.search(r"Threshold \S+: 4 x the model's measured rounding error", text)
    assert "each input rerun in float64" in text


@pytest.mark.parametrize("seed", range(3))
def test_a_per_element_model_is_permutation_equivariant(seed: int) -> None:
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(seed))
    assert assert_permutation_equivariant(PerElement(), x, dim=1).compared == 40
    with pytest.raises(AssertionError, match="under a permutation along dim=1"):
        assert_permutation_equivariant(PerElement(cumulative=True), x, dim=1)


def test_a_circular_convolution_is_equivariant_to_circular_shifts() -> None:
    torch.manual_seed(0)
    circular = nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular")
    zeros = nn.Conv1d(2, 3, 3, padding=1)
    x = torch.randn(2, 2, 10)

    def shift(x: torch.Tensor) -> torch.Tensor:
        return x.roll(3, -1)

    assert_equivariant(circular, x, shift, shift)
    with pytest.raises(AssertionError, match=r"at index \(\d, \d, [0-9]\)"):
        assert_equivariant(zeros, x, shift, shift)


def test_a_flip_the_label_ignores_is_checked_with_assert_invariant() -> None:
    torch.manual_seed(0)
    pooled = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(2, 1, 6, 6)
    # a symmetric kernel is flip-invariant after global pooling; a random one is not
    with torch.no_grad():
        w = pooled[0].weight
        w.copy_((w + w.flip(-1)) / 2)
    assert_invariant(pooled, x, lambda x: x.flip(-1))
    torch.manual_seed(1)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten())
    with pytest.raises(AssertionError, match="the output changed under the transform"):
        assert_invariant(plain, x, lambda x: x.flip(-1))


class FlattenByHand(nn.Module):
    """Flattens by reading memory as if contiguous (``as_strided``): channels_last breaks it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(3 * 5 * 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.as_strided((x.shape[0], 75), (75, 1))
        return self.head(flat) + self.conv(x).mean((1, 2, 3))[:, None]


def test_a_convolutional_net_is_layout_invariant() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(100, 2))
    result = assert_layout_invariant(net, torch.randn(2, 3, 5, 5))
    assert result.variants == ("non-contiguous", "channels_last")


def test_a_model_that_reads_memory_order_is_not_layout_invariant() -> None:
    with pytest.raises(AssertionError) as info:
        assert_layout_invariant(FlattenByHand(), torch.randn(2, 3, 5, 5))
    text = str(info.value)
    assert "(channels_last copy of the inputs)" in text
    assert re.search(r"Variants: non-contiguous: same .*; channels_last: differs", text)


def test_the_inputs_and_the_model_are_left_as_they_were() -> None:
    model = DeepSets().train()
    x = _set(0)
    before = x.clone()
    params = [p.detach().clone() for p in model.parameters()]
    dtypes = [p.dtype for p in model.parameters()]
    assert_permutation_invariant(model, x)
    assert torch.equal(x, before) and model.training
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True))
    assert [p.dtype for p in model.parameters()] == dtypes


def test_msg_replaces_the_headline_and_keeps_the_evidence() -> None:
    with pytest.raises(AssertionError, match=r"(?s)failed: my words.*Finding: the output"):
        assert_permutation_invariant(DeepSets(positions=True), _set(0), msg="my words")


BAD: list[tuple[str, Any, type[Exception], str]] = [
    (
        "transform not callable",
        lambda: assert_invariant(DeepSets(), _set(0), "flip"),  # type: ignore[arg-type]
        TypeError,
        r"transform='flip' must be a callable",
    ),
    (
        "transform raises",
        lambda: assert_invariant(DeepSets(), _set(0), lambda x: x.flip(9)),
        ValueError,
        r"transform= raised IndexError",
    ),
    (
        "output transform changes the shape",
        lambda: assert_equivariant(DeepSets(), _set(0), lambda x: x, lambda y: y[:1]),
        ValueError,
        r"must keep the output's shape",
    ),
    (
        "dim out of range",
        lambda: assert_permutation_invariant(DeepSets(), _set(0), dim=5),
        ValueError,
        r"dim=5 is out of range",
    ),
    (
        "dim of one element",
        lambda: assert_permutation_invariant(DeepSets(), _set(0)[:, :1], dim=1),
        ValueError,
        r"dim=1 has 1 element",
    ),
    (
        "output_dim not in the output",
        lambda: assert_permutation_equivariant(PerElement(), _set(0)[..., :3], dim=1, output_dim=2),
        ValueError,
        r"no dimension of 7 elements at output_dim=2",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_misuse_names_the_argument_and_the_fix(
    call: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


class MaskedPool(nn.Module):
    """Token classifier with masked attention and masked mean pooling; ``over_padding=True``
    pools every position (more padding dilutes the mean)."""

    def __init__(self, over_padding: bool = False, per_token: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.over_padding, self.per_token = over_padding, per_token
        self.emb = nn.Embedding(20, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(input_ids)
        h = h + self.attn(h, h, h, key_padding_mask=attention_mask == 0)[0]
        if self.per_token:
            return self.head(h)
        if self.over_padding:
            return self.head(h.mean(1))
        m = attention_mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))


def _padded(seed: int = 0, *, left: bool = False) -> dict[str, torch.Tensor]:
    pos = torch.arange(6)
    n = torch.tensor([6, 3, 4, 2])[:, None]
    mask = (pos >= 6 - n if left else pos < n).long()
    ids = torch.randint(1, 20, mask.shape, generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids * mask, "attention_mask": mask}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("per_token", [False, True], ids=["pooled", "per token"])
def test_masked_models_are_padding_invariant(seed: int, side: str, per_token: bool) -> None:
    result = assert_padding_invariant(
        MaskedPool(per_token=per_token), _padded(seed, left=side == "left"), extra=3, side=side
    )
    assert result.variants == (f"{side} padding",)


def test_pooling_over_padding_changes_with_more_padding() -> None:
    with pytest.raises(AssertionError) as info:
        assert_padding_invariant(MaskedPool(over_padding=True), _padded())
    text = str(info.value)
    assert "the output changed under 2 more padded position(s) on the right" in text
    assert "x the threshold" in text and "each input rerun in float64" in text


def test_bert_with_its_mask_is_padding_invariant_on_the_right() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=20,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    bert = transformers.BertForSequenceClassification(cfg)
    assert_padding_invariant(bert, _padded(), extra=4)
    with pytest.raises(AssertionError, match="more padded position"):  # [CLS] moves under left
        assert_padding_invariant(bert, _padded(left=True), side="left")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(extra=0), ValueError, r"extra=0 must be a positive int"),
        (dict(side="top"), ValueError, r"side='top' must be 'right' or 'left'"),
        (dict(mask="pad"), ValueError, r"mask='pad' is not a key of inputs="),
        (dict(mask=2.0), TypeError, r"mask=2.0 must be a key"),
    ],
    ids=["no extra", "unknown side", "no such key", "mask of the wrong type"],
)
def test_padding_invariance_misuse_names_the_argument(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        assert_padding_invariant(MaskedPool(), _padded(), **kwargs)


@pytest.mark.nn_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_on_cuda_correct_models_pass_with_the_measured_noise(
    assert_permutation_invariant: Any,
    assert_layout_invariant: Any,
    assert_padding_invariant: Any,
    dtype: torch.dtype,
) -> None:
    # non-deterministic kernels and TF32 round differently: the threshold is measured there
    assert_permutation_invariant(DeepSets().to(dtype), _set(0, dtype=dtype))
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    assert_layout_invariant(net.to(dtype), torch.randn(4, 3, 16, 16).to(dtype))
    assert_padding_invariant(MaskedPool().to(dtype), _padded(), extra=3)
    with pytest.raises(AssertionError, match="x the threshold"):
        assert_permutation_invariant(DeepSets(positions=True).to(dtype), _set(0, dtype=dtype))
