"""A BERT-style sentence classifier behind a user's wrapper (built from a tiny config: no
download), a correct one and one whose wrapper forgets to pass the attention mask on; and a
batch of padded sentences for it."""

from __future__ import annotations

import torch
import transformers
from torch import nn

transformers.logging.set_verbosity_error()

VOCAB, CLASSES, SEQ_LEN = 64, 3, 10


def config() -> transformers.BertConfig:
    return transformers.BertConfig(
        vocab_size=VOCAB,
        max_position_embeddings=16,
        num_hidden_layers=1,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_labels=CLASSES,
    )


class SentenceClassifier(nn.Module):
    """``(input_ids, attention_mask, token_type_ids) -> logits``, as user code wraps HF."""

    def __init__(self) -> None:
        super().__init__()
        self.bert = transformers.BertForSequenceClassification(config())

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.logits


class MaskDroppingClassifier(SentenceClassifier):
    """The bug: the wrapper takes the mask and never passes it on, so padding is attended."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.bert(input_ids=input_ids, token_type_ids=token_type_ids).logits


def padded_batch(device: torch.device | str = "cpu", n: int = 8) -> tuple[dict, torch.Tensor]:
    """``n`` sentences of 4 to 10 tokens, padded with 0 to 10, and a label each."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (n, SEQ_LEN), generator=gen)
    lengths = torch.randint(4, SEQ_LEN + 1, (n,), generator=gen)
    mask = (torch.arange(SEQ_LEN)[None] < lengths[:, None]).long()
    batch = {
        "input_ids": (ids * mask).to(device),
        "attention_mask": mask.to(device),
        "token_type_ids": torch.zeros_like(ids).to(device),
    }
    return batch, (torch.arange(n) % CLASSES).to(device)
