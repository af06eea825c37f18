"""Exact in the precisions people train in: a dependency that moves the outputs by 1e-3 of
their largest magnitude is caught in bfloat16 and float16, for float inputs and token ids, by
both checks and both methods; correct half-precision models pass; where reruns of the same
inputs differ (non-deterministic kernels, simulated here by a generator the check cannot
reseed) the threshold is a stated multiple of that measured noise, and what stays within it is
reported as inconclusive, never dropped."""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import pytest
import torch
from dependency_helpers import STRENGTH, Planted, caught, planted, tiny_lm
from torch import nn

from pytest_nnrecipe import PrecisionWarning, assert_causal, assert_no_batch_mixing

_spec = importlib.util.spec_from_file_location(
    "models_structural", Path(__file__).parents[1] / "examples" / "models_structural.py"
)
M = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(M)

HALF = [torch.bfloat16, torch.float16]
METHODS = ["auto", "grad", "perturb"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["floats", "tokens"])
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_a_leak_of_a_thousandth_is_caught_in_half_precision(dtype, kind, method):
    model, x = planted(kind, dtype, "batch")
    with torch.no_grad():
        y = model(x)
        moved = (y - Planted.forward(_without_leak(model), x)).abs().max() / y.abs().max()
    assert 0 < moved <= 1.2 * STRENGTH  # it moves the outputs by about 1e-3 of their size
    with pytest.raises(AssertionError, match=r"output of sample \d depends on input of sample"):
        assert_no_batch_mixing(model, x, method=method)
    model, x = planted(kind, dtype, "time")
    with pytest.raises(AssertionError, match=r"output at step \d depends on input at step"):
        assert_causal(model, x, method=method)


def _without_leak(model: Planted) -> Planted:
    clean = Planted.__new__(Planted)
    clean.__dict__.update(model.__dict__)
    clean.leak = None
    return clean


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["floats", "tokens"])
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_the_same_models_without_the_leak_pass_in_half_precision(dtype, kind, method):
    model, x = planted(kind, dtype, None)
    assert_no_batch_mixing(model, x, method=method)
    assert_causal(model, x, method=method)


# (id, model factory, inputs factory, causal time_dim or None)
EXAMPLES = [
    ("mlp", lambda: M.MLP(), lambda: torch.randn(6, 8), None),
    ("cnn-batchnorm", lambda: M.CNN(), lambda: torch.randn(4, 3, 6, 6), None),
    ("gru-encoder", lambda: M.SequenceEncoder(d=4), lambda: torch.randn(4, 5, 4), 1),
    ("causal-conv", lambda: M.CausalConvNet(), lambda: torch.randn(3, 4, 8), 2),
    ("transformer", lambda: M.CausalTransformer(d=8), lambda: torch.randn(3, 6, 8), 1),
    ("transformer-tokens", lambda: M.CausalTransformer(20, d=8), lambda: M.tokens(3, 6), 1),
    ("lstm-lm", lambda: M.LSTMLanguageModel(d=4), lambda: M.tokens(3, 6), 1),
]


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize(
    ("factory", "make_inputs", "time_dim"),
    [e[1:] for e in EXAMPLES],
    ids=[e[0] for e in EXAMPLES],
)
def test_the_correct_example_models_pass_in_half_precision(factory, make_inputs, time_dim, dtype):
    for seed in range(3):
        torch.manual_seed(seed)
        model, x = factory().to(dtype), make_inputs()
        x = x.to(dtype) if x.is_floating_point() else x
        for method in ["grad", "perturb"]:
            assert_no_batch_mixing(model, x, method=method)
            if time_dim is not None:
                assert_causal(model, x, time_dim=time_dim, method=method)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_tiny_hugging_face_lms_in_bfloat16_pass_by_gradient_and_by_perturbation(name):
    model = tiny_lm(name).to(torch.bfloat16)
    ids = torch.randint(0, 64, (3, 12), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        assert assert_causal(model, ids).method == "grad"  # at the embedding output
        assert assert_causal(model, ids, method="perturb").noise.exact  # bitwise reruns on CPU
        assert_no_batch_mixing(model, ids)
        assert_no_batch_mixing(model, ids, method="perturb")


# --- float16 gradients that round to zero -------------------------------------------------


class SmallGradient(nn.Module):
    """Large inputs scaled down (``x * 2**-16``, as a normalisation of big raw values would):
    the gradient of its leak, 1e-3 x 2**-16, is below float16's smallest number."""

    def __init__(self, leak: str) -> None:
        super().__init__()
        self.leak = leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 2.0**-16
        return h + STRENGTH * h.roll(1, dims=0 if self.leak == "batch" else 1)


def test_a_float16_gradient_that_rounds_to_zero_is_rescaled_and_the_leak_caught():
    x = ((torch.rand(4, 6, 8) + 0.5) * 3e4).half()
    model = SmallGradient("batch")
    leaf = x.clone().requires_grad_(True)
    cot = torch.zeros(4, 6, 8, dtype=torch.half)
    cot[1] = 1.0  # output sample 1 reads input sample 0 through the leak
    (grad,) = torch.autograd.grad(model(leaf), leaf, cot)
    assert bool((grad[0] == 0).all())  # float16 loses it: an unscaled gradient hides the leak
    message = caught(assert_no_batch_mixing, model, x, method="grad")
    assert re.search(r"output of sample \d depends on input of sample", message)
    message = caught(assert_causal, SmallGradient("time"), x, method="grad")
    assert re.search(r"output at step \d depends on input at step", message)


def test_rescaled_float16_gradients_raise_no_false_alarm():
    x = ((torch.rand(4, 6, 8) + 0.5) * 3e4).half()

    def clean(x: torch.Tensor) -> torch.Tensor:
        h = x * 2.0**-16
        return h + STRENGTH * h.cumsum(1)  # causal, and each sample on its own

    assert_no_batch_mixing(clean, x, method="grad")
    assert_causal(clean, x, method="grad")
    assert_causal(M.CausalTransformer(d=8).half(), torch.randn(3, 6, 8).half(), method="grad")


# --- rerun noise: reruns of the same inputs differ ----------------------------------------


class Noisy(nn.Module):
    """Adds noise of ``size`` from a generator of its own, which the check cannot reseed, so
    reruns of the same inputs differ as on non-deterministic kernels; ``every`` > 1 makes the
    noise intermittent (only every n-th call)."""

    def __init__(self, inner: nn.Module, size: float, every: int = 1) -> None:
        super().__init__()
        self.inner, self.size, self.every, self.calls = inner, size, every, 0
        self.gen = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        self.calls += 1
        if self.calls % self.every:
            return y
        return y + self.size * torch.randn(y.shape, generator=self.gen).to(y.dtype)


@pytest.mark.parametrize(
    ("dtype", "size"), [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)], ids=["float32", "bf16"]
)
def test_with_noisy_reruns_a_correct_model_passes_and_the_result_states_the_noise(dtype, size):
    torch.manual_seed(0)
    model = Noisy(Planted().to(dtype), size=size)  # a few units in the last place
    x = torch.randn(4, 6, 8).to(dtype)
    with pytest.warns(PrecisionWarning, match=r"noise floor.*Inconclusive at this precision"):
        result = assert_no_batch_mixing(model, x, method="perturb")
    assert 0 < result.noise.floor < result.noise.threshold == 4 * result.noise.floor
    with pytest.warns(PrecisionWarning, match=r"moved by up to \S+, within the noise"):
        assert_causal(model, x, method="perturb")


