"""Recipe specs: the small batch, targets and loss the whole recipe runs a model on.

A :class:`RecipeSpec` holds what :func:`pytest_nnrecipe.check_recipe` needs besides the model
factory: ``inputs``, ``targets``, ``loss_fn`` and, for sequence models, ``time_dim``. It is a
mapping of ``check_recipe``'s keyword arguments, so ``check_recipe(make_model, **spec)`` runs
it. The builders make one for the common shapes of work from a few sizes, with data from their
own seeded generator (the same batch in every process, whatever ran before)::

    from pytest_nnrecipe import check_recipe, specs

    check_recipe(make_cnn, **specs.image_classification(channels=3, size=16, classes=10))

The token builders take ``padding="right"`` or ``"left"`` for a padded batch: dict inputs
``{"input_ids": ..., "attention_mask": ...}``, on which the recipe's padding step runs.

For ``pytest --nn-model module:factory`` (no test file) declare the spec next to the factory::

    @specs.declare(specs.language_model(vocab_size=64, seq_len=12))
    def make_lm() -> nn.Module: ...

``declare`` sets ``make_lm.nnrecipe_spec``; a spec, a dict of its fields, or a zero-argument
function returning either (built only when the run needs it) are all accepted there.
Importing this module does not import torch; the builders do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "RecipeSpec",
    "classification",
    "declare",
    "image_classification",
    "language_model",
    "logits_for_cross_entropy",
    "regression",
    "sequence_classification",
]

#: The attribute of a factory that holds its spec (what :func:`declare` sets).
ATTRIBUTE = "nnrecipe_spec"

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True, eq=False)
class RecipeSpec(Mapping[str, Any]):
    """What the recipe runs a model on; a mapping of ``check_recipe``'s keyword arguments.

    ``inputs``/``targets``/``loss_fn`` as for the training checks; ``time_dim`` (the inputs'
    time dimension) turns on the causality step; ``output`` picks the checked tensor of the
    model's output and ``loss_output`` what ``loss_fn`` receives (default: ``output``);
    ``optimizer`` (``params -> Optimizer``) is used by the training steps, and with
    ``scheduler`` (``optimizer -> LRScheduler``) and ``total_steps`` by the LR-schedule step;
    ``checks`` selects steps (default: all that apply); ``options`` gives keyword arguments to
    single steps, e.g. ``{"overfit": {"max_steps": 300}}``.
    """

    inputs: Any
    targets: Any
    loss_fn: Callable[[Any, Any], Any]
    time_dim: int | None = None
    output: Any = None
    loss_output: Any = None
    optimizer: Callable[[Any], Any] | None = None
    scheduler: Callable[[Any], Any] | None = None
    total_steps: int | None = None
    checks: Sequence[str] | str | None = None
    options: Mapping[str, Mapping[str, Any]] | None = None

    # Identity, not Mapping's item-wise equality (tensors have no truth value).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __post_init__(self) -> None:
        if not callable(self.loss_fn):
            raise TypeError(
                f"loss_fn={self.loss_fn!r} must be a callable loss_fn(output, targets) -> "
                "scalar tensor, e.g. torch.nn.CrossEntropyLoss()."
            )
        if self.time_dim is not None and (
            isinstance(self.time_dim, bool) or not isinstance(self.time_dim, int)
        ):
            raise TypeError(f"time_dim={self.time_dim!r} must be an int or None.")

    # The mapping protocol: ``check_recipe(make_model, **spec)``. Unset fields are left out.
    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _keys(self) -> list[str]:
        required = ("inputs", "targets", "loss_fn")
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.name in required or getattr(self, f.name) is not None
        ]

    def replace(self, **changes: Any) -> RecipeSpec:
        """A copy with some fields changed, e.g. ``spec.replace(checks=["overfit"])``."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, value: Any) -> RecipeSpec:
        """A spec from a spec or a mapping of its fields; ``TypeError`` naming what is wrong."""
        if isinstance(value, RecipeSpec):
            return value
        if isinstance(value, Mapping):
            names = [f.name for f in dataclasses.fields(cls)]
            unknown = [k for k in value if k not in names]
            missing = [k for k in ("inputs", "targets", "loss_fn") if k not in value]
            if unknown or missing:
                raise TypeError(
                    "a recipe spec given as a dict needs the keys inputs, targets and loss_fn "
                    f"and may have {', '.join(names[3:])}; "
                    + (f"unknown: {unknown}" if unknown else f"missing: {missing}")
                    + "."
                )
            return cls(**value)
        raise TypeError(
            f"expected a pytest_nnrecipe.specs.RecipeSpec (or a dict of its fields), got "
            f"{type(value).__name__}; build one with e.g. "
            "specs.classification(features=8, classes=4)."
        )


