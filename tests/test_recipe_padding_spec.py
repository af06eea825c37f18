"""``padding=`` of the token specs: a padded batch with an ``attention_mask``, so the recipe's
padding step runs from the specs, and every other step still holds on a correct model."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from pytest_nnrecipe import check_recipe, specs

VOCAB, SEQ_LEN = 16, 6
#: What the padded specs' baseline step trains on: token 0 everywhere, every position real.
BLANK = {"input_ids": 0, "attention_mask": 1}


class MaskedAttentionClassifier(nn.Module):
    """One self-attention layer over the real keys (a position always sees itself), then a
    mean over the real positions. ``pool_padding=True``: the plain mean over every position,
    padding included (the mask reaches the attention only)."""

    def __init__(self, classes: int = 3, width: int = 32, *, pool_padding: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(width, classes))
        self.pool_padding = pool_padding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = _attend(self.embed(input_ids), self.qkv, attention_mask, causal=False)
        if self.pool_padding:
            return self.head(h.mean(1))
        real = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * real).sum(1) / real.sum(1))


class MaskedCausalLM(nn.Module):
    """One causal self-attention layer with learned positions; ``use_mask=False`` takes the
    attention mask and never uses it (padded keys before a real query are read)."""

    def __init__(self, width: int = 32, *, use_mask: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.Parameter(torch.randn(SEQ_LEN, width) * 0.02)
        self.qkv = nn.Linear(width, 3 * width)
        self.mlp = nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, width))
        self.head = nn.Linear(width, VOCAB)
        self.use_mask = use_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids) + self.position[: input_ids.shape[1]]
        mask = attention_mask if self.use_mask else torch.ones_like(attention_mask)
        h = _attend(h, self.qkv, mask, causal=True)
        return self.head(h + self.mlp(h))


def _attend(h: torch.Tensor, qkv: nn.Linear, mask: torch.Tensor, *, causal: bool) -> torch.Tensor:
    t = h.shape[1]
    q, k, v = qkv(h).chunk(3, dim=-1)
    scores = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
    seen = mask.bool()[:, None, :] | torch.eye(t, dtype=torch.bool)
    if causal:
        seen = seen & torch.ones(t, t, dtype=torch.bool).tril()
    return h + scores.masked_fill(~seen, float("-inf")).softmax(-1) @ v


def _classification(padding: str | None = "right", **kwargs: Any) -> specs.RecipeSpec:
    return specs.sequence_classification(
        vocab_size=VOCAB, seq_len=SEQ_LEN, classes=3, padding=padding, **kwargs
    )


def _lm(padding: str | None, **kwargs: Any) -> specs.RecipeSpec:
    return specs.language_model(vocab_size=VOCAB, seq_len=SEQ_LEN, padding=padding, **kwargs)


def _padded(spec: specs.RecipeSpec) -> int:
    return int((spec.inputs["attention_mask"] == 0).sum())


def test_a_masked_pooling_classifier_passes_every_step_with_the_padding_step_run() -> None:
    spec = _classification("right")
    result = check_recipe(MaskedAttentionClassifier, **spec)
    ran = [s.name for s in result.steps if s.verdict != "skipped"]
    assert ran == [
        "inputs_used",
        "deterministic",
        "init_loss",
        "params_update",
        "loss_decreases",
        "baseline",
        "overfit",
        "batch_mixing",
        "padding",
    ]
    assert all(result[name].passed for name in ran), result
    assert result["inputs_used"].figure == "2 of 2 inputs used"  # the mask too
    assert result["padding"].figure == f"0 of {_padded(spec)} padded positions leak"
    assert result["padding"].result.pooled
    assert re.search(r"\n +11 padding ignored +padding +passed ", str(result))


@pytest.mark.parametrize("padding", ["right", "left"])
def test_a_masked_causal_lm_passes_every_step_with_causality_and_padding_run(
    padding: str,
) -> None:
    spec = _lm(padding)
    result = check_recipe(MaskedCausalLM, **spec)
    skipped = [s.name for s in result.steps if s.verdict == "skipped"]
    assert skipped == ["optimizer", "lr_schedule"], result
    assert result.passed
    assert result["causal"].figure == f"0 of {SEQ_LEN * (SEQ_LEN - 1) // 2} pairs leak"
    assert result["padding"].figure == f"0 of {_padded(spec)} padded positions leak"
    assert not result["padding"].result.pooled
    assert result["inputs_used"].figure == "2 of 2 inputs used"


def test_a_classifier_that_pools_over_padding_fails_the_padding_step_only() -> None:
    spec = _classification("right")
    with pytest.raises(AssertionError) as raised:
        check_recipe(lambda: MaskedAttentionClassifier(pool_padding=True), **spec)
    message = str(raised.value)
    assert "did not pass: padding (failed)." in message  # the mask reaches the attention
    leaking = _padded(spec)
    assert re.search(
        rf"padding ignored +padding +failed +\S+ +{leaking} of {leaking} padded positions "
        r"leak, e\.g\. sample \d+ position \d+",
        message,
    )
    assert re.search(
        r"assert_padding_ignored failed: pooled output of sample \d+ depends on the content "
        r"of padded position \d+ of sample \d+",
        message,
    )


def test_an_lm_that_ignores_its_mask_fails_the_padding_step_under_left_padding() -> None:
    spec = _lm("left")
    with pytest.raises(AssertionError) as raised:
        check_recipe(lambda: MaskedCausalLM(use_mask=False), **spec)
    message = str(raised.value)
    assert "did not pass: inputs_used (failed), padding (failed)." in message
    assert re.search(r"padding +failed .* padded positions leak, e\.g\. sample", message)
    assert re.search(
        r"output of sample \d+ at position \d+ depends on the content of padded position",
        message,
    )
    assert "unused: attention_mask" in message
    # Under right padding the padding only follows the real tokens: causality already keeps
    # it out, so the same model is padding-safe there (its mask is still unused).
    right = check_recipe(lambda: MaskedCausalLM(use_mask=False), **_lm("right"), checks="padding")
    assert right["padding"].passed


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("padding", ["right", "left"])
def test_the_padded_lm_batch_keeps_the_real_tokens_and_ignores_the_padded_targets(
    padding: str, seed: int
) -> None:
    plain, padded = _lm(None, seed=seed), _lm(padding, seed=seed)
    ids, mask = padded.inputs["input_ids"], padded.inputs["attention_mask"]
    assert mask.dtype == torch.int64 and set(mask.unique().tolist()) == {0, 1}
    lengths = mask.sum(1)
    assert lengths.max() == SEQ_LEN and lengths.min() < SEQ_LEN
    assert bool((lengths >= SEQ_LEN // 2).all())
    real = mask.bool()
    for b, n in enumerate(lengths.tolist()):
        side = slice(None, n) if padding == "right" else slice(SEQ_LEN - n, None)
        assert bool(real[b, side].all())  # contiguous real positions on the given side
        assert torch.equal(ids[b, side], plain.inputs[b, :n])
        assert torch.equal(padded.targets[b, side], plain.targets[b, :n])
    assert bool((ids[~real] == 0).all()) and bool((padded.targets[~real] == -100).all())
    first = ids[torch.arange(len(ids)), real.int().argmax(1)]  # each row's first real token
    assert len(set(first.tolist())) == len(first)
    assert padded.time_dim == 1
    assert padded.options["init_loss"] == {"expected": "uniform"}
    assert padded.options["baseline"] == {"zero": BLANK}


def test_the_padded_classification_batch_keeps_the_labels_and_the_real_tokens() -> None:
    plain, padded = _classification(None), _classification("left")
    assert torch.equal(padded.targets, plain.targets)
    ids, real = padded.inputs["input_ids"], padded.inputs["attention_mask"].bool()
    for b, n in enumerate(real.sum(1).tolist()):
        assert torch.equal(ids[b, SEQ_LEN - n :], plain.inputs[b, :n])
    assert padded.time_dim is None
    assert padded.options == {"baseline": {"zero": BLANK}}


def test_the_users_options_are_kept_next_to_the_baselines_zero() -> None:
    mine = {"overfit": {"max_steps": 300}, "baseline": {"steps": 50}}
    spec = _lm("right", options=mine)
    assert spec.options == {
        "overfit": {"max_steps": 300},
        "baseline": {"steps": 50, "zero": BLANK},
        "init_loss": {"expected": "uniform"},
    }
    assert mine == {"overfit": {"max_steps": 300}, "baseline": {"steps": 50}}  # not changed
    own = _classification("right", options={"baseline": {"zero": ["attention_mask"]}})
    assert own.options == {"baseline": {"zero": ["attention_mask"]}}


def _old_language_model(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The language-model batch as the builder drew it before ``padding=`` existed."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(VOCAB, (4, SEQ_LEN + 1), generator=gen)
    tokens[:, 0] = torch.randperm(VOCAB, generator=gen)[:4]
    return tokens[:, :-1], tokens[:, 1:]


def _old_sequence_classification(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(VOCAB, (8, SEQ_LEN), generator=gen)
    labels = (torch.arange(8) % 3)[torch.randperm(8, generator=gen)]
    return tokens, labels


@pytest.mark.parametrize("seed", [0, 3])
def test_without_padding_the_specs_are_as_before(seed: int) -> None:
    for spec, (inputs, targets) in [
        (_lm(None, seed=seed), _old_language_model(seed)),
        (_classification(None, seed=seed), _old_sequence_classification(seed)),
    ]:
        assert isinstance(spec.inputs, torch.Tensor)
        assert torch.equal(spec.inputs, inputs) and torch.equal(spec.targets, targets)
    assert "baseline" not in (_lm(None).options or {})
    assert _classification(None).options is None


BAD_PADDING = [
    ("middle", lambda: _classification("middle"), ValueError, r"padding='middle': pass None"),
    ("upper-case", lambda: _lm("Left"), ValueError, r"padding='Left': .*'right' .* or 'left'"),
    ("bool", lambda: _lm(True), TypeError, r"padding=True must be None \(no padding\), 'right'"),
    ("int", lambda: _classification(1), TypeError, r"padding=1 must be None"),
    (
        "one-position",
        lambda: specs.language_model(vocab_size=8, seq_len=1, padding="right"),
        ValueError,
        r"padding='right' needs seq_len >= 2 .*got seq_len=1",
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "match"), [b[1:] for b in BAD_PADDING], ids=[b[0] for b in BAD_PADDING]
)
def test_bad_padding_values_raise_naming_the_argument(
    build: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build()
