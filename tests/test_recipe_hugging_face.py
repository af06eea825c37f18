"""The whole recipe on Hugging Face models built from tiny configs (no downloads): they take
``input_ids`` and return a ``ModelOutput`` whose ``logits`` the checks pick."""

from __future__ import annotations

import re

import pytest
import transformers
from torch import nn

from pytest_nnrecipe import check_recipe, specs

transformers.logging.set_verbosity_error()

VOCAB = 64
SEQ_LEN = 12
#: 2 layers, 2 heads, width 32: a whole recipe takes about a second on one CPU thread.
TINY = dict(vocab_size=VOCAB, max_position_embeddings=16, num_hidden_layers=2)
LM = specs.language_model(vocab_size=VOCAB, seq_len=SEQ_LEN)


def tiny_gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def tiny_llama() -> nn.Module:
    config = transformers.LlamaConfig(
        **TINY, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=2
    )
    return transformers.LlamaForCausalLM(config)


def tiny_bert() -> nn.Module:
    """A masked LM: every position attends to every other, the future included."""
    config = transformers.BertConfig(
        **TINY, hidden_size=32, intermediate_size=64, num_attention_heads=2
    )
    return transformers.BertForMaskedLM(config)


@pytest.mark.parametrize("make_model", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_a_tiny_causal_lm_passes_every_step(make_model: object) -> None:
    result = check_recipe(make_model, **LM)
    verdicts = {s.name: s.verdict for s in result.steps}
    skipped = {name: verdicts.pop(name) for name in ("optimizer", "lr_schedule", "padding")}
    assert set(skipped.values()) == {"skipped"}, str(result)  # no optimizer=, scheduler=, mask
    assert set(verdicts.values()) == {"passed"} and "deterministic" in verdicts, str(result)
    assert re.fullmatch(
        r"init loss 4\.\d\d vs 4\.16 expected \(at (least|most) \d\.\d\d\)",
        result["init_loss"].figure,
    )
    assert result["inputs_used"].figure == "1 of 1 inputs used"
    assert result["causal"].figure == "0 of 66 pairs leak"
    assert result["batch_mixing"].figure == "0 of 12 pairs mix"


def test_a_tiny_bert_used_as_a_causal_lm_fails_causality_naming_the_leaking_positions() -> None:
    with pytest.raises(AssertionError) as raised:
        check_recipe(tiny_bert, **LM, checks=["init_loss", "overfit", "causal"])
    message = str(raised.value)
    assert "1 of 3 steps did not pass: causal (failed)" in message
    assert re.search(r"overfit\s+passed", message)  # it learns: the future gives the answer
    assert re.search(r"causal\s+failed\s+\S+\s+66 of 66 pairs leak, e\.g\. step 0 <- 1", message)
    assert re.search(
        r"assert_causal failed: output at step \d+ depends on input at step \d+", message
    )
    assert re.search(r"Worst .*: step \d+ <- step \d+", message)


@pytest.mark.parametrize(
    ("make_model", "padding"), [(tiny_gpt2, "left"), (tiny_llama, "right")], ids=["gpt2", "llama"]
)
def test_a_tiny_causal_lm_passes_every_step_on_a_padded_batch_padding_included(
    make_model: object, padding: str
) -> None:
    padded = specs.language_model(vocab_size=VOCAB, seq_len=SEQ_LEN, padding=padding)
    result = check_recipe(make_model, **padded)
    skipped = [s.name for s in result.steps if s.verdict == "skipped"]
    assert skipped == ["optimizer", "lr_schedule"] and result.passed, str(result)
    assert result["inputs_used"].figure == "2 of 2 inputs used"  # the attention mask too
    assert result["causal"].figure == "0 of 66 pairs leak"
    leaking = int((padded.inputs["attention_mask"] == 0).sum())
    assert result["padding"].figure == f"0 of {leaking} padded positions leak"


def tiny_bert_classifier() -> nn.Module:
    config = transformers.BertConfig(
        **TINY, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_labels=3
    )
    return transformers.BertForSequenceClassification(config)


def test_a_tiny_bert_classifier_ignores_right_padding_but_its_pooler_reads_left_padding() -> None:
    def spec(padding: str) -> specs.RecipeSpec:
        return specs.sequence_classification(
            vocab_size=VOCAB, seq_len=SEQ_LEN, classes=3, padding=padding, checks="padding"
        )

    assert check_recipe(tiny_bert_classifier, **spec("right"))["padding"].passed
    with pytest.raises(AssertionError) as raised:
        check_recipe(tiny_bert_classifier, **spec("left"))
    message = str(raised.value)
    assert re.search(
        r"padding\s+failed .* padded positions leak, e\.g\. sample \d+ position 0", message
    )
    assert "pooled output of sample" in message
    assert "a pooling that reads one position, 0, which is padding" in message