def declare(spec: RecipeSpec | Mapping[str, Any] | Callable[[], Any]) -> Callable[[F], F]:
    """Decorate a model factory with the spec ``pytest --nn-model module:factory`` runs it on.

    ``spec``: a :class:`RecipeSpec`, a dict of its fields, or a zero-argument function that
    returns one (called when the run needs it). Sets ``factory.nnrecipe_spec``.
    """
    if not (isinstance(spec, (RecipeSpec, Mapping)) or callable(spec)):
        raise TypeError(
            f"declare(spec) takes a RecipeSpec, a dict of its fields or a function returning "
            f"one; got {type(spec).__name__}."
        )

    def attach(factory: F) -> F:
        if not callable(factory):
            raise TypeError(
                f"@declare(...) decorates a model factory (a function returning an "
                f"nn.Module); got {type(factory).__name__}."
            )
        setattr(factory, ATTRIBUTE, spec)
        return factory

    return attach


# --- builders -----------------------------------------------------------------------------


def classification(
    *, features: int, classes: int, batch: int = 16, seed: int = 0, **fields: Any
) -> RecipeSpec:
    """Feature vectors ``(batch, features)`` with balanced labels ``(batch,)`` out of
    ``classes``; ``nn.CrossEntropyLoss`` on ``(batch, classes)`` logits."""
    import torch

    _sizes(features=features, classes=classes, batch=batch)
    gen = _generator(seed)
    x = torch.randn(batch, features, generator=gen)
    return RecipeSpec(x, _balanced(batch, classes, gen), torch.nn.CrossEntropyLoss(), **fields)


def image_classification(
    *,
    channels: int,
    size: int | tuple[int, int],
    classes: int,
    batch: int = 16,
    seed: int = 0,
    **fields: Any,
) -> RecipeSpec:
    """Images ``(batch, channels, height, width)`` with balanced labels; cross-entropy on
    ``(batch, classes)`` logits."""
    import torch

    h, w = (size, size) if isinstance(size, int) else size
    _sizes(channels=channels, height=h, width=w, classes=classes, batch=batch)
    gen = _generator(seed)
    x = torch.randn(batch, channels, h, w, generator=gen)
    return RecipeSpec(x, _balanced(batch, classes, gen), torch.nn.CrossEntropyLoss(), **fields)


