"""Misuse of the training checks: one table of calls, each with the error that names the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_nnrecipe import (
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_init_loss,
    assert_loss_decreases,
    assert_lr_schedule,
    assert_optimizer_covers,
    assert_params_update,
)

X = torch.randn(8, 8)
Y = torch.arange(8) % 4
YR = torch.randn(8, 1)


def net(n_out=4):
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, n_out))


def sgd():
    return torch.optim.SGD(net().parameters(), lr=0.1)


def broken_factory(params):
    raise RuntimeError("boom")


def nan_model():
    class NaN(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 4)

        def forward(self, x):
            return self.lin(x) * float("nan")

    return NaN()


class EmbeddingAndScores(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        h = self.embed(x)
        return {"embedding": h, "scores": self.head(h)}


def other_schedulers_optimizer():
    o = sgd()
    return assert_lr_schedule(sgd(), torch.optim.lr_scheduler.StepLR(o, 10), 100)


CASES = [
    (
        "list-of-samples",
        lambda: assert_params_update(net(), list(X), Y, nn.CrossEntropyLoss()),
        ValueError,
        r"inputs= is a list of 8 tensors of one shape \(8,\), but model= takes 1 positional "
        r"argument: Sequential\.forward\(input\).*inputs=torch\.stack\(samples\).*"
        r"pass a tuple",
    ),
    (
        "batch-size-mismatch",
        lambda: assert_can_overfit(net(), X, Y[:7], nn.CrossEntropyLoss()),
        ValueError,
        r"targets= has 7 samples .* batch size 8",
    ),
    (
        "float-targets-shaped-like-class-indices",
        lambda: assert_init_loss(net(), X, Y.float(), nn.CrossEntropyLoss()),
        TypeError,
        r"targets= is torch\.float32 shaped like class indices .*targets\.long\(\)",
    ),
    (
        "int32-class-indices",
        lambda: assert_loss_decreases(net(), X, Y.int(), nn.CrossEntropyLoss()),
        TypeError,
        r"targets= has dtype torch\.int32; .*targets\.long\(\)",
    ),
    (
        "integer-targets-for-mse",
        lambda: assert_init_loss(net(1), X, Y[:, None], nn.MSELoss()),
        TypeError,
        r"needs float targets: pass targets\.float\(\)",
    ),
    (
        "shapes-that-broadcast",
        lambda: assert_can_overfit(net(1), X, YR[:, 0], nn.MSELoss()),
        ValueError,
        r"targets= of shape \(8,\) differs from the output's shape \(8, 1\).*broadcast",
    ),
    (
        "class-out-of-range",
        lambda: assert_init_loss(net(), X, Y + 5, nn.CrossEntropyLoss()),
        ValueError,
        r"targets= holds class \d but the model outputs 4 classes",
    ),
    (
        "loss-not-scalar",
        lambda: assert_params_update(net(), X, Y, nn.CrossEntropyLoss(reduction="none")),
        ValueError,
        r"loss_fn= returned a tensor of shape \(8,\), not a scalar",
    ),
    (
        "optimizer-covers-given-a-factory",
        lambda: assert_optimizer_covers(net(), lambda params: torch.optim.SGD(params, lr=0.1)),
        TypeError,
        r"optimizer= must be a torch\.optim\.Optimizer instance \(a factory\? pass the optimizer",
    ),
    (
        "optimizer-covers-frozen-unknown",
        lambda: assert_optimizer_covers(net(), sgd(), frozen=["encoder"]),
        ValueError,
        r"frozen=\('encoder',\) names 'encoder', which is no parameter or module of Sequential",
    ),
    (
        "lr-schedule-model-not-a-module",
        lambda: (
            lambda o: assert_lr_schedule(
                o, torch.optim.lr_scheduler.StepLR(o, 10), 100, model="net"
            )
        )(sgd()),
        TypeError,
        r"model= must be the torch\.nn\.Module you train",
    ),
    (
        "loss-not-a-tensor",
        lambda: assert_loss_decreases(net(), X, Y, lambda o, t: 1.0),
        TypeError,
        r"loss_fn= returned float",
    ),
    (
        "loss-fn-not-callable",
        lambda: assert_can_overfit(net(), X, Y, "cross_entropy"),
        TypeError,
        r"loss_fn= must be a callable",
    ),
    (
        "loss-class-instead-of-an-instance",
        lambda: assert_init_loss(net(), X, Y, nn.CrossEntropyLoss),
        TypeError,
        r"loss_fn=nn\.CrossEntropyLoss is a class, not a loss.*loss_fn=nn\.CrossEntropyLoss\(\)",
    ),
    (
        "dict-output-with-no-logits",
        lambda: assert_can_overfit(EmbeddingAndScores(), X, Y, nn.CrossEntropyLoss()),
        ValueError,
        r"2 tensors and no 'logits': 'embedding' \(8, 16\), 'scores' \(8, 4\).*Pass output=",
    ),
    (
        "strict-not-a-bool",
        lambda: assert_params_update(net(), X, Y, nn.CrossEntropyLoss(), strict="yes"),
        TypeError,
        r"strict='yes' must be True or False",
    ),
    (
        "restarts-not-a-bool",
        lambda: (
            lambda o: assert_lr_schedule(o, torch.optim.lr_scheduler.StepLR(o, 10), 100, restarts=1)
        )(sgd()),
        TypeError,
        r"restarts=1 must be True",
    ),
    (
        "loss-fn-that-raises",
        lambda: assert_can_overfit(net(), X, Y, lambda o, t: o @ t),
        ValueError,
        r"loss_fn= raised RuntimeError on the model's output of shape \(8, 4\)",
    ),
    (
        "model-not-a-module",
        lambda: assert_can_overfit(lambda x: x, X, Y, nn.CrossEntropyLoss()),
        TypeError,
        r"model= must be a torch\.nn\.Module",
    ),
    (
        "non-finite-loss-at-step-0",
        lambda: assert_can_overfit(nan_model(), X, Y, nn.CrossEntropyLoss()),
        AssertionError,
        r"(?s)the loss at step 0 is nan before any update.*non-finite already",
    ),
    (
        "optimizer-factory-that-fails",
        lambda: assert_can_overfit(net(), X, Y, nn.CrossEntropyLoss(), optimizer=broken_factory),
        TypeError,
        r"optimizer= factory raised RuntimeError: boom",
    ),
    (
        "optimizer-instance-instead-of-factory",
        lambda: assert_loss_decreases(net(), X, Y, nn.CrossEntropyLoss(), optimizer=sgd()),
        TypeError,
        r"optimizer= got an optimizer instance .*Pass a factory",
    ),
    (
        "optimizer-factory-returning-junk",
        lambda: assert_params_update(net(), X, Y, nn.CrossEntropyLoss(), optimizer=lambda p: p),
        TypeError,
        r"optimizer= factory returned list, not a torch\.optim\.Optimizer",
    ),
    (
        "max-steps-zero",
        lambda: assert_can_overfit(net(), X, Y, nn.CrossEntropyLoss(), max_steps=0),
        ValueError,
        r"max_steps=0 must be a positive int",
    ),
    (
        "negative-rtol",
        lambda: assert_init_loss(net(), X, Y, nn.CrossEntropyLoss(), rtol=-1),
        ValueError,
        r"rtol=-1 must be a positive number",
    ),
    (
        "ignore-pattern-matching-nothing",
        lambda: assert_params_update(net(), X, Y, nn.CrossEntropyLoss(), ignore=["head.*"]),
        ValueError,
        r"ignore=\['head\.\*'\]: \['head\.\*'\] match no trainable parameter",
    ),
    (
        "zero-naming-no-input",
        lambda: assert_beats_input_independent_baseline(
            net(), X, Y, nn.CrossEntropyLoss(), zero="ids"
        ),
        ValueError,
        r"zero=\['ids'\]: 'ids' names no input tensor",
    ),
    (
        "zero-mapping-to-a-string",
        lambda: assert_beats_input_independent_baseline(
            net(), X, Y, nn.CrossEntropyLoss(), zero={"inputs[0]": "0"}
        ),
        TypeError,
        r"zero=\{'inputs\[0\]': '0'\}: a dict maps input names to the number that replaces",
    ),
    (
        "zero-mapping-naming-no-input",
        lambda: assert_beats_input_independent_baseline(
            net(), X, Y, nn.CrossEntropyLoss(), zero={"ids": 0}
        ),
        ValueError,
        r"zero=\{'ids': 0\}: 'ids' names no input tensor",
    ),
    (
        "schedule-without-optimizer",
        lambda: assert_lr_schedule(net(), torch.optim.lr_scheduler.StepLR(sgd(), 10), 100),
        TypeError,
        r"optimizer= must be a torch\.optim\.Optimizer; got Sequential",
    ),
    (
        "scheduler-of-another-optimizer",
        other_schedulers_optimizer,
        ValueError,
        r"scheduler= is bound to a different optimizer",
    ),
    (
        "total-steps-zero",
        lambda: (lambda o: assert_lr_schedule(o, torch.optim.lr_scheduler.StepLR(o, 10), 0))(sgd()),
        ValueError,
        r"total_steps=0 must be an int >= 2",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_misuse_raises_an_error_that_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
