"""The best input-independent prediction for any loss callable: found numerically, shared
over the batch and over positions, through output= and every common layout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_nnrecipe import assert_can_overfit, assert_init_loss
from pytest_nnrecipe._training import _constant, _fit

V = 32


def mlp(n_in: int = 8, n_out: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, n_out))


class TinyLM(nn.Module):
    """(B, T) token ids -> (B, T, V) logits; ``scale`` multiplies the head (x20: an init bug)."""

    def __init__(self, scale: float = 1.0, *, bias: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, 16)
        self.head = nn.Linear(16, V, bias=bias)
        with torch.no_grad():
            self.head.weight.mul_(scale)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.embed(ids)))


def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def constants(model, x, y, loss_fn, output=None) -> _constant.Constants:
    problem = _fit.prepare("t", model, x, y, loss_fn, output)
    with torch.no_grad():
        loss, out = _fit.loss_of(problem, problem.inputs.call(model), first=True)
    return _constant.Constants(problem, out, float(loss))


def def_loss(out, t):
    return F.cross_entropy(out, t)


@pytest.mark.parametrize(
    ("loss_fn", "standard"),
    [
        (def_loss, nn.CrossEntropyLoss()),
        (lambda out, t: F.cross_entropy(out, t), nn.CrossEntropyLoss()),
        (lambda out, t: F.nll_loss(out.log_softmax(1), t), nn.CrossEntropyLoss()),
        (
            lambda out, t: (out.logsumexp(1) - out.gather(1, t[:, None])[:, 0]).mean(),
            F.cross_entropy,
        ),
    ],
    ids=["def", "lambda", "nll-of-log-softmax", "hand-written"],
)
def test_a_custom_classification_loss_gets_the_optimum_of_its_standard_form(loss_fn, standard):
    torch.manual_seed(0)
    x, y = torch.randn(48, 8), torch.tensor([0] * 30 + [1] * 12 + [2] * 6)
    custom = assert_init_loss(mlp(8, 3), x, y, loss_fn)
    known = assert_init_loss(mlp(8, 3), x, y, standard)
    assert custom.expected == pytest.approx(known.expected, abs=1e-9)
    assert custom.noise_allowance == pytest.approx(known.noise_allowance, rel=1e-6)


def test_a_language_model_loss_that_reshapes_shares_one_constant_over_the_positions():
    torch.manual_seed(0)
    ids, nxt = torch.randint(0, V, (6, 10)), torch.randint(0, V, (6, 10))
    found = constants(TinyLM(), ids, nxt, lm_loss)
    assert found.layout.free == (2,) and found.layout.positions == (1,)
    assert "32 values (one per class along dim 2), shared over the batch of 6 and 10" in (
        found.layout.describe()
    )
    counts = torch.bincount(nxt.reshape(-1), minlength=V).double()
    prior = counts / counts.sum()
    entropy = float(-(prior[prior > 0] * prior[prior > 0].log()).sum())
    assert found.best.loss == pytest.approx(entropy, abs=1e-6)
    # The same as nn.CrossEntropyLoss on the logits moved to dim 1.
    moved = assert_init_loss(TinyLM(), ids, nxt, nn.CrossEntropyLoss(), output=lambda o: o.mT)
    assert assert_init_loss(TinyLM(), ids, nxt, lm_loss).expected == pytest.approx(moved.expected)


def focal(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A loss with no closed form: focal loss (gamma=2) over dim 1."""
    logp = out.log_softmax(1).gather(1, t[:, None])[:, 0]
    return (-((1 - logp.exp()) ** 2) * logp).mean()


def smoothed_lm(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), label_smoothing=0.1)


def test_a_loss_with_no_closed_form_is_minimised_numerically_and_no_constant_beats_it():
    torch.manual_seed(0)
    x, y = torch.randn(40, 8), torch.tensor([0] * 24 + [1] * 10 + [2] * 6)
    found = constants(mlp(8, 3), x, y, focal)
    assert found.spec is None and found.standard_shape is None
    gen = torch.Generator().manual_seed(1)
    best = found.best
    for _ in range(200):
        theta = best.constant + 0.3 * torch.randn(3, generator=gen, dtype=torch.float64)
        assert float(focal(theta.expand(40, 3), y)) >= best.loss - 1e-9
    # Its allowance comes from the sandwich H^-1 Var(psi): a focal loss is flatter than
    # cross-entropy near the optimum, so its excess (and allowance) is smaller, but not zero.
    ce = constants(mlp(8, 3), x, y, nn.CrossEntropyLoss()).allowance.loss
    assert 0 < found.allowance.loss < ce


