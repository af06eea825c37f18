"""The structural checks on the hardware people train on: cuDNN's RNNs (whose backward runs
only in training mode and has no batching rule) get the native kernels for the check's own
gradient passes, restored afterwards; on CUDA (--nn-gpu, scripts/gpu-check.sh) RNNs in eval
mode, non-deterministic kernels and half-precision leaks are decided as on the CPU."""

from __future__ import annotations

import warnings

import pytest
import torch
from dependency_helpers import planted, tiny_lm
from torch import nn

from pytest_nnrecipe import PrecisionWarning, assert_causal, assert_no_batch_mixing

RNNS = [nn.LSTM, nn.GRU, nn.RNN]


class Recurrent(nn.Module):
    """A batch-first RNN that notes whether cuDNN was on while it ran."""

    def __init__(self, kind: type[nn.RNNBase], bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = kind(4, 4, batch_first=True, bidirectional=bidirectional)
        self.cudnn: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.cudnn.append(torch.backends.cudnn.enabled)
        return self.rnn(x)[0]


@pytest.mark.parametrize("kind", RNNS, ids=lambda k: k.__name__)
def test_the_gradient_passes_of_an_rnn_run_without_cudnn_and_restore_it(kind):
    model = Recurrent(kind)
    cudnn = torch.backends.cudnn
    before = (cudnn.enabled, cudnn.benchmark, cudnn.deterministic)
    try:
        cudnn.benchmark = True  # the user's other settings survive the check's passes
        assert_causal(model, torch.randn(3, 5, 4), method="grad")
        assert_no_batch_mixing(model, torch.randn(3, 5, 4), method="grad")
        assert model.cudnn and not any(model.cudnn)
        assert cudnn.enabled == before[0] and cudnn.benchmark
    finally:
        cudnn.benchmark = before[1]
    model.cudnn.clear()
    assert_causal(model, torch.randn(3, 5, 4), method="perturb")  # no backward: cuDNN stays
    assert all(model.cudnn) == cudnn.enabled


def test_models_without_an_rnn_keep_cudnn():
    seen = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.backends.cudnn.enabled)
        return x.cumsum(1)

    assert_causal(model, torch.randn(2, 4, 3), method="grad")
    assert seen == [torch.backends.cudnn.enabled]


# --- on CUDA (scripts/gpu-check.sh runs these with --nn-gpu) -------------------------------


@pytest.mark.nn_gpu
@pytest.mark.parametrize("kind", RNNS, ids=lambda k: k.__name__)
def test_rnns_in_eval_mode_are_checked_by_gradient_on_cuda(
    kind, assert_causal, assert_no_batch_mixing
):
    x = torch.randn(3, 5, 4)
    assert assert_causal(Recurrent(kind), x).method == "grad"
    assert assert_no_batch_mixing(Recurrent(kind), x).method == "grad"
    with pytest.raises(AssertionError, match=r"bidirectional"):
        assert_causal(Recurrent(kind, bidirectional=True), x)


class Atomics(nn.Module):
    """Sums 256 features into 4 bins per step with ``index_add_``, which on CUDA adds with
    atomics in no fixed order: reruns of the same inputs differ in the last bits. Causal and
    sample by sample; ``leak=True`` adds 1e-3 of the previous sample's output."""

    def __init__(self, leak: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 256)
        self.leak = leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        bins = torch.arange(256, device=h.device) % 4
        y = torch.zeros(*h.shape[:-1], 4, device=h.device, dtype=h.dtype).index_add_(-1, bins, h)
        return y + 1e-3 * y.roll(1, dims=0) if self.leak else y


@pytest.mark.nn_gpu
def test_non_deterministic_kernels_raise_no_false_alarm_and_hide_no_leak_on_cuda(
    assert_causal, assert_no_batch_mixing
):
    if torch.are_deterministic_algorithms_enabled():
        pytest.skip("--nn-deterministic: index_add_ runs deterministically")
    x = torch.randn(4, 6, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        assert_no_batch_mixing(Atomics(), x, method="perturb")
        assert_causal(Atomics(), x, method="perturb")
        with pytest.raises(AssertionError, match=r"output of sample \d depends on input"):
            assert_no_batch_mixing(Atomics(leak=True), x, method="perturb")


@pytest.mark.nn_gpu
@pytest.mark.parametrize("method", ["auto", "grad", "perturb"])
@pytest.mark.parametrize("kind", ["floats", "tokens"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_a_leak_of_a_thousandth_is_caught_in_half_precision_on_cuda(
    dtype, kind, method, assert_causal, assert_no_batch_mixing
):
    model, x = planted(kind, dtype, "batch")
    with pytest.raises(AssertionError, match=r"output of sample \d depends on input of sample"):
        assert_no_batch_mixing(model, x, method=method)
    model, x = planted(kind, dtype, "time")
    with pytest.raises(AssertionError, match=r"output at step \d depends on input at step"):
        assert_causal(model, x, method=method)
    model, x = planted(kind, dtype, None)
    assert_no_batch_mixing(model, x, method=method)
    assert_causal(model, x, method=method)


@pytest.mark.nn_gpu
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_tiny_hugging_face_lms_in_bfloat16_pass_on_cuda(name, assert_causal, nn_device):
    model = tiny_lm(name).to(torch.bfloat16)
    ids = torch.randint(0, 64, (3, 12), generator=torch.Generator().manual_seed(1))
    assert_causal(model, ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)  # non-deterministic kernels may say so
        assert_causal(model, ids, method="perturb")
