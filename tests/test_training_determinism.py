"""assert_deterministic: a reproducible model passes; each source of non-determinism is caught
with a message that names where the runs part and why; misuse is named; nothing is lost."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch
from torch import nn

from pytest_nnrecipe import assert_deterministic

X = torch.randn(16, 8)
Y = torch.arange(16) % 3


def clock_generator():
    return torch.Generator().manual_seed(time.time_ns() % 2**62)


class Net(nn.Module):
    """``embed -> middle -> head``, with dropout and BatchNorm (train-mode statistics change
    by design and must not be blamed)."""

    def __init__(self, middle=None):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.3))
        self.middle = middle if middle is not None else nn.Identity()
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.middle(self.embed(x)))


class ClockNoise(nn.Module):
    def __init__(self):
        super().__init__()
        self.gen = clock_generator()

    def forward(self, x):
        return x + torch.randn(x.shape, generator=self.gen)


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


class BufferCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        self.seen += 1
        return x + self.seen


class NumpyNoise(nn.Module):
    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng()

    def forward(self, x):
        return x + torch.from_numpy(self.rng.normal(size=x.shape).astype("float32"))


class PythonRandom(nn.Module):
    """Draws from Python's global ``random``: the seed reaches it."""

    def forward(self, x):
        return x * random.random()


class KernelLike(nn.Module):
    """Stands in for an atomic-add kernel: tiny noise unless deterministic algorithms are on
    (``grad_only``: only when autograd records, so only the training runs see it)."""

    def __init__(self, grad_only=False, size=1e-6):
        super().__init__()
        self.grad_only, self.size = grad_only, size

    def forward(self, x):
        if torch.are_deterministic_algorithms_enabled():
            return x
        if self.grad_only and not torch.is_grad_enabled():
            return x
        return x + self.size * torch.randn(x.shape, generator=clock_generator())


class NoisyBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        if torch.are_deterministic_algorithms_enabled():
            return grad
        return grad + 1e-7 * torch.randn(grad.shape, generator=clock_generator())


class BackwardOnly(nn.Module):
    def forward(self, x):
        return NoisyBackward.apply(x)


class ParentNoise(nn.Module):
    """The difference is made by the model's own code, between two submodules."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Linear(8, 16), nn.Linear(16, 3)
        self.gen = clock_generator()

    def forward(self, x):
        h = self.embed(x)
        return self.head(h + torch.randn(h.shape, generator=self.gen))


class NoisySGD(torch.optim.SGD):
    def step(self, closure=None):
        loss = super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.add_(1e-6 * torch.randn(p.shape, generator=clock_generator()))
        return loss


CE = nn.CrossEntropyLoss()


def test_a_model_with_dropout_and_batchnorm_passes_forward_and_training():
    result = assert_deterministic(Net(), X, Y, CE, steps=2)
    assert result.steps == 2 and len(result.losses) == 3
    assert result.output_values == 16 * 3
    # losses (3) + gradients (2 steps x 6) + parameters (2 updates x 6)
    assert result.tensors == 1 + 3 + 12 + 12
    assert not result.deterministic_algorithms


def test_without_targets_only_the_forwards_are_compared():
    result = assert_deterministic(Net(), X)
    assert result.steps == 0 and result.losses == () and result.tensors == 1


def test_a_model_drawing_from_pythons_random_passes_because_the_seed_reaches_it():
    assert_deterministic(Net(PythonRandom()), X, Y, CE)


def test_a_clock_seeded_generator_is_named_with_its_module():
    with pytest.raises(AssertionError) as info:
        assert_deterministic(Net(ClockNoise()), X, Y, CE)
    text = str(info.value)
    assert "two forward passes from the same seed differ: the output (16, 3)" in text
    assert "first difference: the output of `middle` (ClockNoise)" in text
    assert "while its inputs agree" in text
    assert "`middle.gen` (torch.Generator, initial seed" in text
    assert "Fix: draw from torch's default generator" in text


def test_a_call_counter_is_named_as_state_carried_between_calls():
    with pytest.raises(
        AssertionError,
        match=r"(?s)output of `middle` \(Counter\).*state carried from call to call in "
        r"`middle` \(Counter\): during one forward its attribute calls: 2 -> 3.*Fix: compute",
    ):
        assert_deterministic(Net(Counter()), X)


def test_a_buffer_updated_in_forward_is_named():
    with pytest.raises(AssertionError, match=r"its buffer seen changed \(1 of 1 values differ"):
        assert_deterministic(Net(BufferCounter()), X)


def test_a_private_numpy_generator_is_named():
    with pytest.raises(AssertionError, match=r"`middle.rng` \(numpy Generator\) advanced"):
        assert_deterministic(Net(NumpyNoise()), X)


def test_a_difference_made_by_the_parents_own_code_is_placed_between_its_submodules():
    with pytest.raises(
        AssertionError,
        match=r"(?s)the input of `head` \(Linear\).*after the output of `embed` agreed: made in "
        r"the forward of the model \(ParentNoise\).*`gen` \(torch.Generator",
    ):
        assert_deterministic(ParentNoise(), X)


def test_a_kernel_that_deterministic_algorithms_fix_is_named_with_the_fix():
    with pytest.raises(
        AssertionError,
        match=r"(?s)non-deterministic kernels: with torch.use_deterministic_algorithms\(True\) "
        r"the runs agree.*--nn-deterministic.*CUBLAS_WORKSPACE_CONFIG=:4096:8",
    ):
        assert_deterministic(Net(KernelLike()), X)
    assert not torch.are_deterministic_algorithms_enabled()  # the flag was put back


def test_under_deterministic_algorithms_the_same_model_passes():
    torch.use_deterministic_algorithms(True)
    try:
        result = assert_deterministic(Net(KernelLike()), X, Y, CE)
    finally:
        torch.use_deterministic_algorithms(False)
    assert result.deterministic_algorithms


def test_a_training_forward_that_differs_is_found_at_its_step_and_module():
    with pytest.raises(
        AssertionError,
        match=r"(?s)two training runs from the same seed part at step 0: the loss is .* in one "
        r"and .* in the other.*the output of `middle` \(KernelLike\).*non-deterministic kernels"
        r".*loss, run 1",
    ):
        assert_deterministic(Net(KernelLike(grad_only=True, size=1e-2)), X, Y, CE)


class GatedSide(nn.Module):
    """A side branch whose output differs between runs but enters the output times a gate
    that starts at exactly 0: the loss is bitwise the same, the gate's gradient is not."""

    def __init__(self):
        super().__init__()
        self.embed, self.head, self.side = nn.Linear(8, 16), nn.Linear(16, 3), nn.Linear(16, 3)
        self.noise = KernelLike(grad_only=True, size=1e-3)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        h = self.embed(x)
        return self.head(h) + self.gate * self.side(self.noise(h))


