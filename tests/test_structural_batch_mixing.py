"""assert_no_batch_mixing: exact and complete over all pairs, by gradient and by perturbation."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from dependency_helpers import caught, expected
from torch import nn

from pytest_nnrecipe import _context, assert_no_batch_mixing

METHODS = ["grad", "perturb"]


class Wired(nn.Module):
    """Output sample i = f(input i) + sum of input j over the wired pairs (i, j)."""

    def __init__(self, batch: int, pairs: list[tuple[int, int]], d: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)
        mix = torch.zeros(batch, batch)
        for i, j in pairs:
            mix[i, j] = 0.5
        self.register_buffer("mix", mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + torch.einsum("ij,jd->id", self.mix, x)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch", [2, 3, 7, 16, 21])
def test_it_finds_exactly_the_wired_pairs_for_every_batch_size(method, batch):
    rng = np.random.default_rng(batch)
    cells = [(i, j) for i in range(batch) for j in range(batch) if i != j]
    pairs = [cells[k] for k in rng.choice(len(cells), size=min(3, len(cells)), replace=False)]
    with _context.activate(_context.RunContext(nodeid="t", seed=1)) as ctx:
        message = caught(
            assert_no_batch_mixing, Wired(batch, pairs), torch.randn(batch, 3), method=method
        )
    rec = ctx.records[-1]
    assert rec.check == "assert_no_batch_mixing" and not rec.passed
    np.testing.assert_array_equal(rec.matrix, expected(batch, pairs))
    assert (
        f"Mixing pairs (output sample i, input sample j != i): {len(pairs)} of {batch * (batch - 1)}"
        in message
    )
    assert f"method={method}" in message and "mode=eval" in message


@pytest.mark.parametrize("method", METHODS)
def test_every_single_pair_of_a_batch_is_covered(method):
    batch = 6
    for i in range(batch):
        for j in range(batch):
            if i != j:
                message = caught(
                    assert_no_batch_mixing,
                    Wired(batch, [(i, j)]),
                    torch.randn(batch, 3),
                    method=method,
                )
                assert f"output of sample {i} depends on input of sample {j}." in message


@pytest.mark.parametrize("method", METHODS)
def test_an_independent_model_passes_and_returns_the_diagonal(method):
    result = assert_no_batch_mixing(Wired(5, []), torch.randn(5, 3), method=method)
    np.testing.assert_array_equal(result.matrix, np.eye(5, dtype=bool))
    assert result.method == method and result.mode == "eval" and result.pairs == 20
    assert result.checked.all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.method = "x"  # type: ignore[misc]


def test_auto_picks_grad_for_floats_and_for_half_precision_token_ids_an_embedding_reads():
    float_model = nn.Linear(3, 2)
    token_model = nn.Sequential(nn.Embedding(10, 3), nn.Linear(3, 2))
    ids = torch.randint(0, 10, (4, 5))
    assert assert_no_batch_mixing(float_model, torch.randn(4, 3)).method == "grad"
    # float32 on the CPU: bitwise-identical reruns make perturbation exact, and cheaper
    assert assert_no_batch_mixing(token_model, ids).method == "perturb"
    assert assert_no_batch_mixing(token_model, ids, method="grad").method == "grad"
    # half precision: a small change rounds away, the gradient at the embedding output does not
    assert assert_no_batch_mixing(token_model.to(torch.bfloat16), ids).method == "grad"
    linear = nn.Linear(5, 2).to(torch.bfloat16)  # no embedding: the ids go in as numbers
    assert assert_no_batch_mixing(lambda t: linear(t.bfloat16()), ids).method == "perturb"


def test_token_ids_read_outside_an_embedding_are_confirmed_by_perturbation():
    emb = nn.Embedding(10, 3).to(torch.bfloat16)  # half precision: auto takes gradients

    def padded(ids: torch.Tensor) -> torch.Tensor:
        return emb(ids) * (ids != 0).unsqueeze(-1)  # a mask from the ids: no gradient shows it

    result = assert_no_batch_mixing(padded, torch.randint(0, 10, (4, 5)))
    assert result.method.startswith("grad+perturb") and "ne on the integer inputs" in result.method

    def leaky(ids: torch.Tensor) -> torch.Tensor:  # sample i reads whether sample i-1 is padded
        return emb(ids) * (ids.roll(1, 0) != 0).unsqueeze(-1)

    with pytest.raises(AssertionError, match=r"(?s)depends on input of sample.*roll on the"):
        assert_no_batch_mixing(leaky, torch.tensor([[0, 1, 2]] * 4))


class TokenMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        return h + h.roll(1, dims=0)  # sample i sees sample i-1


@pytest.mark.parametrize("method", METHODS)
def test_it_catches_mixing_behind_an_embedding(method):
    message = caught(
        assert_no_batch_mixing, TokenMixer(), torch.randint(0, 10, (5, 4)), method=method
    )
    assert "Mixing pairs (output sample i, input sample j != i): 5 of 20" in message


class NaNGradient(nn.Module):
    """Mixes nothing in value, but the gradient through sqrt(0) is NaN for every pair."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sqrt(0.0 * x.sum(0, keepdim=True))


def test_a_non_finite_gradient_is_inconclusive_never_a_dependency():
    message = caught(assert_no_batch_mixing, NaNGradient(), torch.randn(4, 3), method="grad")
    assert message.startswith(
        "assert_no_batch_mixing failed: inconclusive: the gradient of output 0"
    )
    assert "Mixing pairs" not in message and "?" in message and "method='perturb'" in message


def test_auto_decides_by_perturbation_when_gradients_are_not_finite():
    result = assert_no_batch_mixing(NaNGradient(), torch.randn(4, 3))
    assert result.method.startswith("perturb (grad was inconclusive")


