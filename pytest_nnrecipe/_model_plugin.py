"""``pytest --nn-model MODULE:FACTORY``: the whole recipe on a model factory, no test file.

Loaded by ``pytest_nnrecipe.plugin`` (its ``pytest_plugins``). Read in the order pytest calls
it: the option, configure (resolve every ``--nn-model`` to a factory and its declared spec,
or stop with a usage error that names the module, the factory and what is expected),
collection (one test per recipe step per factory), the test item, and the ``nn_recipe``
fixture.

``MODULE`` is a dotted module importable from ``sys.path`` (the rootdir and the current
directory are tried too), or a path to a ``.py`` file (``path/to/models.py:make_cnn``),
imported the way pytest imports a test file (its first directory outside a package goes on
``sys.path``). The factory takes no arguments and returns a fresh ``nn.Module``; its spec is
``factory.nnrecipe_spec`` (set by ``@pytest_nnrecipe.specs.declare(...)``): a
``RecipeSpec``, a dict of its fields, or a zero-argument function returning one.

The tests are made in ``pytest_collection_modifyitems`` from the resolved factories, in the
order given and the recipe's order, so every xdist worker collects the same items with the
same node ids: ``<module file>::<factory>[<step>]``, e.g.
``examples/recipe_models.py::make_cnn[overfit]``. Given no test paths, a run with
``--nn-model`` collects nothing else; name paths to run both.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_nnrecipe import _rng, _session
from pytest_nnrecipe._session import RUN_CONTEXT, SETTINGS

#: ``config.stash[MODELS]``: the resolved ``--nn-model`` factories of the session.
MODELS = pytest.StashKey[list["Model"]]()

_EXAMPLE = "--nn-model my_models:make_cnn (or --nn-model path/to/my_models.py:make_cnn)"
_DECLARE = (
    "declare it next to the factory: @pytest_nnrecipe.specs.declare("
    "specs.classification(features=8, classes=4)) above `def {factory}():`, or "
    "{factory}.nnrecipe_spec = specs.image_classification(channels=3, size=16, classes=10)"
)

# --- configure ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Model:
    """One ``--nn-model`` value, resolved: the factory, where it lives, and its spec."""

    text: str
    module: str
    factory_name: str
    factory: Callable[[], Any]
    path: Path | None
    lineno: int
    spec: Any  # specs.RecipeSpec
    steps: tuple[str, ...]
    skips: dict[str, str]  # step -> why it does not apply to this spec


def pytest_configure(config: pytest.Config) -> None:
    values = list(dict.fromkeys(config.getoption("nn_model") or []))
    if not values:
        return
    base_seed = _session.settings(config).base_seed
    config.stash[MODELS] = [resolve(text, config, base_seed) for text in values]


def resolve(text: str, config: pytest.Config, base_seed: int = 0) -> Model:
    """The factory and spec that ``--nn-model text`` names; ``pytest.UsageError`` otherwise."""
    module_part, sep, factory_name = text.rpartition(":")
    if not sep or not module_part or not factory_name:
        raise _usage(text, f"expected MODULE:FACTORY, e.g. {_EXAMPLE}.")
    module, path = _import(text, module_part, config)
    factory = _factory(text, module, factory_name)
    from . import _recipe, specs

    raw = getattr(factory, specs.ATTRIBUTE, None)
    if raw is None:
        raise _usage(
            text,
            f"{factory_name} has no recipe spec (no {factory_name}.nnrecipe_spec): the inputs, "
            f"targets and loss to run it on; {_DECLARE.format(factory=factory_name)}.",
        )
    with _rng.preserved():
        _rng.seed_all(_rng.derive_seed(base_seed, text))
        if callable(raw) and not isinstance(raw, (specs.RecipeSpec, dict)):
            try:
                raw = raw()
            except Exception as exc:
                raise _usage(
                    text,
                    f"{factory_name}.nnrecipe_spec() raised {type(exc).__name__}: {exc}; it must "
                    "return a pytest_nnrecipe.specs.RecipeSpec (or a dict of its fields).",
                ) from exc
        try:
            spec = specs.RecipeSpec.of(raw)
            plan = _recipe.make_plan(factory, **spec)
        except (TypeError, ValueError) as exc:
            raise _usage(text, f"{factory_name}.nnrecipe_spec is not usable: {exc}") from exc
        _check_builds(text, factory, factory_name)
    skips = {name: why for name in plan.selected if (why := _recipe.skip_reason(plan, name))}
    lineno = _lineno(factory)
    return Model(
        text, module.__name__, factory_name, factory, path, lineno, spec, plan.selected, skips
    )


def _import(text: str, module_part: str, config: pytest.Config) -> tuple[Any, Path | None]:
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        return _import_file(text, module_part, config)
    module = _import_named(text, module_part)
    if module is None:  # not on sys.path: try the rootdir and the current directory too
        for extra in (config.invocation_params.dir, config.rootpath):
            if str(extra) not in sys.path:
                sys.path.append(str(extra))
        module = _import_named(text, module_part)
    if module is None:
        raise _usage(
            text,
            f"no module named {module_part!r} on sys.path (nor in the rootdir "
            f"{config.rootpath} or the current directory). Give a dotted module importable "
            f"from here, or a file path: {_EXAMPLE}.",
        )
    file = getattr(module, "__file__", None)
    return module, Path(file).resolve() if file else None


def _import_named(text: str, module_part: str) -> Any:
    """The module ``module_part``, or ``None`` when it (or a package above it) is not found;
    a usage error when importing it raises."""
    try:
        return _import_dotted(module_part)
    except _ImportFailed as exc:
        raise _usage(text, f"importing {module_part} raised {exc}") from exc.__cause__
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_part):
            raise _usage(
                text, f"importing {module_part} raised ModuleNotFoundError: {exc}"
            ) from exc
        return None


def _import_dotted(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise
    except Exception as exc:
        raise _ImportFailed(f"{type(exc).__name__}: {exc}") from exc


def _import_file(text: str, module_part: str, config: pytest.Config) -> tuple[Any, Path]:
    path = (config.invocation_params.dir / module_part).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise _usage(text, f"no Python file {path}; {_EXAMPLE}.")
    base, parts = path.parent, [path.stem]
    while (base / "__init__.py").is_file():  # like pytest's prepend import mode
        parts.insert(0, base.name)
        base = base.parent
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    name = ".".join(parts)
    try:
        module = _import_dotted(name)
    except _ImportFailed as exc:
        raise _usage(text, f"importing {path} raised {exc}") from exc.__cause__
    except ModuleNotFoundError as exc:
        raise _usage(text, f"importing {path} raised ModuleNotFoundError: {exc}") from exc
    file = getattr(module, "__file__", None)
    if file is None or Path(file).resolve() != path:
        raise _usage(
            text,
            f"the module name {name!r} of {path} is taken by {file or 'a built-in module'}; "
            "rename the file or give its dotted module name.",
        )
    return module, path


class _ImportFailed(Exception):
    """The user's module raised while being imported (not a missing module)."""


