"""assert_causal: exact and complete over all (t, t' > t) pairs, by gradient and perturbation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dependency_helpers import caught, expected
from torch import nn

from pytest_nnrecipe import _context, assert_causal

METHODS = ["grad", "perturb"]


class TimeWired(nn.Module):
    """(B, T, C) -> (B, T, C): output step t = f(input t) + the input steps wired to it."""

    def __init__(self, steps: int, pairs: list[tuple[int, int]], d: int = 2) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)
        mix = torch.zeros(steps, steps)
        for t, s in pairs:
            mix[t, s] = 0.5
        self.register_buffer("mix", mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + torch.einsum("ts,bsd->btd", self.mix, x)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("batch", "steps"), [(1, 2), (2, 5), (3, 17), (8, 9)])
def test_it_finds_exactly_the_leaking_pairs(method, batch, steps):
    rng = np.random.default_rng(steps)
    cells = [(t, s) for t in range(steps) for s in range(t + 1, steps)]
    pairs = [cells[k] for k in rng.choice(len(cells), size=min(3, len(cells)), replace=False)]
    past = [(steps - 1, 0)]  # allowed: a step may depend on the past
    with _context.activate(_context.RunContext(seed=3)) as ctx:
        message = caught(
            assert_causal,
            TimeWired(steps, pairs + past),
            torch.randn(batch, steps, 2),
            method=method,
        )
    np.testing.assert_array_equal(ctx.records[-1].matrix, expected(steps, pairs + past))
    total = steps * (steps - 1) // 2
    assert f"Leaking pairs (output step t, later input step t'): {len(pairs)} of {total}" in message
    assert f"method={method}" in message


@pytest.mark.parametrize("method", METHODS)
def test_every_single_future_pair_is_covered(method):
    steps = 7
    for t in range(steps):
        for s in range(t + 1, steps):
            message = caught(
                assert_causal, TimeWired(steps, [(t, s)]), torch.randn(2, steps, 2), method=method
            )
            assert f"output at step {t} depends on input at step {s}." in message


@pytest.mark.parametrize("method", METHODS)
def test_a_causal_model_passes_with_every_forbidden_pair_checked(method):
    result = assert_causal(TimeWired(6, [(5, 0), (3, 2)]), torch.randn(2, 6, 2), method=method)
    assert result.pairs == 15 and result.method == method
    assert not result.matrix.any()
    np.testing.assert_array_equal(result.checked, np.triu(np.ones((6, 6), dtype=bool), 1))


@pytest.mark.parametrize("max_batch", [1, 3, 100])
def test_chunking_the_cuts_gives_the_same_verdict(max_batch):
    model = TimeWired(9, [(2, 6)])
    x = torch.randn(2, 9, 2)
    message = caught(assert_causal, model, x, max_batch=max_batch, method="perturb")
    assert "1 of 36" in message
    assert_causal(TimeWired(9, []), x, max_batch=max_batch, method="perturb")


def test_positions_limit_the_pairs_and_the_message_says_so():
    model = TimeWired(10, [(1, 2), (7, 9)])
    message = caught(assert_causal, model, torch.randn(2, 10, 2), positions=[6, 7, 8, 9])
    assert "Covered: 4 of 10 positions (6-9) (6 pairs t < t')" in message
    assert "output at step 7 depends on input at step 9" in message and "1 of 6" in message
    assert assert_causal(model, torch.randn(2, 10, 2), positions=[0, 3, 4, 5, 6, 8, 9]).pairs == 21


class Mixer(nn.Module):
    """Causal, but mixes the batch: the check must still be exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(1) + x.cumsum(1).mean(0, keepdim=True)


@pytest.mark.parametrize("method", METHODS)
def test_a_model_that_mixes_the_batch_is_judged_on_time_alone(method):
    assert_causal(Mixer(), torch.randn(3, 6, 2), method=method)
    leaky = lambda x: Mixer()(x) + x.flip(0).flip(1)  # noqa: E731 - sample b, step t <- other sample, step T-1-t
    message = caught(assert_causal, leaky, torch.randn(3, 6, 2), method=method)
    assert "Leaking pairs (output step t, later input step t'): 3 of 15" in message


def test_time_major_inputs():
    rnn = nn.LSTM(2, 3)  # (T, B, C)
    result = assert_causal(lambda x: rnn(x)[0], torch.randn(6, 2, 2), time_dim=0, batch_dim=1)
    assert result.pairs == 15


