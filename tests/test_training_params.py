"""assert_params_update: every trainable parameter gets a gradient and changes."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_params_update


class Net(nn.Module):
    def __init__(self, *, detach=False, unused=False, bias_before_bn=False, nan=False) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16) if bias_before_bn else nn.Identity()
        self.b = nn.Linear(8, 16)
        self.head = nn.Linear(16, 4)
        self.spare = nn.Linear(3, 3) if unused else None
        self.detach, self.nan = detach, nan

    def forward(self, x):
        b = self.b(x)
        h = self.bn(self.a(x)) + (b.detach() if self.detach else b)
        if self.nan:  # finite forward, nan gradient: d sqrt(u)/du at u = 0 is inf, times 0
            h = h + torch.sqrt(self.a.bias * 0).sum()
        return self.head(torch.relu(h))


def batch():
    return torch.randn(8, 8), torch.arange(8) % 4


def test_a_correct_model_updates_every_parameter():
    result = assert_params_update(Net(), *batch(), nn.CrossEntropyLoss())
    assert len(result.checked) == 6 and result.ignored == ()


def test_a_detached_branch_and_an_unused_layer_get_no_gradient():
    with pytest.raises(AssertionError) as info:
        assert_params_update(Net(detach=True, unused=True), *batch(), nn.CrossEntropyLoss())
    text = str(info.value)
    assert "4 of 8 trainable parameters do not learn" in text
    for name in ("b.weight", "b.bias", "spare.weight", "spare.bias"):
        assert f"{name} " in text
    assert "unused: spare never ran in forward" in text and "a.weight" not in text
    assert re.search(r"spare\.bias +\(3,\) +no gradient: its module never ran in forward", text)
    assert re.search(r"b\.weight +\(16, 8\) +no gradient: ran in forward, cut off", text)


class LongNames(nn.Module):
    """Hugging Face-style parameter names: model.encoder.layer.N.attention.output...."""

    def __init__(self) -> None:
        super().__init__()
        block = lambda: nn.ModuleDict(  # noqa: E731
            {"attention": nn.ModuleDict({"output": nn.ModuleDict({"LayerNorm": nn.Linear(8, 8)})})}
        )
        self.model = nn.ModuleDict({"encoder": nn.ModuleDict({"layer": nn.ModuleList(
            [block() for _ in range(12)]
        )})})  # fmt: skip

    def forward(self, x):
        for k, blk in enumerate(self.model["encoder"]["layer"][:11]):  # layer 11 unused
            h = blk["attention"]["output"]["LayerNorm"](x)
            x = h.detach() if k == 1 else h  # cuts layers 0 and 1 off the loss
        return x[:, :4]


def test_long_parameter_names_fit_80_columns_and_keep_their_layer_and_end():
    with pytest.raises(AssertionError) as info:
        assert_params_update(LongNames(), *batch(), nn.CrossEntropyLoss())
    lines = str(info.value).splitlines()
    table = lines[lines.index("parameter, shape, problem after one step:") + 1 :]
    assert all(len(line) <= 80 for line in table), table
    names = [line.split()[0] for line in table if line.startswith("  model.")]
    assert len(names) == 6 and len(set(names)) == 6
    for layer in (0, 1, 11):
        for end in ("LayerNorm.weight", "LayerNorm.bias"):
            assert any(f".layer.{layer}." in n and n.endswith(end) for n in names), names


def test_a_bias_before_batchnorm_is_redundant_a_note_and_a_failure_only_when_strict():
    result = assert_params_update(Net(bias_before_bn=True), *batch(), nn.CrossEntropyLoss())
    assert result.redundant == ("a.bias",) and "a.bias" in result.checked
    with pytest.raises(
        AssertionError,
        match=r"(?s)1 of 8 trainable parameters do not learn: a\.bias\..*"
        r"a\.bias +\(16,\) +cannot change the output: redundant by construction",
    ):
        assert_params_update(Net(bias_before_bn=True), *batch(), nn.CrossEntropyLoss(), strict=True)


def test_a_non_finite_gradient_is_named():
    with pytest.raises(AssertionError, match=r"a\.bias .*non-finite gradient"):
        assert_params_update(Net(nan=True), *batch(), nn.CrossEntropyLoss())


def test_a_parameter_left_out_of_the_optimizer_does_not_change():
    def only_head(params):
        return torch.optim.Adam(params[-2:], lr=1e-2)

    with pytest.raises(
        AssertionError, match=r"(?s)missing from the optimiser.*a\.weight .*value unchanged"
    ):
        assert_params_update(Net(), *batch(), nn.CrossEntropyLoss(), optimizer=only_head)


def test_ignore_takes_names_and_glob_patterns():
    result = assert_params_update(
        Net(detach=True, unused=True),
        *batch(),
        nn.CrossEntropyLoss(),
        ignore=["b.*", "spare.weight", "spare.bias"],
    )
    assert set(result.ignored) == {"b.weight", "b.bias", "spare.weight", "spare.bias"}


def test_frozen_parameters_are_not_checked():
    model = Net(detach=True)
    model.b.requires_grad_(False)
    assert "b.weight" not in assert_params_update(model, *batch(), nn.CrossEntropyLoss()).checked


class DeadPaths(nn.Module):
    """``scale`` is rounded (zero gradient everywhere, but it changes the output); ``side``
    runs under no_grad (no gradient, changes the output); ``key_bias`` adds the same number
    to every score of a softmax, as an attention key bias does (cannot change anything)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 4)
        self.scale = nn.Parameter(torch.tensor(1.3))
        self.side = nn.Linear(8, 4)
        self.key_bias = nn.Parameter(torch.zeros(8))

    def forward(self, x):
        with torch.no_grad():
            side = self.side(x)
        scores = self.head(x) * self.scale.round() + side
        return (scores + (x @ self.key_bias)[:, None]).softmax(-1).log()