def test_a_forward_difference_that_the_loss_hides_is_still_found_in_the_forward():
    with pytest.raises(
        AssertionError,
        match=r"(?s)the losses agree but the gradients of 1 of 7 parameters differ, e.g. gate:"
        r".*the loss rounds to the same value, but first difference: the output of `noise` "
        r"\(KernelLike\)",
    ):
        assert_deterministic(GatedSide(), X, Y, CE)


def test_a_non_deterministic_backward_is_placed_after_the_last_parameter_it_reaches():
    with pytest.raises(
        AssertionError,
        match=r"(?s)part at step 0: the losses agree but the gradients of 4 of 6 parameters "
        r"differ.*backward parts first at embed.1.weight.*in the backward of `embed.2` "
        r"\(Dropout\) or `middle` \(BackwardOnly\) or `embed.1` \(BatchNorm1d\) itself"
        r".*non-deterministic kernels",
    ):
        assert_deterministic(Net(BackwardOnly()), X, Y, CE)


def test_a_non_deterministic_optimiser_step_is_named():
    with pytest.raises(
        AssertionError,
        match=r"(?s)part in update 1: losses and gradients agree but 6 of 6 parameters differ"
        r".*optimiser's update itself is non-deterministic \(NoisySGD\(lr=0.1\)\)"
        r".*Look in the optimiser's step",
    ):
        assert_deterministic(Net(), X, Y, CE, optimizer=lambda p: NoisySGD(p, lr=0.1))


BAD = [
    ("targets-without-loss", lambda: assert_deterministic(Net(), X, Y), ValueError,
     r"targets= is given without loss_fn=.*Pass loss_fn= too, or neither"),
    ("loss-without-targets", lambda: assert_deterministic(Net(), X, loss_fn=CE), ValueError,
     r"loss_fn= is given without targets="),
    ("optimizer-without-training", lambda: assert_deterministic(
        Net(), X, optimizer=lambda p: torch.optim.SGD(p, lr=0.1)), ValueError,
     r"optimizer= is used only by the training runs"),
    ("steps-zero", lambda: assert_deterministic(Net(), X, Y, CE, steps=0), ValueError,
     r"steps=0 must be a positive int"),
    ("not-a-module", lambda: assert_deterministic(lambda x: x, X), TypeError,
     r"model= must be a torch.nn.Module for assert_deterministic"),
    ("optimizer-instance", lambda: assert_deterministic(
        Net(), X, Y, CE, optimizer=torch.optim.SGD(Net().parameters(), lr=0.1)), TypeError,
     r"optimizer= got an optimizer instance"),
    ("inputs-not-tensors", lambda: assert_deterministic(Net(), "x"), TypeError,
     r"inputs= must be a tensor"),
    ("output-not-found", lambda: assert_deterministic(Net(), X, output="logits"), ValueError,
     r"output='logits' finds no tensor"),
    ("loss-class", lambda: assert_deterministic(Net(), X, Y, nn.CrossEntropyLoss), TypeError,
     r"loss_fn=nn.CrossEntropyLoss is a class"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_misuse_names_the_argument_and_the_fix(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _state(model, x):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [m.training for m in model.modules()],
        torch.get_rng_state(),
        random.getstate(),
        np.random.get_state()[1].copy(),
        x.clone(),
    )


def _same(a, b):
    assert a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert all(
        (g is None and h is None) or torch.equal(g, h) for g, h in zip(a[1], b[1], strict=True)
    )
    assert a[2] == b[2]
    assert torch.equal(a[3], b[3]) and a[4] == b[4] and np.array_equal(a[5], b[5])
    assert torch.equal(a[6], b[6])


@pytest.mark.parametrize("middle", [nn.Identity, Counter, ClockNoise], ids=lambda m: m.__name__)
def test_nothing_is_lost_whether_it_passes_or_fails(middle):
    model = Net(middle())
    model.eval()
    model(X).sum().backward()  # gradients the check must leave alone
    x = X.clone()
    before = _state(model, x)
    generator = (
        model.middle.gen.get_state().clone() if isinstance(model.middle, ClockNoise) else None
    )
    try:
        assert_deterministic(model, x, Y, CE)
    except AssertionError:
        assert middle is not nn.Identity
    _same(before, _state(model, x))
    if isinstance(model.middle, Counter):
        assert model.middle.calls == 1  # only the call above: the check ran copies
    if generator is not None:
        assert torch.equal(model.middle.gen.get_state(), generator)