def test_samples_limits_the_pairs_and_the_message_says_so():
    model = Wired(8, [(5, 4), (1, 0)])
    message = caught(assert_no_batch_mixing, model, torch.randn(8, 3), samples=[0, 1, 2])
    assert "Covered: 3 of 8 samples (0-2) (6 ordered pairs i != j)" in message
    assert "1 of 6" in message
    result = assert_no_batch_mixing(model, torch.randn(8, 3), samples=[2, 3, 6, 7])
    assert result.pairs == 12 and not result.checked[5, 4] and result.samples == (2, 3, 6, 7)


class Outputs(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor):
        y = self.lin(x)
        mixed = y + y.mean(0)
        if self.kind == "tuple":
            return mixed, y
        if self.kind == "dict":
            return {"hidden": y, "logits": mixed}
        return Out(hidden=y, logits=mixed)


@dataclasses.dataclass
class Out:
    hidden: torch.Tensor
    logits: torch.Tensor


@pytest.mark.parametrize("kind", ["tuple", "dict", "dataclass"])
def test_it_checks_the_selected_output(kind):
    x = torch.randn(4, 3)
    caught(assert_no_batch_mixing, Outputs(kind), x)  # default: first tensor / logits
    pick = 1 if kind == "tuple" else "hidden"
    assert_no_batch_mixing(Outputs(kind), x, output=pick)
    assert_no_batch_mixing(
        Outputs(kind),
        x,
        output=lambda o: o[1] if kind == "tuple" else (o["hidden"] if kind == "dict" else o.hidden),
    )


def test_msg_replaces_the_headline_and_keeps_the_evidence():
    message = caught(
        assert_no_batch_mixing, Wired(3, [(0, 2)]), torch.randn(3, 3), msg="the encoder mixes"
    )
    assert message.startswith("assert_no_batch_mixing failed: the encoder mixes")
    assert "Finding: output of sample 0 depends on input of sample 2." in message


def test_time_major_inputs_and_outputs_with_batch_dim_one():
    rnn = nn.GRU(3, 4)  # (T, B, C)
    assert_no_batch_mixing(lambda x: rnn(x)[0], torch.randn(5, 3, 3), batch_dim=1)
    message = caught(assert_no_batch_mixing, lambda x: rnn(x)[0], torch.randn(5, 3, 3))
    assert "Where: it starts in rnn (GRU(batch_first=False, bidirectional=False))" in message
    assert "the check passes with batch_dim=1" in message and "pass batch_dim=1" in message


def test_a_seq_first_attention_fed_batch_first_data_is_named():
    attn = nn.TransformerEncoderLayer(4, 1, 8, dropout=0.0)  # batch_first=False
    message = caught(assert_no_batch_mixing, attn, torch.randn(3, 5, 4))
    assert "Where: it starts in self_attn (MultiheadAttention(batch_first=False))" in message
    assert "runs along dim 0 of what it is given" in message


def test_a_failure_message_draws_the_matrix_and_a_record_keeps_the_batch():
    x = torch.randn(3, 3)
    with _context.activate(
        _context.RunContext(nodeid="t.py::x", seed=7, reproduce="pytest t.py::x")
    ) as ctx:
        message = caught(assert_no_batch_mixing, Wired(3, [(2, 0)]), x)
    assert re.search(
        r"output sample ↓ depends on input sample →\n.*\n +0 o\.\.\n +1 \.o\.\n +2 #\.o", message
    )
    assert "seed=7" in message and "Reproduce: pytest t.py::x" in message
    rec = ctx.records[0]
    torch.testing.assert_close(rec.batch, x)
    assert rec.method == "grad" and rec.mode == "eval"
    np.testing.assert_array_equal(rec.allowed, np.eye(3, dtype=bool))
    assert rec.inconclusive is None


def test_multiple_inputs_share_the_batch():
    class TwoInputs(nn.Module):
        def forward(self, a, b, *, scale):
            return a * scale + b.flip(0)

    message = caught(
        assert_no_batch_mixing,
        TwoInputs(),
        {"a": torch.randn(4, 2), "b": torch.randn(4, 2), "scale": 2.0},
    )
    assert "4 of 12" in message


def test_it_falls_back_to_one_product_at_a_time_without_batched_gradients(monkeypatch, recwarn):
    from pytest_nnrecipe import _dependency

    monkeypatch.setattr(_dependency, "batched_products", lambda device: True)
    real = torch.autograd.grad

    def no_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("Batching rule not implemented for aten::some_op")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    message = caught(assert_no_batch_mixing, Wired(5, [(4, 1)]), torch.randn(5, 3), method="grad")
    assert "1 of 20" in message and "output of sample 4 depends on input of sample 1" in message
    assert not recwarn.list


@pytest.mark.parametrize("n", [2, 3, 6, 7, 20, 21, 70, 71, 300])
def test_the_code_words_separate_every_ordered_pair_with_few_bits(n):
    from pytest_nnrecipe._dependency import sperner_codes

    codes = sperner_codes(n).numpy()
    assert codes.shape[0] == n and len({tuple(c) for c in codes}) == n
    separated = (codes[:, None, :] & ~codes[None, :, :]).any(-1)  # some bit: 1 in i, 0 in j
    np.testing.assert_array_equal(separated, ~np.eye(n, dtype=bool))
    assert codes.shape[1] <= 2 * int(np.ceil(np.log2(n))) + 2


@pytest.mark.parametrize("method", METHODS)
def test_dropout_in_train_mode_draws_the_same_masks_on_every_run(method):
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    result = assert_no_batch_mixing(model, torch.randn(6, 4), method=method, train=True)
    assert result.mode == "train" and model.training
