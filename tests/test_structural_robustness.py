"""Correct models pass on CPU across 20 seeds, by both methods, also with inputs x1000 (large
activations, where tolerance-based batch comparisons raise false alarms)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing

_spec = importlib.util.spec_from_file_location(
    "models_structural", Path(__file__).parents[1] / "examples" / "models_structural.py"
)
M = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(M)

SEEDS = range(20)
# (id, model factory, inputs factory, causal time_dim or None)
CORRECT = [
    ("mlp", lambda: M.MLP(), lambda: torch.randn(6, 8), None),
    ("cnn-batchnorm", lambda: M.CNN(), lambda: torch.randn(4, 3, 6, 6), None),
    ("encoder", lambda: M.SequenceEncoder(d=4), lambda: torch.randn(4, 5, 4), 1),
    ("causal-conv", lambda: M.CausalConvNet(), lambda: torch.randn(3, 4, 8), 2),
    ("transformer", lambda: M.CausalTransformer(d=8), lambda: torch.randn(3, 6, 8), 1),
    ("transformer-tokens", lambda: M.CausalTransformer(20, d=8), lambda: M.tokens(3, 6), 1),
    ("lstm-lm", lambda: M.LSTMLanguageModel(d=4), lambda: M.tokens(3, 6), 1),
]


@pytest.mark.parametrize(
    ("factory", "make_inputs", "time_dim"), [c[1:] for c in CORRECT], ids=[c[0] for c in CORRECT]
)
def test_a_correct_model_passes_for_every_seed_method_and_scale(factory, make_inputs, time_dim):
    for seed in SEEDS:
        torch.manual_seed(seed)
        model, inputs = factory(), make_inputs()
        scales = [1.0, 1000.0] if inputs.is_floating_point() else [1.0]
        for scale in scales:
            for method in ["grad", "perturb"]:
                x = inputs * scale if scale != 1.0 else inputs
                result = assert_no_batch_mixing(model, x, method=method)
                assert not (result.matrix & ~torch.eye(len(x), dtype=torch.bool).numpy()).any()
                if time_dim is not None:
                    assert_causal(model, x, time_dim=time_dim, method=method)
