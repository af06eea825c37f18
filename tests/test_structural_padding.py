"""assert_padding_ignored: padded content never reaches a real output, checked exactly."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pytest_nnrecipe import PaddingResult, assert_padding_ignored

VOCAB, DIM = 20, 8


def _mask(lengths: list[int], steps: int, *, left: bool = False) -> torch.Tensor:
    pos = torch.arange(steps)
    n = torch.tensor(lengths)[:, None]
    return (pos >= steps - n if left else pos < n).long()


def _ids(mask: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, mask.shape, generator=gen)
    return ids * mask  # 0 = the pad token


class Classifier(nn.Module):
    """Embedding, self-attention, pooling, head; ``bug`` plants one padding bug."""

    def __init__(self, bug: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bug = bug
        self.emb = nn.Embedding(VOCAB, DIM)
        self.attn = nn.MultiheadAttention(DIM, 2, batch_first=True)
        self.head = nn.Linear(DIM, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(input_ids)
        if self.bug in ("mask not passed", "mask unused"):
            h = h + self.attn(h, h, h)[0]
        elif self.bug == "inverted mask":  # key_padding_mask wants True at padding
            h = h + self.attn(h, h, h, key_padding_mask=attention_mask.bool())[0]
        else:
            h = h + self.attn(h, h, h, key_padding_mask=attention_mask == 0)[0]
        if self.bug in ("pooling over padding", "mask unused"):
            return self.head(h.mean(1))
        m = attention_mask[..., None].to(h.dtype)
        if self.bug == "inverted mask":  # the same polarity slip in the pooling
            m = 1 - m
        return self.head((h * m).sum(1) / m.sum(1))


class Tagger(nn.Module):
    """Per-token outputs: embedding, attention, per-position head."""

    def __init__(self, bug: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bug = bug
        self.emb = nn.Embedding(VOCAB, DIM)
        self.attn = nn.MultiheadAttention(DIM, 2, batch_first=True)
        self.head = nn.Linear(DIM, 4)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        keep = mask.bool() if self.bug == "inverted mask" else ~mask.bool()
        if self.bug == "mask as given":  # a bool mask masks, a float one is added: 0/1
            h = h + F.scaled_dot_product_attention(h, h, h, attn_mask=mask[:, None, :])
        else:
            h = h + self.attn(h, h, h, key_padding_mask=keep)[0]
        return self.head(h)


def _inputs(left: bool = False) -> dict[str, torch.Tensor]:
    mask = _mask([6, 3, 4, 2], 6, left=left)
    return {"input_ids": _ids(mask), "attention_mask": mask}


@pytest.mark.parametrize("left", [False, True], ids=["right padding", "left padding"])
@pytest.mark.parametrize("method", ["auto", "grad", "perturb"])
def test_masked_mean_pooling_passes(left: bool, method: str) -> None:
    result = assert_padding_ignored(Classifier(), _inputs(left), method=method)  # type: ignore[arg-type]
    assert isinstance(result, PaddingResult)
    assert result.pooled and result.padded == 9 and not result.matrix.any()
    assert result.method.startswith(method if method != "auto" else "grad")


@pytest.mark.parametrize("left", [False, True], ids=["right padding", "left padding"])
def test_a_per_token_model_with_its_mask_passes_positionally(left: bool) -> None:
    x = _inputs(left)
    result = assert_padding_ignored(Tagger(), (x["input_ids"], x["attention_mask"]), mask=1)
    assert not result.pooled and not result.matrix.any()


@pytest.mark.parametrize("method", ["grad", "perturb"])
def test_pooling_over_padding_fails_naming_the_pooling(method: str) -> None:
    with pytest.raises(AssertionError) as info:
        assert_padding_ignored(Classifier("pooling over padding"), _inputs(), method=method)  # type: ignore[arg-type]
    text = str(info.value)
    assert re.search(r"pooled output of sample \d depends on the content of padded position", text)
    assert "Likely cause: a pooling over padded positions" in text
    assert "sample 1: [3, 4, 5]" in text and "sample 3: [2, 3, 4, 5]" in text
    assert "sample 0:" not in text.split("Where:")[1].split("\n")[0]  # sample 0 has no padding


def test_a_mask_not_passed_to_attention_is_named() -> None:
    with pytest.raises(AssertionError, match="a layer before the pooling reads padded"):
        assert_padding_ignored(Classifier("mask not passed"), _inputs())


def test_a_mask_the_model_never_reads_is_named() -> None:
    with pytest.raises(AssertionError, match="the mask does not reach the output"):
        assert_padding_ignored(Classifier("mask unused"), _inputs())


@pytest.mark.parametrize("model", [Classifier("inverted mask"), Tagger("inverted mask")])
def test_an_inverted_mask_is_named(model: nn.Module) -> None:
    x = _inputs()
    inputs: Any = x if isinstance(model, Classifier) else (x["input_ids"], x["attention_mask"])
    with pytest.raises(AssertionError, match="a mask with the wrong polarity") as info:
        assert_padding_ignored(
            model, inputs, mask="attention_mask" if isinstance(model, Classifier) else 1
        )
    assert "#" in str(info.value)  # the picture draws the leaking positions


def test_a_per_token_leak_names_sample_position_and_output_position() -> None:
    x = _inputs()
    bool_mask = x["attention_mask"].bool()
    assert_padding_ignored(Tagger("mask as given"), (x["input_ids"], bool_mask), mask=1)
    with pytest.raises(AssertionError) as info:
        assert_padding_ignored(Tagger("mask as given"), (x["input_ids"], bool_mask.float()), mask=1)
    text = str(info.value)
    assert re.search(r"output of sample \d at position \d depends on the content of padded", text)
    assert re.search(r"\(sample \d, position \d\) -> output of sample \d at position \d", text)
    assert "Likely cause: a mask of the wrong dtype" in text


def test_float_content_is_checked_by_gradient() -> None:
    mask = _mask([5, 2, 3], 5)
    x = torch.randn(3, 5, DIM)
    net = nn.MultiheadAttention(DIM, 2, batch_first=True)

    def model(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return net(x, x, x, key_padding_mask=mask == 0)[0]

    assert assert_padding_ignored(model, (x, mask), mask=1).method == "grad"
    with pytest.raises(AssertionError, match="padded position"):
        assert_padding_ignored(lambda x, mask: net(x, x, x)[0], (x, mask), mask=1)


def test_the_inputs_and_the_model_are_left_as_they_were() -> None:
    model = Classifier()
    x = _inputs()
    before = {k: v.clone() for k, v in x.items()}
    params = [p.detach().clone() for p in model.parameters()]
    state = torch.get_rng_state()
    assert_padding_ignored(model, x, method="perturb")
    assert all(torch.equal(before[k], x[k]) for k in x)
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True))
    assert torch.equal(state, torch.get_rng_state()) and model.training


def test_msg_replaces_the_headline_and_keeps_the_evidence() -> None:
    with pytest.raises(AssertionError, match=r"(?s)failed: my words.*Finding: pooled output"):
        assert_padding_ignored(Classifier("pooling over padding"), _inputs(), msg="my words")


BAD = [
    ("no such key", dict(mask="mask"), ValueError, r"mask='mask' is not a key of inputs="),
    ("mask of the wrong type", dict(mask=1.5), TypeError, r"mask=1.5 must be a key"),
    ("pooled not a bool", dict(pooled="yes"), TypeError, r"pooled='yes' must be None"),
    ("same dims", dict(time_dim=0), ValueError, r"time_dim=0 and batch_dim=0 name the same"),
    ("unknown method", dict(method="guess"), ValueError, r"method="),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"), [r[1:] for r in BAD], ids=[r[0] for r in BAD]
)
def test_misuse_names_the_argument_and_the_fix(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        assert_padding_ignored(Classifier(), _inputs(), **kwargs)


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.ones(4, 6, dtype=torch.long), "marks every position real: there is no padding"),
        (torch.zeros(4, 6, dtype=torch.long), r"marks no real position in sample\(s\) \[0, 1"),
        (torch.full((4, 6), -1e9), "holds values other than 0 and 1"),
        (torch.ones(4, dtype=torch.long), "it must be 2-D"),
    ],
    ids=["no padding", "no real position", "additive mask", "1-D mask"],
)
def test_a_mask_it_cannot_read_is_a_value_error(mask: torch.Tensor, match: str) -> None:
    x = _inputs()
    x["attention_mask"] = mask
    with pytest.raises(ValueError, match=match):
        assert_padding_ignored(Classifier(), x)


def _bert(**config: Any) -> Any:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
        **config,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(cfg)


@pytest.mark.parametrize("method", ["auto", "perturb"])
def test_bert_with_right_padding_and_its_attention_mask_passes(method: str) -> None:
    x = _inputs()
    x["token_type_ids"] = torch.zeros_like(x["input_ids"])
    result = assert_padding_ignored(_bert(), x, method=method)  # type: ignore[arg-type]
    assert result.pooled and not result.matrix.any()


def test_bert_with_left_padding_pools_a_pad_token_and_says_so() -> None:
    with pytest.raises(AssertionError) as info:
        assert_padding_ignored(_bert(), _inputs(left=True))
    text = str(info.value)
    assert "depends on the content of padded position 0 of sample" in text
    assert "Where: sample 1: [0]; sample 2: [0]; sample 3: [0]" in text
    assert "a pooling that reads one position, 0, which is padding in 3 sample(s)" in text


def test_bert_without_its_attention_mask_leaks_everywhere() -> None:
    bert = _bert()
    with pytest.raises(AssertionError, match="the mask does not reach the output"):
        assert_padding_ignored(
            lambda input_ids, attention_mask: bert(input_ids=input_ids), _inputs()
        )


def test_check_recipe_runs_the_padding_step_on_inputs_with_a_padded_mask() -> None:
    from pytest_nnrecipe import check_recipe

    targets = torch.tensor([0, 1, 2, 0])
    good = check_recipe(Classifier, _inputs(), targets, nn.CrossEntropyLoss(), checks="padding")
    assert good["padding"].verdict == "passed"
    with pytest.raises(AssertionError, match=r"(?s)padding\s+failed.*a pooling over padded"):
        check_recipe(
            lambda: Classifier("pooling over padding"),
            _inputs(),
            targets,
            nn.CrossEntropyLoss(),
            checks="padding",
        )
    unpadded = check_recipe(
        Classifier, torch.ones(4, 6).long(), targets, nn.CrossEntropyLoss(), checks="padding"
    )
    assert unpadded["padding"].verdict == "skipped"
    assert (
        "no 'attention_mask' among the inputs (the step runs on dict inputs"
        in unpadded["padding"].message
    )


@pytest.mark.nn_gpu
@pytest.mark.parametrize("method", ["grad", "perturb"])
def test_on_cuda_padding_is_charted_exactly_or_against_the_measured_noise(
    assert_padding_ignored: Any, method: str
) -> None:
    assert_padding_ignored(Classifier(), _inputs(left=True), method=method)
    with pytest.raises(AssertionError, match="a pooling over padded positions"):
        assert_padding_ignored(Classifier("pooling over padding"), _inputs(), method=method)


def test_a_non_finite_gradient_is_inconclusive_and_auto_turns_to_perturbation() -> None:
    mask = _mask([4, 2], 4)
    x = torch.rand(2, 4, 3) + 0.5

    def model(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x * mask[..., None]).sqrt().sum(1)  # d sqrt at 0: NaN at the padding

    with pytest.raises(AssertionError, match=r"inconclusive: the gradient at padded position"):
        assert_padding_ignored(model, (x, mask), mask=1, method="grad")
    result = assert_padding_ignored(model, (x, mask), mask=1)
    assert result.method == "perturb (grad was inconclusive: non-finite gradients)"


@pytest.mark.parametrize("kernel", [1, 3])
def test_channels_first_content_with_time_dim_minus_one(kernel: int) -> None:
    mask = _mask([6, 4, 3], 6)
    conv = nn.Conv1d(2, 4, kernel, padding=kernel // 2)

    def model(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x.dtype)
        return (conv(x) * m).sum(-1) / m.sum(-1)

    inputs = (torch.randn(3, 2, 6), mask)
    if kernel == 1:
        assert_padding_ignored(model, inputs, mask=1, time_dim=-1)
        return
    with pytest.raises(AssertionError, match=r"(?s)Where: sample 1: \[4\]; sample 2: \[3\].*"):
        assert_padding_ignored(model, inputs, mask=1, time_dim=-1)


class Seq2Seq(nn.Module):
    """An encoder over ``input_ids`` (masked attention, masked mean) and a decoder over
    ``decoder_input_ids`` of the same length that mixes its own positions: the decoder's
    inputs are not governed by the encoder's ``attention_mask``."""

    def __init__(self, bug: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bug = bug
        self.enc = Classifier(bug)
        self.dec = nn.Embedding(VOCAB, 3)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        decoder_input_ids: torch.Tensor,
    ) -> torch.Tensor:
        pooled = self.enc(input_ids, attention_mask)  # (B, 3)
        d = self.dec(decoder_input_ids)
        return d + d.mean(1, keepdim=True) + pooled[:, None, :]


