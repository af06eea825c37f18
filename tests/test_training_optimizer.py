"""assert_optimizer_covers: the optimizer you train with holds exactly the model's trainable
parameters. One built before the head was swapped, one that holds frozen parameters, one with
a parameter in two groups are each named; correct optimizers pass (param groups, frozen
backbones, HF models); misuse is named; nothing is lost. Also an option of assert_lr_schedule
(model=), which takes your optimizer instance."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from pytest_nnrecipe import OptimizerCoverage, assert_lr_schedule, assert_optimizer_covers

transformers.logging.set_verbosity_error()


def net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def test_an_optimizer_on_every_parameter_passes():
    model = net()
    result = assert_optimizer_covers(model, torch.optim.Adam(model.parameters()))
    assert result == OptimizerCoverage(trainable=4, groups=1, frozen=())


def test_param_groups_and_a_frozen_backbone_pass():
    model = net()
    model[0].requires_grad_(False)
    opt = torch.optim.SGD([{"params": model[2].weight}, {"params": model[2].bias, "lr": 0.1}], lr=1)
    result = assert_optimizer_covers(model, opt)
    assert result.groups == 2
    assert result.frozen == ("0.weight", "0.bias")


def test_an_optimizer_built_before_the_head_was_swapped_is_caught_naming_the_head():
    model = net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model[2] = nn.Linear(16, 5)  # a new head for 5 classes, after the optimizer
    with pytest.raises(AssertionError) as info:
        assert_optimizer_covers(model, opt)
    text = str(info.value)
    assert "2 trainable parameters missing; 2 stale tensors held" in text
    assert "Not in any param group (they get gradients and never move): 2.weight, 2.bias" in text
    assert "shapes (2, 16), (2,)" in text
    assert "built before module '2' was replaced" in text


def test_a_hugging_face_classifier_whose_head_was_replaced_after_the_optimizer_is_caught():
    config = transformers.BertConfig(
        vocab_size=64,
        max_position_embeddings=16,
        num_hidden_layers=1,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    assert_optimizer_covers(model, torch.optim.AdamW(model.parameters()))
    opt = torch.optim.AdamW(model.parameters())
    model.classifier = nn.Linear(32, 4)
    with pytest.raises(
        AssertionError, match=r"(?s)classifier\.weight, classifier\.bias.*'classifier'"
    ):
        assert_optimizer_covers(model, opt)


def test_frozen_parameters_held_by_the_optimizer_are_named():
    model = net()
    model[0].requires_grad_(False)
    with pytest.raises(AssertionError, match=r"(?s)2 frozen parameters held.*0\.weight, 0\.bias"):
        assert_optimizer_covers(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_frozen_by_name_means_left_out_of_the_optimizer():
    model = net()
    opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
    with pytest.raises(AssertionError, match=r"(?s)missing.*0\.weight, 0\.bias.*unfrozen"):
        assert_optimizer_covers(model, opt)
    assert assert_optimizer_covers(model, opt, frozen=("0",)).trainable == 2
    with pytest.raises(AssertionError, match=r"1 frozen parameter held"):
        assert_optimizer_covers(model, torch.optim.SGD(model.parameters(), lr=0.1), frozen="2.bias")


def test_a_parameter_in_two_groups_is_named():
    model = net()
    params = list(model.parameters())
    opt = torch.optim.SGD([{"params": params}], lr=0.1)
    opt.param_groups.append({**opt.param_groups[0], "params": [params[0]]})
    with pytest.raises(
        AssertionError, match=r"(?s)held twice.*more than one param group: 0\.weight"
    ):
        assert_optimizer_covers(model, opt)


def test_assert_lr_schedule_checks_the_optimizer_too_when_given_the_model():
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model[2] = nn.Linear(16, 3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    with pytest.raises(AssertionError, match=r"assert_optimizer_covers failed"):
        assert_lr_schedule(opt, sched, 100, model=model)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: assert_optimizer_covers("net", None), TypeError, r"model= must be"),
        (
            lambda: assert_optimizer_covers(net(), lambda p: torch.optim.SGD(p, lr=1)),
            TypeError,
            r"optimizer= must be a torch\.optim\.Optimizer instance \(a factory\?",
        ),
        (
            lambda: assert_optimizer_covers(net(), torch.optim.SGD(net().parameters()), frozen="x"),
            ValueError,
            r"frozen=\('x',\) names 'x', which is no parameter or module of Sequential",
        ),
        (
            lambda: assert_optimizer_covers(net(), torch.optim.SGD(net().parameters()), frozen=3),
            TypeError,
            r"frozen=3 must be parameter or module names",
        ),
    ],
    ids=["model", "factory", "frozen-unknown", "frozen-not-names"],
)
def test_misuse_names_the_argument(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_nothing_is_lost():
    model = net()
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 8)).sum().backward()
    opt.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    groups = [dict(g) for g in opt.param_groups]
    assert_optimizer_covers(model, opt)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [dict(g) for g in opt.param_groups] == groups
    assert all(p.grad is not None for p in model.parameters())


FIXTURE_SUITE = """
import torch
from torch import nn


def test_optimizer(assert_optimizer_covers):
    model = nn.Linear(4, 2)
    assert_optimizer_covers(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_inputs(assert_inputs_used):
    assert_inputs_used(nn.Linear(4, 2), torch.randn(3, 4))
"""


def test_both_checks_are_fixtures_and_rows_of_the_recipe_report(pytester: pytest.Pytester):
    pytester.makepyfile(test_pre=FIXTURE_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--nn-report")
    result.assert_outcomes(passed=2)
    lines = result.stdout.lines
    start = next(k for k, line in enumerate(lines) if "nnrecipe: recipe coverage" in line)
    rows = {
        line.split("  ")[0].strip(): line
        for line in lines[start + 1 :]
        if "Use backprop" in line or "Verify decreasing" in line
    }
    # tests covering the tip, and their verdict
    assert rows["Use backprop to chart dependencies"].split()[-2:] == ["1", "ok"]  # inputs_used
    assert rows["Verify decreasing training loss"].split()[-2:] == ["1", "ok"]  # optimizer