def _is_missing(exc: ModuleNotFoundError, name: str) -> bool:
    """True when ``name`` itself (or a package above it) is what could not be found."""
    return exc.name is not None and (name == exc.name or name.startswith(exc.name + "."))


def _factory(text: str, module: Any, factory_name: str) -> Callable[[], Any]:
    from . import specs

    obj: Any = module
    for part in factory_name.split("."):
        if not hasattr(obj, part):
            declared = sorted(
                n
                for n, v in vars(module).items()
                if callable(v) and getattr(v, specs.ATTRIBUTE, None) is not None
            )
            hint = (
                f"factories with a declared spec there: {', '.join(declared)}"
                if declared
                else "it declares no factory with a spec (@pytest_nnrecipe.specs.declare)"
            )
            raise _usage(text, f"module {module.__name__} has no {factory_name!r}; {hint}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise _usage(
            text,
            f"{factory_name} is a {type(obj).__name__}, not a factory: a function that takes "
            "no arguments and returns a fresh nn.Module.",
        )
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj  # a builtin: let calling it tell
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise _usage(
            text,
            f"{factory_name}{signature} needs arguments ({', '.join(required)}); --nn-model "
            "calls the factory with none: give the parameters defaults, or add a small "
            "factory, e.g. def make_small(): return Net(width=16).",
        )
    return obj


