"""Language models as people write them: a loss that flattens (B, T, V) logits itself, and
BERT turned into a causal decoder. The whole recipe passes on both with no expected= and no
ignore=; the init check finds the best constant of any loss, and the parameters-learn step
notes BERT's attention key biases as redundant (perturbing them changes nothing) instead of
failing on their zero gradient.

The same factories run with no test file::

    pytest --nn-model examples/recipe_models.py:make_bert_decoder
"""

from __future__ import annotations

import pytest
import torch
from recipe_models import (
    SEQ_LEN,
    VOCAB,
    TinyLM,
    lm_loss,
    make_bert_decoder,
    make_lm_custom_loss,
)

from pytest_nnrecipe import specs

TOKENS = specs.language_model(vocab_size=VOCAB, seq_len=SEQ_LEN)


def test_a_language_model_with_its_own_flattening_loss_passes_the_whole_recipe(nn_recipe):
    result = nn_recipe(make_lm_custom_loss, **TOKENS.replace(loss_fn=lm_loss, loss_output=None))
    assert all(step.passed for step in result.steps if step.verdict != "skipped"), result


def test_the_init_check_derives_the_optimum_of_a_custom_loss(assert_init_loss):
    ids, nxt = TOKENS["inputs"], TOKENS["targets"]
    result = assert_init_loss(TinyLM(), ids, nxt, lm_loss)  # no expected=
    assert result.expected < result.loss  # the batch's prior: below log(VOCAB)
    broken = TinyLM()
    with torch.no_grad():
        broken.head.weight.mul_(30)
    with pytest.raises(AssertionError, match=r"the logits are too large at init"):
        assert_init_loss(broken, ids, nxt, lm_loss)


def test_a_tiny_bert_decoder_passes_the_whole_recipe(nn_recipe):
    bert = specs.language_model(vocab_size=64, seq_len=12).replace(
        loss_fn=lm_loss, loss_output=None
    )
    result = nn_recipe(make_bert_decoder, **bert)
    assert all(step.passed for step in result.steps if step.verdict != "skipped"), result
    assert result["params_update"].figure == "40 of 42 parameters learn, 2 redundant"
    assert result["params_update"].result.redundant == (
        "bert.encoder.layer.0.attention.self.key.bias",
        "bert.encoder.layer.1.attention.self.key.bias",
    )
    assert result["causal"].figure == "0 of 66 pairs leak"
