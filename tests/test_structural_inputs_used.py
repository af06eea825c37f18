"""assert_inputs_used: every input influences the output. A wrapper that drops the attention
mask, a feature column a wrong slice leaves out, an argument never passed on are each named
with what was tried and the likely cause; correct models pass (HF models with dict inputs
too); ride-along inputs may be declared; misuse is named; nothing is lost."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from pytest_nnrecipe import InputsUsed, assert_inputs_used

transformers.logging.set_verbosity_error()

CONFIG = transformers.BertConfig(
    vocab_size=64,
    max_position_embeddings=16,
    num_hidden_layers=1,
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=2,
    num_labels=3,
)


def bert_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (4, 10), generator=gen)
    mask = torch.ones(4, 10, dtype=torch.long)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


class Classifier(nn.Module):
    """A BERT-style classifier behind a wrapper, as user code writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.bert = transformers.BertForSequenceClassification(CONFIG)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.logits


class MaskDroppingClassifier(Classifier):
    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.bert(input_ids=input_ids, token_type_ids=token_type_ids).logits


class SliceOneShort(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x[:, :4])  # the batch has 5 features


class TwoInputs(nn.Module):
    def __init__(self, read_second: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 2)
        self.read_second = read_second

    def forward(self, x, scale):
        return self.lin(x) * (scale if self.read_second else 1.0)


class ThresholdedInput(nn.Module):
    """Reads its input only through a comparison: no gradient reaches it, the values do."""

    def forward(self, x):
        return (x > 0).float().sum(-1)


def test_a_correct_bert_style_classifier_with_dict_inputs_passes():
    result = assert_inputs_used(Classifier(), bert_batch())
    assert isinstance(result, InputsUsed)
    assert result.inputs == ("input_ids", "attention_mask", "token_type_ids")
    assert result.by_perturbation == result.inputs  # integer inputs: perturbation decides
    assert result.noise is not None and result.noise.exact


def test_a_wrapper_that_drops_the_attention_mask_is_caught_naming_it():
    with pytest.raises(AssertionError) as info:
        assert_inputs_used(MaskDroppingClassifier(), bert_batch())
    text = str(info.value)
    assert "assert_inputs_used failed: attention_mask does not influence the output" in text
    assert "0/1 values flipped at" in text
    assert "no output value moved" in text
    assert "attention_mask is never read: not passed on to the encoder?" in text


def test_a_hugging_face_model_passes_and_labels_are_a_declared_ride_along():
    model = transformers.BertForSequenceClassification(CONFIG)
    batch = dict(bert_batch(), labels=torch.tensor([0, 1, 2, 0]))
    with pytest.raises(
        AssertionError, match=r"(?s)labels does not influence.*ignore=\('labels',\)"
    ):
        assert_inputs_used(model, batch)
    result = assert_inputs_used(model, batch, ignore="labels")
    assert result.ignored == ("labels",)
    assert "labels" not in result.inputs


def test_a_feature_column_dropped_by_a_slice_is_named():
    x = torch.randn(6, 5)
    with pytest.raises(
        AssertionError, match=r"(?s)inputs column 4 does not influence.*gradient is exactly 0"
    ):
        assert_inputs_used(SliceOneShort(), x, feature_dim=-1)
    full = nn.Linear(5, 2)
    result = assert_inputs_used(full, x, feature_dim=-1)
    assert result.columns == 5
    assert len(result.by_gradient) == 5  # float columns: one backward decides


def test_an_argument_never_passed_on_is_named_and_the_correct_model_passes():
    args = (torch.randn(6, 5), torch.randn(6, 1))
    with pytest.raises(AssertionError, match=r"inputs\[1\] does not influence the output"):
        assert_inputs_used(TwoInputs(read_second=False), args)
    assert assert_inputs_used(TwoInputs(read_second=True), args).by_gradient == (
        "inputs[0]",
        "inputs[1]",
    )


def test_an_input_read_only_through_a_cut_gradient_path_is_used_by_perturbation():
    result = assert_inputs_used(ThresholdedInput(), torch.randn(16, 8))
    assert result.by_gradient == ()
    assert result.by_perturbation == ("inputs",)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: assert_inputs_used("model", torch.randn(2, 3)), TypeError, r"model= must be"),
        (lambda: assert_inputs_used(nn.Linear(3, 2), {}), ValueError, r"inputs= holds no tensor"),
        (
            lambda: assert_inputs_used(nn.Linear(3, 2), torch.randn(2, 3), ignore="mask"),
            ValueError,
            r"ignore=\('mask',\) names 'mask', which is not one of the inputs \('inputs'\)",
        ),
        (
            lambda: assert_inputs_used(nn.Linear(3, 2), torch.randn(2, 3), feature_dim=0),
            ValueError,
            r"feature_dim=0 splits no float input into columns",
        ),
        (
            lambda: assert_inputs_used(nn.Linear(3, 2), torch.randn(2, 3), train="yes"),
            TypeError,
            r"train='yes' must be True or False",
        ),
    ],
    ids=["model", "no-tensor", "ignore-unknown", "feature-dim-batch", "train"],
)
def test_misuse_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_nothing_is_lost():
    model = MaskDroppingClassifier()
    model.train()
    batch = bert_batch()
    copies = {k: v.clone() for k, v in batch.items()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with pytest.raises(AssertionError):
        assert_inputs_used(model, batch)
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(copies[k], v) for k, v in batch.items())
    assert torch.equal(rng, torch.get_rng_state())
