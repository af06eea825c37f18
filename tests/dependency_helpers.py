"""Helpers shared by the structural-check tests: the expected dependency matrix of a model
wired with known pairs, the message of a check that must fail, and models with a planted
leak of a thousandth (half precision, CPU and CUDA)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

#: The planted leaks move the outputs by this much of their largest magnitude.
STRENGTH = 1e-3


def expected(size: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Each output depends on its own input (the diagonal) and on the wired (row, col) pairs."""
    m = np.eye(size, dtype=bool)
    for row, col in pairs:
        m[row, col] = True
    return m


def caught(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The AssertionError message of ``fn(*args, **kwargs)``, which must fail."""
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)


class Planted(nn.Module):
    """A per-step, per-sample model over (B, T, d) features or (B, T) token ids, with outputs
    in (-1, 1); ``leak="batch"``/``"time"`` adds ``STRENGTH`` x another sample's / the next
    step's output: a change of at most 1e-3 of the largest output magnitude."""

    def __init__(self, vocab: int | None = None, leak: str | None = None, d: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d) if vocab else None
        self.lin = nn.Linear(d, d)
        self.leak = leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.lin(self.embed(x) if self.embed is not None else x))
        if self.leak == "batch":
            return y + STRENGTH * y.roll(1, dims=0)  # sample i sees sample i - 1
        if self.leak == "time":
            return y + STRENGTH * y.roll(-1, dims=1)  # step t sees step t + 1
        return y


def planted(kind: str, dtype: torch.dtype, leak: str | None) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "tokens":
        return Planted(vocab=20, leak=leak).to(dtype), torch.randint(0, 20, (4, 6))
    return Planted(leak=leak).to(dtype), torch.randn(4, 6, 8).to(dtype)


def tiny_lm(name: str) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    if name == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2, bos_token_id=0
        )
        return transformers.GPT2LMHeadModel(config)
    config = transformers.LlamaConfig(
        vocab_size=64,
        max_position_embeddings=16,
        num_hidden_layers=2,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)