def language_model(
    *,
    vocab_size: int,
    seq_len: int,
    batch: int = 4,
    seed: int = 0,
    padding: str | None = None,
    **fields: Any,
) -> RecipeSpec:
    """Token-level language modelling (causal): token ids ``(batch, seq_len)`` in, the next
    token at every position as targets, cross-entropy on ``(batch, seq_len, vocab_size)``
    logits (a plain tensor or a Hugging Face ``ModelOutput``'s ``logits``).

    ``time_dim=1``, so the recipe checks causality. Every sequence starts with a different
    token, so no two share a prefix and one batch can be fit exactly. The init step expects
    ``expected="uniform"``: ``log(vocab_size)``, every token equally likely, the neutral start
    an untrained language model is known to have (and the one heads without a bias, GPT-2's
    and LLaMA's, can reach). A few dozen target tokens cover too little of the vocabulary for
    their own prior to be what the model can know. (The derived default would pass too —
    ``assert_init_loss`` allows for a prior estimated from fewer targets than classes.)

    ``padding="right"`` or ``"left"``: a padded batch, so the recipe's padding step runs
    (``None``, the default: every sequence full length, ``inputs`` a tensor). ``inputs``
    becomes ``{"input_ids": ids, "attention_mask": mask}`` (Hugging Face's keywords; the mask
    int64, 1 at real positions); the lengths and the baseline step's ``zero=`` as in
    :func:`sequence_classification`. The real tokens of each sequence are the first ones of
    the unpadded spec's, so the first real token still differs between sequences (left
    padding moves it off position 0); padded positions hold token 0 and the target ``-100``,
    which ``nn.CrossEntropyLoss`` ignores. A causal model that masks the padded keys passes
    every step; position ids may stay ``0..seq_len-1`` under left padding.
    """
    import torch

    _sizes(vocab_size=vocab_size, seq_len=seq_len, batch=batch)
    _check_padding(padding, seq_len)
    if batch > vocab_size:
        raise ValueError(
            f"batch={batch} > vocab_size={vocab_size}: every sequence starts with a different "
            "token (so one batch can be fit exactly); pass batch <= vocab_size."
        )
    gen = _generator(seed)
    tokens = torch.randint(vocab_size, (batch, seq_len + 1), generator=gen)
    tokens[:, 0] = torch.randperm(vocab_size, generator=gen)[:batch]
    fields.setdefault("time_dim", 1)
    fields.setdefault("loss_output", logits_for_cross_entropy)
    options = {k: dict(v) for k, v in (fields.pop("options", None) or {}).items()}
    options.setdefault("init_loss", {}).setdefault("expected", "uniform")
    if padding is None:
        fields["options"] = options
        return RecipeSpec(tokens[:, :-1], tokens[:, 1:], torch.nn.CrossEntropyLoss(), **fields)
    real = _real_positions(batch, seq_len, padding, gen)
    inputs = _masked(_padded(tokens[:, :-1], real, padding, fill=0), real)
    targets = _padded(tokens[:, 1:], real, padding, fill=-100)
    fields["options"] = _constant_baseline(options)
    return RecipeSpec(inputs, targets, torch.nn.CrossEntropyLoss(), **fields)


def sequence_classification(
    *,
    vocab_size: int,
    seq_len: int,
    classes: int,
    batch: int = 8,
    seed: int = 0,
    padding: str | None = None,
    **fields: Any,
) -> RecipeSpec:
    """Token ids ``(batch, seq_len)``, one balanced label per sequence; cross-entropy on
    ``(batch, classes)`` logits. Not causal (the label reads the whole sequence).

    ``padding="right"`` or ``"left"``: a padded batch, so the recipe's padding step runs
    (``None``, the default: every sequence full length, ``inputs`` a tensor). ``inputs``
    becomes ``{"input_ids": ids, "attention_mask": mask}``, the keywords of a Hugging Face
    model (the mask int64, 1 at real positions, 0 at padding). The real lengths are seeded:
    each at least half of ``seq_len``, one sequence or more full length and one or more
    shorter; a sequence keeps the first tokens of the unpadded spec's, and its padded
    positions, after them (``"right"``) or before them (``"left"``), hold token 0. The
    baseline step trains on token 0 everywhere with every position real, the same input for
    every sample (``options={"baseline": {"zero": {"input_ids": 0, "attention_mask": 1}}}``):
    an all-zero mask would leave no real position, the real one would tell the lengths apart.
    """
    import torch

    _sizes(vocab_size=vocab_size, seq_len=seq_len, classes=classes, batch=batch)
    _check_padding(padding, seq_len)
    gen = _generator(seed)
    tokens = torch.randint(vocab_size, (batch, seq_len), generator=gen)
    labels = _balanced(batch, classes, gen)
    if padding is None:
        return RecipeSpec(tokens, labels, torch.nn.CrossEntropyLoss(), **fields)
    real = _real_positions(batch, seq_len, padding, gen)
    options = {k: dict(v) for k, v in (fields.pop("options", None) or {}).items()}
    fields["options"] = _constant_baseline(options)
    inputs = _masked(_padded(tokens, real, padding, fill=0), real)
    return RecipeSpec(inputs, labels, torch.nn.CrossEntropyLoss(), **fields)


def regression(
    *, features: int, outputs: int = 1, batch: int = 16, seed: int = 0, **fields: Any
) -> RecipeSpec:
    """Feature vectors ``(batch, features)``, real targets ``(batch, outputs)`` (a random
    linear function of the inputs plus noise); ``nn.MSELoss``."""
    import torch

    _sizes(features=features, outputs=outputs, batch=batch)
    gen = _generator(seed)
    x = torch.randn(batch, features, generator=gen)
    w = torch.randn(features, outputs, generator=gen) / features**0.5
    y = x @ w + 0.1 * torch.randn(batch, outputs, generator=gen)
    return RecipeSpec(x, y, torch.nn.MSELoss(), **fields)


