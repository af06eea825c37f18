"""The plugin's shared state: the session's settings, the stash keys, the flags that reproduce
a run, and the one function that chooses a test's device.

``plugin.py`` and its sub-plugins (``_hypothesis_plugin``, ``_report_plugin``,
``_model_plugin``) read all of it from here, so none of them reaches into another and none
depends on the order in which pytest calls their ``pytest_configure``: the first that asks for
:func:`settings` reads them from the command line and the ini file, the others get the same
object.

Standard library only at import time (``pytest_nnrecipe.strategies`` imports the Hypothesis
plugin outside pytest): pytest is imported to raise a usage error, torch only under ``--nn-gpu``
and when a test asks for its device.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _devices, _rng
from ._context import RunContext

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from pytest import StashKey
else:
    _T = TypeVar("_T")

    class StashKey(Generic[_T]):
        """A key of ``config.stash`` / ``item.stash``. pytest's ``Stash`` takes any hashable
        key and ``pytest.StashKey`` is this same empty class; this one is made without
        importing pytest (type checkers see pytest's)."""

        __slots__ = ()


@dataclasses.dataclass(frozen=True)
class Settings:
    """The session's plugin settings, read once from the command line and the ini file."""

    base_seed: int
    gpu: bool
    deterministic: bool
    artifacts_dir: str | None
    device: str  # this process's device: "cpu", or e.g. "cuda:0" under --nn-gpu
    cuda_device_count: int = 0
    #: ``--nn-artifacts-all``: pictures of every check call, passing ones too.
    artifacts_all: bool = False
    #: ``--nn-report``: the recipe coverage table at the end of the session.
    report: bool = False


#: ``config.stash[SETTINGS]``: the session's :class:`Settings`.
SETTINGS: StashKey[Settings] = StashKey()
#: ``item.stash[RUN_CONTEXT]``: the :class:`~pytest_nnrecipe._context.RunContext` of a test.
RUN_CONTEXT: StashKey[RunContext] = StashKey()

#: The ``workerinput`` key under which the xdist controller hands its CUDA device count on.
WORKERINPUT_DEVICE_COUNT = "nn_cuda_device_count"
SEED_RANGE = f"an integer from 0 to {_rng.SEED_MODULUS - 1}"


def settings(config: Any) -> Settings:
    """The session's settings: read and checked on the first call (``pytest.UsageError`` for a
    bad value), the same object afterwards."""
    found = config.stash.get(SETTINGS, None)
    if found is None:
        found = config.stash[SETTINGS] = _read(config)
    return found


def flags(settings: Settings) -> str:
    """The plugin flags that reproduce this run, e.g. `` --nn-seed=0 --nn-gpu``."""
    out = f" --nn-seed={settings.base_seed}"
    if settings.gpu:
        out += " --nn-gpu"
    if settings.deterministic:
        out += " --nn-deterministic"
    return out


def apply_torch_settings(settings: Settings) -> None:
    """Session settings that need torch, applied once torch is imported (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "use_deterministic_algorithms"):
        return
    if settings.deterministic and not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True)


def device_for(ctx: RunContext, settings: Settings) -> torch.device:
    """The ``torch.device`` a test runs on (``nn_device``, the ``--nn-model`` tests): ``cpu``,
    or under ``--nn-gpu`` this process's CUDA device. Imports torch (seeded on import if it
    is the first time: ``_rng.seeded``)."""
    import torch

    apply_torch_settings(settings)
    device = torch.device(ctx.device)
    if device.type == "cuda" and device.index:
        torch.cuda.set_device(device)  # CUDA had started before this worker could pin it
    return device


# --- reading the settings -----------------------------------------------------------------


def _read(config: Any) -> Settings:
    base_seed = _base_seed(config)  # the cheap checks first: the GPU probe imports torch
    gpu = bool(config.getoption("nn_gpu"))
    count = 0
    device = "cpu"
    if gpu:
        count = _usable_cuda_device_count(config)
        device = _pin_gpu(config, count)
    artifacts_dir = _artifacts_dir(config)
    artifacts_all = bool(config.getoption("nn_artifacts_all") or config.getini("nn_artifacts_all"))
    if artifacts_all and not artifacts_dir:
        raise _usage_error(
            "--nn-artifacts-all (or ini nn_artifacts_all) needs a directory for the pictures: "
            "add --nn-artifacts DIR (or ini nn_artifacts = DIR)."
        )
    return Settings(
        base_seed=base_seed,
        gpu=gpu,
        deterministic=bool(
            config.getoption("nn_deterministic") or config.getini("nn_deterministic")
        ),
        artifacts_dir=artifacts_dir,
        device=device,
        cuda_device_count=count,
        artifacts_all=artifacts_all,
        report=bool(config.getoption("nn_report") or config.getini("nn_report")),
    )


def _base_seed(config: Any) -> int:
    value = config.getoption("nn_seed")
    source = "--nn-seed"
    if value is None:
        value, source = config.getini("nn_seed"), "ini nn_seed"
    try:
        seed = int(str(value).strip())
    except ValueError:
        seed = -1
    if not 0 <= seed < _rng.SEED_MODULUS:
        raise _usage_error(
            f"{source}={value!r} is not a seed: expected {SEED_RANGE}, e.g. --nn-seed=0 "
            "(the base seed printed in the report header of the run to reproduce)."
        )
    return seed


def _artifacts_dir(config: Any) -> str | None:
    value = config.getoption("nn_artifacts")
    base = config.invocation_params.dir
    if not value:
        value = config.getini("nn_artifacts")
        base = config.inipath.parent if config.inipath else config.rootpath
    # ~ expanded as pytest's --junitxml does: the shell leaves --nn-artifacts=~/x and ini values
    return str((Path(base) / Path(str(value)).expanduser()).resolve()) if value else None


def _usable_cuda_device_count(config: Any) -> int:
    """Visible CUDA devices; the session stops here with the reason if there are none."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_DEVICE_COUNT in workerinput:
        return int(workerinput[WORKERINPUT_DEVICE_COUNT])  # probed by the controller
    probe = _devices.probe_cuda()
    problem = _devices.why_unusable(probe, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if problem is not None:
        raise _usage_error(problem)
    return probe.device_count


def _pin_gpu(config: Any, count: int) -> str:
    """This process's GPU: xdist worker gwN narrows CUDA_VISIBLE_DEVICES before CUDA starts."""
    workerinput = getattr(config, "workerinput", None)
    placement = _devices.place(
        workerinput["workerid"] if workerinput is not None else None,
        os.environ.get("CUDA_VISIBLE_DEVICES"),
        count,
        cuda_started=_cuda_started(),
    )
    if placement.cuda_visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = placement.cuda_visible_devices
    return placement.device


def _cuda_started() -> bool:
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    return bool(cuda is not None and cuda.is_initialized())


def _usage_error(text: str) -> Exception:
    import pytest

    return pytest.UsageError(text)