def test_with_noisy_reruns_a_leak_above_the_noise_fails_and_states_floor_and_threshold():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 8)
    model = Noisy(Planted(leak="batch"), size=1e-6)
    message = caught(assert_no_batch_mixing, model, x, method="perturb")
    assert re.search(r"output of sample \d depends on input of sample", message)
    assert re.search(
        r"Reruns of the unperturbed inputs differ by up to \S+ \(noise floor.*a change counts "
        r"as a dependency above \S+ \(4 x the floor\)",
        message,
    )
    model = Noisy(Planted(leak="time"), size=1e-6)
    message = caught(assert_causal, model, x, method="perturb")
    assert re.search(r"output at step \d depends on input at step", message)
    assert "noise floor" in message


def test_a_leak_within_the_noise_is_reported_as_inconclusive_with_its_size():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 8)
    leaky = Planted(leak="batch")
    model = Noisy(leaky, size=1e-2)  # noise ten times the leak: it cannot be told apart
    with pytest.warns(PrecisionWarning, match=r"Inconclusive at this precision: in \d+ of \d+"):
        result = assert_no_batch_mixing(model, x, method="perturb")
    assert result.noise.within > 0 and result.noise.within <= result.noise.threshold
    with pytest.raises(AssertionError):  # the gradient is exact whatever the noise
        assert_no_batch_mixing(model, x, method="grad")


def test_intermittent_noise_after_identical_reruns_is_no_false_alarm():
    torch.manual_seed(0)
    model = Noisy(Planted(), size=1e-4, every=4)  # the first rerun comes out identical
    x = torch.randn(4, 6, 8)
    for check in (assert_no_batch_mixing, assert_causal):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrecisionWarning)
            result = check(model, x, method="perturb")
        assert result.noise.floor > 0  # found out, and measured, before anything was reported


def test_bitwise_identical_reruns_count_any_change_however_small():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 8)

    class Faint(Planted):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = super().forward(x)
            return y + 1e-6 * y.roll(-1, dims=1)  # a millionth: below any per-dtype tolerance

    message = caught(assert_causal, Faint(), x, method="perturb")
    assert "Reruns of the unperturbed inputs are bitwise identical, so any change" in message
    result = assert_causal(Planted(), x, method="perturb")
    assert result.noise.exact and result.noise.threshold == 0.0


def test_a_model_whose_reruns_differ_by_its_own_size_is_refused_as_before():
    model = Noisy(Planted(), size=10.0)  # the noise swamps the outputs: no kernel noise
    with pytest.raises(ValueError, match=r"different outputs for the same inputs .* no kernel"):
        assert_no_batch_mixing(model, torch.randn(4, 6, 8), method="perturb")