def _check_builds(text: str, factory: Callable[[], Any], factory_name: str) -> None:
    import torch

    try:
        model = factory()
    except Exception as exc:
        raise _usage(text, f"calling {factory_name}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise _usage(
            text,
            f"{factory_name}() returned {type(model).__name__}, not a torch.nn.Module; the "
            "factory must return a fresh model on each call.",
        )


def _usage(text: str, problem: str) -> pytest.UsageError:
    return pytest.UsageError(f"--nn-model {text}: {problem}")


def _lineno(factory: Any) -> int:
    try:
        return inspect.getsourcelines(factory)[1] - 1
    except (OSError, TypeError):
        return 0


# --- collection ---------------------------------------------------------------------------


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``--nn-model`` and no test paths, collect only the generated tests."""
    if config.stash.get(MODELS, None) and config.args_source is not pytest.Config.ArgsSource.ARGS:
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to these tests too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    models = config.stash.get(MODELS, None)
    if not models:
        return
    modules: dict[str, RecipeModule] = {}
    seen: set[tuple[str, str]] = set()
    for model in models:
        nodeid = _module_nodeid(model, config)
        if (nodeid, model.factory_name) in seen:  # one factory named two ways
            continue
        seen.add((nodeid, model.factory_name))
        if nodeid not in modules:
            modules[nodeid] = RecipeModule.from_parent(
                session, name=nodeid, nodeid=nodeid, path=model.path or config.rootpath
            )
        modules[nodeid].models.append(model)
    for collector in modules.values():
        collected = collector.collect()
        # Reported like any collector's result: the "collected N items" count includes them.
        report = pytest.CollectReport(collector.nodeid, "passed", None, list(collected))
        config.hook.pytest_collectreport(report=report)
        items.extend(i for i in collected if isinstance(i, pytest.Item))


def _module_nodeid(model: Model, config: pytest.Config) -> str:
    """The module's file relative to the rootdir, like a test file's node id; else its name."""
    if model.path is not None:
        try:
            return model.path.relative_to(config.rootpath).as_posix()
        except ValueError:
            pass
    return model.module


class RecipeModule(pytest.Collector):
    """The factories of one module named by ``--nn-model``; their steps are its items."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.models: list[Model] = []

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        items: list[pytest.Item | pytest.Collector] = []
        for model in self.models:
            for step in model.steps:
                item = RecipeStep.from_parent(
                    self, name=f"{model.factory_name}[{step}]", model=model, step=step
                )
                if step in model.skips:  # skipped at setup, reported at the factory's line
                    item.add_marker(pytest.mark.skip(reason=model.skips[step]))
                items.append(item)
        return items


# --- the test item ------------------------------------------------------------------------


class RecipeStep(pytest.Item):
    """One recipe step on a fresh model from one factory, on the test's device and seed."""

    def __init__(self, *, model: Model, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.step = step

    def runtest(self) -> None:
        __tracebackhide__ = True
        from . import _binding, _recipe

        ctx = self.stash[RUN_CONTEXT]
        settings = self.config.stash[SETTINGS]
        ctx.reproduce = (
            f"pytest --nn-model {shlex.quote(self.model.text)} -k {shlex.quote(self.name)}"
            f"{_session.flags(settings)}"
        )
        device = _session.device_for(ctx, settings)
        spec = self.model.spec
        plan = _recipe.make_plan(
            self.model.factory,
            **{
                **spec,
                "inputs": _binding.to_device(spec.inputs, device),
                "targets": _binding.to_device(spec.targets, device),
            },
        )
        outcome = _recipe.run_step(plan, self.step)
        if outcome.verdict == "skipped":
            pytest.skip(outcome.message)
        if outcome.error is not None:
            raise outcome.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)  # the check's whole message; its traceback is noise
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.model.lineno, f"{self.name} ({self.model.text})"


# --- the nn_recipe fixture ----------------------------------------------------------------


@pytest.fixture
def nn_recipe(check_recipe: Callable[..., Any]) -> Callable[..., Any]:
    """``pytest_nnrecipe.check_recipe`` on the test's device (nn_device) and seed."""
    return check_recipe