def logits_for_cross_entropy(out: Any) -> Any:
    """The ``(batch, time, vocab)`` logits of a model's output (a tensor, a tuple, a Hugging
    Face ``ModelOutput``) as ``(batch, vocab, time)``, the layout ``nn.CrossEntropyLoss`` takes
    for per-position targets ``(batch, time)``: the language-model spec's ``loss_output``."""
    from ._outputs import select

    logits = select(out)
    if logits.dim() != 3:
        raise ValueError(
            f"the language-model loss expects (batch, time, vocab) logits; the model returned "
            f"shape {tuple(logits.shape)}. Pass loss_output= to pick or reshape them."
        )
    return logits.transpose(1, 2)


#: The values of the builders' ``padding=`` besides ``None``.
_SIDES = ("right", "left")


def _check_padding(padding: Any, seq_len: int) -> None:
    if padding is None:
        return
    if not isinstance(padding, str):
        raise TypeError(
            f"padding={padding!r} must be None (no padding), 'right' or 'left' (the side of "
            "each sequence that holds its padding)."
        )
    if padding not in _SIDES:
        raise ValueError(
            f"padding={padding!r}: pass None (no padding), 'right' (padding after the real "
            "tokens) or 'left' (before them)."
        )
    if seq_len < 2:
        raise ValueError(
            f"padding={padding!r} needs seq_len >= 2 (one sequence shorter than another); "
            f"got seq_len={seq_len}."
        )


def _real_positions(batch: int, seq_len: int, padding: str, gen: Any) -> Any:
    """Seeded lengths as a ``(batch, seq_len)`` bool mask of the real positions: each at least
    half of ``seq_len``, one full-length sequence or more and one shorter or more."""
    import torch

    low = (seq_len + 1) // 2
    lengths = torch.randint(low, seq_len + 1, (batch,), generator=gen)
    first, second = torch.randperm(batch, generator=gen)[:2].tolist()
    lengths[first] = seq_len
    lengths[second] = int(torch.randint(low, seq_len, (1,), generator=gen))
    positions = torch.arange(seq_len)
    if padding == "right":
        return positions < lengths[:, None]
    return positions >= (seq_len - lengths)[:, None]


def _padded(tokens: Any, real: Any, padding: str, *, fill: int) -> Any:
    """Each row's first entries of ``tokens`` at its real positions, ``fill`` at the others."""
    import torch

    seq_len = real.shape[1]
    if padding == "left":  # row b's first tokens move right by its padding, seq_len - length
        shift = (seq_len - real.sum(1))[:, None]
        tokens = tokens.gather(1, (torch.arange(seq_len) - shift) % seq_len)
    return tokens.masked_fill(~real, fill)


def _masked(ids: Any, real: Any) -> dict[str, Any]:
    """Hugging Face's keyword inputs: the ids and the int64 ``attention_mask``."""
    import torch

    return {"input_ids": ids, "attention_mask": real.to(torch.int64)}


def _constant_baseline(options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The baseline step's input-independent inputs (unless the user chose them): token 0
    everywhere and every position real, the same for every sample. Zeroing the mask would
    leave no real position to read; keeping it would tell sequences of different lengths
    apart, which a model with positions learns from."""
    options.setdefault("baseline", {}).setdefault("zero", {"input_ids": 0, "attention_mask": 1})
    return options


def _generator(seed: int) -> Any:
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed={seed!r} must be an int.")
    return torch.Generator().manual_seed(seed)


def _balanced(batch: int, classes: int, gen: Any) -> Any:
    """Labels with every class equally often (up to one), in a seeded random order."""
    import torch

    labels = torch.arange(batch) % classes
    return labels[torch.randperm(batch, generator=gen)]


def _sizes(**sizes: Any) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int.")
    if sizes.get("batch", 2) < 2:
        raise ValueError(
            f"batch={sizes['batch']} must be at least 2 (the batch-independence step compares "
            "samples)."
        )
    if "classes" in sizes and sizes["classes"] < 2:
        raise ValueError(f"classes={sizes['classes']} must be at least 2.")
