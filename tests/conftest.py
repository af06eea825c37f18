"""Shared fixtures of the plugin's own tests."""

from __future__ import annotations

import hypothesis  # noqa: F401
import pytest

# pytester's in-process runs drop every module first imported during the run, and Hypothesis's
# pytest plugin imports `hypothesis` at each run's end: importing it once here keeps that (and
# pytest's rewriting of its ~200 modules) from being paid again for every in-process run.


@pytest.fixture(params=[[], ["-n", "0"], ["-n", "2"]], ids=["no-xdist", "xdist-n0", "xdist-n2"])
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    """Extra pytest arguments for an inner run: no xdist, xdist with -n 0, xdist with -n 2
    (syrupy's ``plugin_args``)."""
    return list(request.param)