def test_no_gradient_fails_when_the_parameter_changes_the_output_and_is_a_note_when_not():
    with pytest.raises(AssertionError) as info:
        assert_params_update(DeadPaths(), *batch(), nn.NLLLoss())
    text = str(info.value)
    assert "3 of 6 trainable parameters do not learn: scale, side.weight, side.bias." in text
    assert re.search(r"scale +\(\) +gradient is zero \(exactly zero\), yet it changes the", text)
    assert re.search(r"side\.weight +\(4, 8\) +no gradient: ran in forward, cut off from the", text)
    assert "1 parameter cannot learn by construction (perturbing it leaves the outputs and " in text
    assert "the loss unchanged): key_bias; harmless when by design" in text
    with pytest.raises(AssertionError, match=r"key_bias +\(8,\) +cannot change the output"):
        assert_params_update(DeadPaths(), *batch(), nn.NLLLoss(), strict=True)
    result = assert_params_update(DeadPaths(), *batch(), nn.NLLLoss(), ignore=["scale", "side.*"])
    assert result.redundant == ("key_bias",)


class Float32Only(nn.Module):
    """Builds a float32 tensor in forward: it cannot run in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.a(x)))) @ torch.eye(4, dtype=torch.float32)


def test_without_float64_a_parameter_without_gradient_stays_a_failure_and_says_why():
    with pytest.raises(AssertionError) as info:
        assert_params_update(Float32Only(), *batch(), nn.CrossEntropyLoss())
    text = str(info.value)
    assert "1 of 6 trainable parameters do not learn: a.bias." in text
    assert "was not tested: the model does not run in float64 (RuntimeError" in text


def tiny_bert_decoder() -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        is_decoder=True,
    )
    return transformers.BertLMHeadModel(config)


def test_a_bert_key_bias_is_redundant_by_evidence_though_float32_rounding_moves_it():
    torch.manual_seed(0)
    ids, nxt = torch.randint(0, 32, (4, 12)), torch.randint(0, 32, (4, 12))

    def lm_loss(logits, y):
        return nn.functional.cross_entropy(logits.reshape(-1, 32), y.reshape(-1))

    keys = tuple(f"bert.encoder.layer.{i}.attention.self.key.bias" for i in (0, 1))
    result = assert_params_update(tiny_bert_decoder(), ids, nxt, lm_loss)
    assert result.redundant == keys and len(result.checked) == 42
    with pytest.raises(AssertionError, match=r"2 of 42 trainable parameters do not learn: bert"):
        assert_params_update(tiny_bert_decoder(), ids, nxt, lm_loss, strict=True)
    # Why float64: in float32 the key bias does move the logits, by rounding alone.
    model = tiny_bert_decoder().eval()
    with torch.no_grad():
        before = model(ids).logits
        model.bert.encoder.layer[0].attention.self.key.bias.add_(torch.randn(32) * 3)
        after = model(ids).logits
    assert 0 < float((after - before).abs().max()) < 1e-4 * float(before.abs().max())