def test_per_sample_extras_without_a_time_axis_ride_along():
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(2, 3, batch_first=True)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0] * lengths[:, None, None]

    x, lengths = torch.randn(2, 6, 2), torch.tensor([6.0, 4.0])
    for method in METHODS:
        assert assert_causal(Model(), (x, lengths), method=method).pairs == 15


def test_output_dims_can_differ_from_the_inputs():
    conv = nn.Conv1d(3, 2, 2)
    model = lambda x: conv(nn.functional.pad(x.transpose(1, 2), (1, 0)))  # noqa: E731 - (B,T,C) -> (B,C,T)
    assert_causal(model, torch.randn(2, 8, 3), output_time_dim=2)


class BackendSensitive(nn.Module):
    """Causal under the math kernel; leaks when the flash kernel is the one allowed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, _cur_sdpa_kernel_backends

        q = x.unsqueeze(1)
        leaky = _cur_sdpa_kernel_backends() == [SDPBackend.FLASH_ATTENTION]
        out = nn.functional.scaled_dot_product_attention(q, q, q, is_causal=not leaky)
        return out.squeeze(1)


def test_each_attention_backend_gets_its_own_verdict():
    message = caught(assert_causal, BackendSensitive(), torch.randn(2, 5, 4), sdpa_backends="all")
    assert "under the flash attention backend" in message
    assert (
        "Attention backends: math: causal; flash: leaks 10 of 10 pairs; efficient: unavailable on cpu"
        in message
    )
    result = assert_causal(BackendSensitive(), torch.randn(2, 5, 4), sdpa_backends=["math"])
    assert result.backends == {"math": "causal"}


def test_a_non_finite_gradient_is_inconclusive():
    model = lambda x: x + torch.sqrt(0.0 * x.sum(1, keepdim=True))  # noqa: E731
    message = caught(assert_causal, model, torch.randn(2, 4, 2), method="grad")
    assert "inconclusive: the gradient of step 0 with respect to step 1 is not finite" in message
    assert assert_causal(model, torch.randn(2, 4, 2)).method.startswith(
        "perturb (grad was inconclusive"
    )


def test_token_ids_by_gradient_at_the_embedding_and_by_perturbation():
    emb = nn.Embedding(11, 4)
    model = lambda ids: emb(ids) + emb(ids).flip(1)  # noqa: E731 - reads the sequence backwards too
    ids = torch.randint(0, 11, (2, 6))
    for method in METHODS:
        message = caught(assert_causal, model, ids, method=method)
        assert "Leaking pairs (output step t, later input step t'): 3 of 15" in message


def test_the_record_keeps_the_matrix_and_the_users_batch():
    x = torch.randn(2, 5, 2)
    with _context.activate(_context.RunContext(seed=5)) as ctx:
        caught(assert_causal, TimeWired(5, [(0, 4)]), x)
        assert_causal(TimeWired(5, []), x, sdpa_backends=["math"])
    failed, passed = ctx.records
    assert (failed.check, failed.passed, passed.passed) == ("assert_causal", False, True)
    torch.testing.assert_close(failed.batch, x)
    np.testing.assert_array_equal(failed.matrix, expected(5, [(0, 4)]))
    np.testing.assert_array_equal(failed.allowed, np.tril(np.ones((5, 5), dtype=bool)))
    assert failed.method == "grad" and failed.mode == "eval"
    assert passed.backends == {"math": "causal"}


def test_train_mode_batchnorm_over_time_is_named_as_the_cause():
    model = nn.Sequential(nn.Conv1d(2, 2, 1), nn.BatchNorm1d(2))  # (B, C, T)
    x = torch.randn(3, 2, 6)
    assert assert_causal(model, x, time_dim=2).mode == "eval"
    message = caught(assert_causal, model, x, time_dim=2, train=True)
    assert "train-mode BatchNorm1d normalises with statistics over every position" in message
    assert "mode=train" in message


class ModelOutputLike(dict):
    """Like a Hugging Face ModelOutput: a mapping whose entries are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def test_a_model_output_mapping_is_checked_on_its_logits():
    emb = nn.Embedding(9, 4)

    def lm(input_ids, attention_mask):
        h = emb(input_ids) * attention_mask[..., None]
        return ModelOutputLike(hidden_states=h.flip(1), logits=h.cumsum(1))

    ids = torch.randint(0, 9, (2, 5))
    batch = {"input_ids": ids, "attention_mask": torch.ones(2, 5)}
    assert assert_causal(lm, batch).method == "perturb"
    message = caught(assert_causal, lm, batch, output="hidden_states")
    assert "Leaking pairs (output step t, later input step t'): 2 of 10" in message
