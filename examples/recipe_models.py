"""Model factories with their recipe specs: run the whole recipe on any of them with no test
file, e.g. from the repository root::

    pytest --nn-model examples/recipe_models.py:make_cnn
    pytest --nn-model examples/recipe_models.py:make_mlp --nn-model examples/recipe_models.py:make_lm -n 2

or, with ``examples`` on ``sys.path`` (or as the current directory), by module name::

    pytest --nn-model recipe_models:make_cnn

Each factory takes no arguments and returns a fresh model; ``@specs.declare(...)`` puts next
to it the small batch, targets and loss the recipe runs it on. ``test_recipe_whole.py`` runs
the same factories through ``check_recipe``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pytest_nnrecipe import specs

VOCAB = 32
SEQ_LEN = 8


class SmallCNN(nn.Module):
    """Two convolutions, global average pooling, a linear head. ``view_bug=True`` flattens
    with a ``view`` that mixes the batch (the recipe's "view instead of permute")."""

    def __init__(self, channels: int = 1, classes: int = 4, *, view_bug: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(16, classes)
        self.view_bug = view_bug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, 16, H, W)
        if self.view_bug:  # meant: h.flatten(2).mean(2); this mixes samples of the batch
            h = h.view(16, x.shape[0], -1).mean(2).t()
        else:
            h = h.flatten(2).mean(2)
        return self.head(h)


class TinyLM(nn.Module):
    """A 2-layer transformer language model over token ids: (B, T) -> (B, T, vocab) logits,
    with an optional Hugging Face style ``attention_mask`` (1 at real tokens, 0 at padding).
    ``causal=False`` drops the causal mask, so every position reads the future;
    ``ignore_padding=True`` takes the attention mask and never uses it, so under left padding
    the real tokens read the padding before them."""

    def __init__(
        self,
        vocab: int = VOCAB,
        width: int = 32,
        *,
        causal: bool = True,
        ignore_padding: bool = False,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(64, width) * 0.02)
        self.heads = 2
        layer = nn.TransformerEncoderLayer(
            width, nhead=self.heads, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)
        self.causal = causal
        self.ignore_padding = ignore_padding

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        t = input_ids.shape[1]
        h = self.embed(input_ids) + self.position[:t]
        if not self.causal:
            return self.head(self.blocks(h))
        if attention_mask is None or self.ignore_padding:
            causal = nn.Transformer.generate_square_subsequent_mask(t)
            return self.head(self.blocks(h, mask=causal, is_causal=True))
        # Blocked (True): later keys, and padded keys other than the query itself (a padded
        # query under left padding would see no key at all: a softmax over nothing, NaN).
        later = torch.ones(t, t, dtype=torch.bool).triu(1)
        padded = (attention_mask == 0)[:, None, :] & ~torch.eye(t, dtype=torch.bool)
        blocked = (later | padded).repeat_interleave(self.heads, dim=0)  # (B * heads, T, T)
        return self.head(self.blocks(h, mask=blocked))


@specs.declare(specs.classification(features=8, classes=4))
def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


@specs.declare(specs.image_classification(channels=1, size=8, classes=4, batch=8))
def make_cnn() -> nn.Module:
    return SmallCNN()


@specs.declare(
    specs.language_model(
        vocab_size=VOCAB,
        seq_len=SEQ_LEN,
        # The real run's schedule: the recipe checks it does not kill the LR too early.
        scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10_000),
        total_steps=10_000,
    )
)
def make_lm() -> nn.Module:
    return TinyLM()


# A spec given as a function is built only when the run needs it; so is the model, which
# imports transformers only when this factory is named.
@specs.declare(lambda: specs.language_model(vocab_size=64, seq_len=12))
def make_gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=64,
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The language-model loss as training code writes it: (B, T, V) logits flattened to
    (B*T, V) rows, one next token per row. No expected= needed: the init check finds its best
    constant (one distribution over the vocabulary shared by every position) numerically."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


#: The language-model spec with the loss above: the logits go to lm_loss as the model returns
#: them (loss_output=None: a plain tensor, or a ModelOutput's logits).
CUSTOM_LOSS_LM = dict(loss_fn=lm_loss, loss_output=None)


@specs.declare(
    lambda: specs.language_model(vocab_size=VOCAB, seq_len=SEQ_LEN).replace(**CUSTOM_LOSS_LM)
)
def make_lm_custom_loss() -> nn.Module:
    return TinyLM()


@specs.declare(lambda: specs.language_model(vocab_size=64, seq_len=12).replace(**CUSTOM_LOSS_LM))
def make_bert_decoder() -> nn.Module:
    """BERT as a causal language model (``is_decoder=True``) from a tiny config. Its attention
    key biases cannot learn (the softmax over the keys ignores them): the recipe notes them
    as redundant and passes."""
    from transformers import BertConfig, BertLMHeadModel

    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        is_decoder=True,
    )
    return BertLMHeadModel(config)
