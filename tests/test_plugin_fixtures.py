"""The fixtures: nn_device, nn_seed, and one per check of the registry (_registry.CHECKS)."""

from __future__ import annotations

import pytest

# A plugin loaded with -p before the entry point: it adds a check to the registry, as a check
# module of the package does, and the plugin must make a fixture of it.
FAKE_CHECKS_PLUGIN = """
from pytest_nnrecipe import _registry

_registry.CHECKS["assert_fake"] = _registry.Check("assert_fake", "fake_check")
"""

FAKE_CHECK = """
import torch

def assert_fake(model, x, *, scale=1.0):
    '''Report where the model and input are and which seed the RNGs were seeded with.'''
    return next(model.parameters()).device, x.device, torch.initial_seed(), scale
"""

FIXTURES_TEST = """
import inspect
import pytest
import torch
import pytest_nnrecipe

def test_device_and_seed(nn_device, nn_seed):
    assert nn_device == torch.device("cpu")
    assert isinstance(nn_seed, int) and torch.initial_seed() == nn_seed

@pytest.mark.nn_seed(77)
def test_the_check_fixture_binds_device_and_seed(assert_fake, nn_device):
    model = torch.nn.Linear(2, 2)
    torch.manual_seed(5)
    model_device, x_device, seed, scale = assert_fake(model, torch.zeros(2), scale=2.0)
    assert (model_device, x_device, seed, scale) == (nn_device, nn_device, 77, 2.0)
    assert torch.initial_seed() == 5  # the RNGs are restored after the check
    assert assert_fake.__name__ == "assert_fake"
    assert "scale" in str(inspect.signature(assert_fake))

def test_every_check_has_its_fixture(request):
    from pytest_nnrecipe import _registry

    assert "check_recipe" in _registry.CHECKS and "assert_fake" in _registry.CHECKS
    for name in _registry.CHECKS:
        bound = request.getfixturevalue(name)
        assert callable(bound) and bound.__wrapped__ is getattr(pytest_nnrecipe, name), name
"""


def test_the_plugin_makes_one_fixture_per_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(fake_checks=FAKE_CHECKS_PLUGIN, fake_check=FAKE_CHECK)
    pytester.makepyfile(test_fixtures=FIXTURES_TEST)
    pytester.syspathinsert()
    pytester.mkdir("nothing_to_collect")  # lists the fixtures without importing torch
    result = pytester.runpytest_subprocess("-p", "fake_checks", "--fixtures", "nothing_to_collect")
    result.stdout.fnmatch_lines(
        [
            "*nn_device*",
            "*The test's ``torch.device``*",
            "*nn_seed*",
            "*The test's seed*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*assert_fake*", "*``pytest_nnrecipe.assert_fake`` on the test's device*"]
    )
    result = pytester.runpytest_subprocess("-p", "fake_checks")
    result.assert_outcomes(passed=3)
