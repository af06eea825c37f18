"""Misuse of the structural checks raises TypeError/ValueError naming the argument and the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_causal, assert_no_batch_mixing

lin = nn.Linear(3, 3)
x = torch.randn(4, 5, 3)

SAMPLES = [torch.randn(5, 3) for _ in range(4)]  # per-sample tensors, not stacked
STACK = r"list of 4 tensors of one shape \(5, 3\).*takes 1 positional argument.*torch\.stack"

ROWS = [
    # (id, check, args, kwargs, error, message pattern)
    ("list-of-samples", assert_no_batch_mixing, (lin, SAMPLES), {}, ValueError, STACK),
    ("causal-list-of-samples", assert_causal, (lin, SAMPLES), {}, ValueError, STACK),
    ("model-not-callable", assert_no_batch_mixing, ("net", x), {}, TypeError, r"model= must be"),
    ("causal-model-not-callable", assert_causal, (3, x), {}, TypeError, r"model= must be"),
    ("inputs-not-tensors", assert_no_batch_mixing, (lin, 3.0), {}, TypeError, r"inputs= must be"),
    (
        "batch-of-one",
        assert_no_batch_mixing,
        (lin, torch.randn(1, 3)),
        {},
        ValueError,
        r"batch size 1 .*at least 2",
    ),
    (
        "one-step",
        assert_causal,
        (lin, torch.randn(4, 1, 3)),
        {},
        ValueError,
        r"1 step along time_dim=1.*at least 2",
    ),
    (
        "batch-dim-out-of-range",
        assert_no_batch_mixing,
        (lin, x),
        {"batch_dim": 3},
        ValueError,
        r"batch_dim=3 is out of range",
    ),
    (
        "time-dim-out-of-range",
        assert_causal,
        (lin, x),
        {"time_dim": 5},
        ValueError,
        r"time_dim=5 is out of range",
    ),
    (
        "time-dim-is-batch-dim",
        assert_causal,
        (lin, x),
        {"time_dim": 0},
        ValueError,
        r"time_dim=0 and batch_dim=0 name the same",
    ),
    (
        "time-dim-not-int",
        assert_causal,
        (lin, x),
        {"time_dim": "1"},
        TypeError,
        r"time_dim='1' must be an int",
    ),
    (
        "different-batch-sizes",
        assert_no_batch_mixing,
        (lambda a, b: a + b.sum(), (torch.randn(4, 3), torch.randn(5, 3))),
        {},
        ValueError,
        r"different batch sizes",
    ),
    (
        "output-without-batch",
        assert_no_batch_mixing,
        (lambda a: a.sum(), torch.randn(4, 3)),
        {},
        ValueError,
        r"no batch dimension of size 4 at output_batch_dim=0",
    ),
    (
        "output-flattened",
        assert_no_batch_mixing,
        (lambda a: a.reshape(-1), torch.randn(4, 3)),
        {},
        ValueError,
        r"no batch dimension .*output=",
    ),
    (
        "output-without-time",
        assert_causal,
        (lambda a: a.sum(1), x),
        {},
        ValueError,
        r"no time dimension of 5 steps .* at output_time_dim=1",
    ),
    (
        "selector-finds-nothing",
        assert_no_batch_mixing,
        (lambda a: {"h": a}, torch.randn(4, 3)),
        {"output": "logits"},
        ValueError,
        r"output='logits' finds no tensor",
    ),
    (
        "selector-returns-no-tensor",
        assert_causal,
        (lambda a: (a,), x),
        {"output": lambda o: None},
        ValueError,
        r"output=.* returned NoneType",
    ),
    (
        "unknown-method",
        assert_no_batch_mixing,
        (lin, x),
        {"method": "jacobian"},
        ValueError,
        r"method='jacobian' is not one of",
    ),
    (
        "grad-without-float-path",
        assert_no_batch_mixing,
        (lambda ids: ids.float(), torch.randint(0, 5, (4, 3))),
        {"method": "grad"},
        ValueError,
        r"method='grad' needs float inputs.*method='perturb'",
    ),
    (
        "samples-too-few",
        assert_no_batch_mixing,
        (lin, x),
        {"samples": [2]},
        ValueError,
        r"samples= selects 1 sample",
    ),
    (
        "samples-out-of-range",
        assert_no_batch_mixing,
        (lin, x),
        {"samples": [0, 9]},
        ValueError,
        r"samples= holds sample indices \[9\]",
    ),
    (
        "positions-count-too-large",
        assert_causal,
        (lin, x),
        {"positions": 9},
        ValueError,
        r"positions=9 must be between 2 and the number of positions \(5\)",
    ),
    (
        "positions-not-indices",
        assert_causal,
        (lin, x),
        {"positions": "all"},
        TypeError,
        r"positions='all' must be an int count",
    ),
    (
        "unknown-backend",
        assert_causal,
        (lin, x),
        {"sdpa_backends": ["fast"]},
        ValueError,
        r"sdpa_backends=\['fast'\]: unknown backend",
    ),
    (
        "max-batch-zero",
        assert_causal,
        (lin, x),
        {"max_batch": 0},
        ValueError,
        r"max_batch=0 must be a positive int",
    ),
]


@pytest.mark.parametrize(
    ("check", "args", "kwargs", "error", "pattern"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_arguments_name_the_argument_and_the_fix(check, args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        check(*args, **kwargs)


def test_grad_refuses_token_ids_that_no_embedding_module_reads():
    pos = nn.Embedding(6, 4)  # reads positions, not the token ids

    def model(ids):
        return nn.functional.one_hot(ids, 5).float() + pos(torch.arange(ids.shape[1])).sum(
            -1, keepdim=True
        )

    ids = torch.randint(0, 5, (3, 6))
    for check in (assert_causal, assert_no_batch_mixing):
        with pytest.raises(
            ValueError, match=r"method='grad' cannot reach inputs: .*method='perturb'"
        ):
            check(model, ids, method="grad")
        check(model, ids)  # auto: by perturbation