def test_the_numeric_allowance_matches_the_closed_forms_where_both_apply():
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = torch.randint(0, 4, (64,))
    closed = constants(mlp(), x, y, nn.CrossEntropyLoss()).allowance.loss
    numeric = constants(mlp(), x, y, lambda o, t: 1.001 * F.cross_entropy(o, t))
    assert numeric.spec is None  # 0.1% off: not recognised, so derived from the derivatives
    assert numeric.allowance.loss == pytest.approx(1.001 * closed, rel=1e-3)
    yb = (torch.rand(64, 3) < torch.tensor([0.8, 0.3, 0.1])).float()
    closed = constants(mlp(8, 3), x, yb, nn.BCEWithLogitsLoss()).allowance.loss
    numeric = constants(
        mlp(8, 3), x, yb, lambda o, t: 1.001 * F.binary_cross_entropy_with_logits(o, t)
    )
    assert numeric.allowance.loss == pytest.approx(1.001 * closed, rel=0.05)  # Satterthwaite


class Segmenter(nn.Module):
    """A 1x1 conv per pixel: (B, 3, H, W) -> (B, classes, H, W)."""

    def __init__(self, classes: int, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 1)
        with torch.no_grad():
            self.conv.weight.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_per_pixel_loss_shares_one_constant_over_the_pixels():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    seg = (torch.rand(4, 8, 8) * torch.tensor([1.0, 3.0, 6.0]).sum()).long().clamp(0, 2)
    found = constants(Segmenter(3), x, seg, lambda o, t: F.cross_entropy(o, t))
    assert found.layout.free == (1,) and found.layout.positions == (2, 3)
    masks = (torch.rand(4, 1, 8, 8) < 0.2).float()
    binary = constants(
        Segmenter(1), x, masks, lambda o, t: F.binary_cross_entropy_with_logits(o, t)
    )
    assert binary.layout.free == (1,) and binary.layout.positions == (2, 3)  # cross-validated
    rate = float(masks.mean())
    bce = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert binary.best.loss == pytest.approx(bce, abs=1e-6)


def test_multi_label_rates_and_regression_means_keep_a_constant_each():
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    yb = (torch.rand(128, 3) < torch.tensor([0.9, 0.1, 0.4])).float()
    labels = constants(mlp(8, 3), x, yb, lambda o, t: F.binary_cross_entropy_with_logits(o, t))
    assert labels.layout.free == (1,)
    rates = yb.double().mean(0)
    h = -(rates * rates.log() + (1 - rates) * (1 - rates).log()).mean()
    assert labels.best.loss == pytest.approx(float(h), abs=1e-6)
    yr = torch.randn(128, 3) + torch.tensor([0.0, 5.0, -5.0])
    huber = constants(mlp(8, 3), x, yr, lambda o, t: F.huber_loss(o, t, delta=2.0) + 0 * o.sum())
    assert huber.layout.free == (1,)
    # Per-time-step regression with the same distribution at every step shares one constant.
    seq = torch.randn(128, 6)
    steps = constants(mlp(8, 6), x, seq, lambda o, t: ((o - t) ** 2).mean() + 0 * o.sum())
    assert steps.layout.free == ()


class WithHidden(nn.Module):
    def __init__(self, **fields: str) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor):
        return {"hidden": x, "logits": self.net(x)}