def _seq2seq_inputs() -> dict[str, torch.Tensor]:
    x = _inputs()
    x["decoder_input_ids"] = _ids(torch.ones_like(x["input_ids"]), seed=1)
    return x


def test_ids_holds_the_other_inputs_as_given() -> None:
    # by default every input with the mask's length is content: the decoder's ids (not masked
    # by the encoder's mask) reach every decoder output and the check says where
    with pytest.raises(AssertionError) as info:
        assert_padding_ignored(Seq2Seq(), _seq2seq_inputs())
    assert "content resampled: inputs['input_ids'], inputs['decoder_input_ids']" in str(info.value)
    result = assert_padding_ignored(Seq2Seq(), _seq2seq_inputs(), ids="input_ids")
    assert result.resampled == ("inputs['input_ids']",) and not result.matrix.any()
    # the encoder's bug is still caught with the decoder's ids held
    with pytest.raises(AssertionError, match=r"(?s)Where: sample 1: \[3, 4, 5\];.*resampled: inp"):
        assert_padding_ignored(
            Seq2Seq("pooling over padding"), _seq2seq_inputs(), ids=["input_ids"]
        )


def test_ids_names_positional_inputs_as_given_around_the_mask() -> None:
    x = _seq2seq_inputs()
    model = Seq2Seq()
    args = (x["attention_mask"], x["decoder_input_ids"], x["input_ids"])

    def positional(mask: torch.Tensor, dec: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return model(ids, mask, dec)

    result = assert_padding_ignored(positional, args, mask=0, ids=2, time_dim=1)
    assert result.resampled == ("inputs[2]",)
    with pytest.raises(AssertionError, match=r"content resampled: inputs\[1\]\n"):
        assert_padding_ignored(positional, args, mask=0, ids=[-2], time_dim=1)


IDS_BAD = [
    ("no such key", dict(ids="tokens"), ValueError, r"ids='tokens' names 'tokens', which is not"),
    ("the mask", dict(ids="attention_mask"), ValueError, r"names the mask inputs\['attention_"),
    ("not a name", dict(ids=1.5), TypeError, r"ids=1.5 must be None"),
    ("a list with a float", dict(ids=["input_ids", 2.0]), TypeError, r"holds 2.0; name inputs"),
    ("empty", dict(ids=[]), TypeError, r"ids=\[\] must be None"),
    ("no time dim", dict(ids="labels"), ValueError, r"names inputs\['labels'\] \(shape \(4,\)\), "),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"), [r[1:] for r in IDS_BAD], ids=[r[0] for r in IDS_BAD]
)
def test_ids_misuse_names_the_argument_and_the_fix(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    x = _inputs()
    x["labels"] = torch.zeros(4, dtype=torch.long)
    with pytest.raises(error, match=match):
        assert_padding_ignored(lambda labels=None, **kw: Classifier()(**kw), x, **kwargs)