def test_it_works_through_output_on_dicts_tuples_and_hugging_face_outputs():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    x, y = torch.randn(32, 8), torch.arange(32) % 4
    assert assert_init_loss(WithHidden(), x, y, def_loss).expected == pytest.approx(math.log(4))
    pair = nn.Sequential(mlp())
    tupled = assert_init_loss(
        pair, x, y, def_loss, output=lambda out: (out, out.sum())[0]
    )  # a callable
    assert tupled.expected == pytest.approx(math.log(4))
    config = transformers.GPT2Config(
        vocab_size=V, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    ids, nxt = torch.randint(0, V, (4, 12)), torch.randint(0, V, (4, 12))
    gpt2 = transformers.GPT2LMHeadModel(config)
    result = assert_init_loss(gpt2, ids, nxt, lm_loss)  # ModelOutput.logits, (B, T, V)
    assert result.loss == pytest.approx(math.log(V), rel=0.05)
    uniform = assert_init_loss(gpt2, ids, nxt, lm_loss, expected="uniform")
    assert uniform.expected == pytest.approx(math.log(V)) and uniform.noise_allowance == 0


# Ten init-loss cases written the way people write losses; five correct, five with the bug
# the recipe's "verify loss @ init" is about.
def init_case(name: str):
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    ids, nxt = torch.randint(0, V, (8, 16)), torch.randint(0, V, (8, 16))
    y4 = torch.arange(64) % 4
    imbalanced = (torch.arange(64) % 8 == 0).float()[:, None]
    bce = lambda o, t: F.binary_cross_entropy_with_logits(o, t)  # noqa: E731
    zero_bias = mlp(8, 1)
    nn.init.zeros_(zero_bias[2].bias)
    odds = mlp(8, 1)
    with torch.no_grad():
        odds[2].bias.fill_(math.log(1 / 7))
    big = mlp(8, 4)
    with torch.no_grad():
        big[2].weight.mul_(20)
    mean50 = mlp(8, 1)
    y50 = 50 + torch.randn(64, 1)
    with torch.no_grad():
        mean50[2].bias.fill_(50.0)
    mse = lambda o, t: ((o - t) ** 2).mean()  # noqa: E731
    cases = {
        "def-ce-default": (False, mlp(), x, y4, def_loss),
        "def-ce-x20": (True, big, x, y4, def_loss),
        "lm-reshape-default": (False, TinyLM(), ids, nxt, lm_loss),
        "lm-reshape-x20": (True, TinyLM(scale=20), ids, nxt, lm_loss),
        "lambda-bce-log-odds": (False, odds, x, imbalanced, bce),
        "lambda-bce-zero-bias": (True, zero_bias, x, imbalanced, bce),
        "mse-bias-50": (False, mean50, x, y50, mse),
        "mse-zero-bias": (True, mlp(8, 1), x, y50, mse),
        "focal-default": (False, mlp(8, 3), x, torch.arange(64) % 3, focal),
        "focal-x20": (True, big3(), x, torch.arange(64) % 3, focal),
    }
    return cases[name]


def big3() -> nn.Sequential:
    model = mlp(8, 3)
    with torch.no_grad():
        model[2].weight.mul_(20)
    return model


CASES = [
    "def-ce-default",
    "def-ce-x20",
    "lm-reshape-default",
    "lm-reshape-x20",
    "lambda-bce-log-odds",
    "lambda-bce-zero-bias",
    "mse-bias-50",
    "mse-zero-bias",
    "focal-default",
    "focal-x20",
]


@pytest.mark.parametrize("name", CASES)
def test_custom_losses_pass_correct_inits_and_catch_wrong_ones(name):
    bug, model, x, y, loss_fn = init_case(name)
    if bug:
        with pytest.raises(AssertionError, match=r"(?s)the loss at init is .*Fix: "):
            assert_init_loss(model, x, y, loss_fn)
    else:
        assert_init_loss(model, x, y, loss_fn)


def test_expected_uniform_is_every_class_equally_likely():
    torch.manual_seed(0)
    x, y = torch.randn(32, 8), torch.tensor([0] * 28 + [1] * 4)
    assert assert_init_loss(
        mlp(8, 2), x, y, nn.CrossEntropyLoss(), expected="uniform"
    ).expected == (pytest.approx(math.log(2)))
    assert assert_init_loss(
        mlp(8, 2), x, y, nn.NLLLoss(), output=lambda o: o.log_softmax(1), expected="uniform"
    ).expected == pytest.approx(math.log(2))
    yb = y.float()[:, None]
    assert assert_init_loss(
        mlp(8, 1), x, yb, nn.BCEWithLogitsLoss(), expected="uniform"
    ).expected == (pytest.approx(math.log(2)))
    with pytest.raises(ValueError, match=r'expected="uniform" .*regression loss'):
        assert_init_loss(mlp(8, 1), x, yb, nn.MSELoss(), expected="uniform")
    with pytest.raises(ValueError, match=r"expected='most' must be a finite number"):
        assert_init_loss(mlp(8, 2), x, y, nn.CrossEntropyLoss(), expected="most")


def test_a_loss_with_no_lower_bound_over_constants_asks_for_expected():
    x, y = torch.randn(16, 8), torch.arange(16) % 4
    with pytest.raises(ValueError, match=r"loss_fn=.* has no lower bound .*pass expected="):
        assert_init_loss(mlp(), x, y, lambda o, t: -o.mean() + 0 * t.sum())
    assert assert_init_loss(mlp(), x, y, lambda o, t: -o.mean(), expected=1.0, rtol=5)


def test_the_overfit_target_of_a_custom_loss_comes_from_its_numeric_floor():
    torch.manual_seed(0)
    ids, nxt = torch.arange(24).reshape(2, 12) % V, torch.randint(0, V, (2, 12))
    result = assert_can_overfit(TinyLM(), ids, nxt, smoothed_lm, max_steps=300)
    found = constants(TinyLM(), ids, nxt, smoothed_lm)
    floor = float(found.floor)
    assert 0.4 < floor < found.best.loss  # label smoothing: the floor is not 0
    assert result.target_loss == pytest.approx(floor + 0.02 * (found.best.loss - floor), rel=1e-3)


@pytest.mark.nn_gpu
def test_on_cuda_a_custom_loss_with_a_device_weight_and_a_redundant_bias_are_judged(nn_device):
    from pytest_nnrecipe import assert_params_update

    torch.manual_seed(0)
    x, y = torch.randn(64, 8, device=nn_device), (torch.arange(64) % 4).to(nn_device)
    weight = torch.tensor([1.0, 2.0, 1.0, 0.5], device=nn_device)  # cannot run on the CPU

    def weighted(out, t):
        return F.cross_entropy(out, t, weight=weight)

    model = mlp().to(nn_device)
    found = constants(model, x, y, weighted)
    assert found.ev.device.type == "cuda"
    cpu = constants(mlp(), x.cpu(), y.cpu(), nn.CrossEntropyLoss(weight=weight.cpu()))
    assert found.best.loss == pytest.approx(cpu.best.loss, abs=1e-6)
    assert_init_loss(model, x, y, weighted)
    bn = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    result = assert_params_update(bn.to(nn_device), x, y, nn.CrossEntropyLoss())
    assert result.redundant == ("0.bias",)
