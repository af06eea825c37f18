"""The best input-independent prediction for any loss: what an untrained model can know.

An untrained model knows nothing about its input, so the best it can do is one constant
prediction. :class:`Constants` finds it for any differentiable ``loss_fn(output, targets)``
by minimising ``loss_fn(constant broadcast to the output's shape, targets)``, and with it the
uniform prediction, the lowest achievable loss (the floor) and the sampling-noise allowance
of :mod:`._sampling`.

Which dims the constant varies along and which it shares (its :class:`Layout`) is read from
the output, the targets and the loss, never from the loss's name:

- the batch (dim 0) is always shared;
- output dims the targets lack are *class* dims (C of a (B, C) output for (B,) labels, V of
  a (B, T, V) language model for (B, T) next tokens, whatever the loss does with them
  inside): the constant varies along them; the dims the targets share with the output are
  *positions* (T, H x W) and share it;
- when output and targets have the same shape, a dim along which the loss ignores a common
  shift is a class dim (a softmax over it: cross-entropy on class probabilities), and the
  others are positions; without one (multi-label BCE, regression, per-pixel maps) each dim
  is shared unless constants that vary along it, fitted on one half of the batch, predict
  the other half better (two-fold cross-validation): labels with different positive rates
  and outputs with different means keep a constant each, pixels and time steps share one.

A loss that is a standard one (``nn.CrossEntropyLoss()``, ``F.mse_loss``, ...; ``_losses``)
or computes the same values (``F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))`` is
cross-entropy over the last dim) takes the closed forms as a fast path: the class prior, the
positive rates, the means, their exact floors and allowances, and the fix hints. Everything
else is minimised numerically (L-BFGS in float64 on the CPU when the loss runs there), with
the allowance from the sandwich ``H^-1 Var(psi)`` of :func:`._sampling.numeric_allowance`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from . import _losses, _sampling

#: Free constants up to which the Hessian behind the sampling allowance is computed exactly
#: (one Hessian-vector product each); beyond it the loss is taken as a log-likelihood.
EXACT_HESSIAN = 512
#: A constant whose values grow beyond this has run off to infinity: the loss is unbounded.
UNBOUNDED = 1e8


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which dims of the output (``shape``) the constant varies along (``free``) and shares."""

    shape: tuple[int, ...]
    free: tuple[int, ...]
    #: the free dims that are class dims (the targets lack them, or the loss normalises them)
    classes: tuple[int, ...]
    how: str

    @property
    def shared(self) -> tuple[int, ...]:
        return tuple(d for d in range(len(self.shape)) if d not in self.free)

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(d for d in self.shared if d != 0)

    @property
    def constant_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[d] for d in self.free)

    @property
    def size(self) -> int:
        return math.prod(self.constant_shape)

    @property
    def slots(self) -> int:
        """How many times the constant is repeated: batch x positions."""
        return math.prod(self.shape[d] for d in self.shared)

    def resized(self, batch: int) -> Layout:
        return dataclasses.replace(self, shape=(batch, *self.shape[1:]))

    def broadcast(self, theta: Any) -> Any:
        """The constant (``constant_shape``) laid out as a full output (a contiguous copy:
        losses may ``view`` what they get)."""
        view = [self.shape[d] if d in self.free else 1 for d in range(len(self.shape))]
        return theta.reshape(view).expand(self.shape).contiguous()

    def reduce(self, full: Any, how: str = "mean") -> Any:
        """A full output-shaped tensor reduced over the shared dims to ``constant_shape``."""
        dims = self.shared
        if not dims:
            return full.clone()
        if how == "median":
            moved = full.movedim(dims, tuple(range(len(dims))))
            return moved.reshape(-1, *self.constant_shape).median(0).values
        return full.mean(dim=dims)

    def per_slot(self, full: Any) -> Any:
        """A full output-shaped tensor as (slots, constant size) rows."""
        order = (*self.shared, *self.free)
        return full.permute(order).reshape(self.slots, self.size)

    def describe(self) -> str:
        n = len(self.shape)
        if not self.free or self.size == 1:
            what = "one value"
        elif self.classes:
            dims = ", ".join(str(d) for d in self.classes)
            what = f"{self.size} values (one per class along dim {dims})"
        else:
            dims = ", ".join(str(d) for d in self.free)
            what = f"{self.size} values (one per output along dim {dims})"
        shared = [f"the batch of {self.shape[0]}"] if n else []
        if self.positions:
            count = math.prod(self.shape[d] for d in self.positions)
            dims = ", ".join(str(d) for d in self.positions)
            shared.append(f"{count} positions (dim {dims})")
        return f"{what}, shared over {' and '.join(shared)}"


class LossOnConstants:
    """``loss_fn`` evaluated on constant outputs, on a device and dtype it accepts."""

    def __init__(self, loss_fn: Any, targets: Any, device: Any, dtype: Any) -> None:
        self.loss_fn, self.device, self.dtype = loss_fn, device, dtype
        self.targets = _moved(targets, device, dtype)

    def __call__(self, out: Any) -> Any:
        targets = self.targets
        if hasattr(targets, "clone"):
            targets = targets.clone()  # a loss may write into its targets
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = self.loss_fn(out.to(self.dtype), targets)
        return value.reshape(()).to(out.dtype)

    def subset(self, index: Any) -> LossOnConstants:
        return LossOnConstants(self.loss_fn, self.targets[index], self.device, self.dtype)

    @property
    def float64(self) -> bool:
        return bool(self.dtype == torch.float64)


def evaluator(loss_fn: Any, targets: Any, out: Any, measured: float) -> LossOnConstants | None:
    """A :class:`LossOnConstants` that gives ``measured`` for the model's ``out``: float64 on
    the CPU, else float64 where the targets are, else the output's own dtype; ``None`` when
    ``loss_fn`` runs in none of them."""
    device = targets.device if isinstance(targets, torch.Tensor) else out.device
    native = torch.float32 if out.dtype in (torch.float16, torch.bfloat16) else out.dtype
    tries = [(torch.device("cpu"), torch.float64), (device, torch.float64), (out.device, native)]
    if not isinstance(targets, torch.Tensor) or not out.is_floating_point():
        tries = tries[1:] if out.is_floating_point() else []
    for dev, dtype in dict.fromkeys(tries):
        try:
            ev = LossOnConstants(loss_fn, targets, dev, dtype)
            with torch.no_grad():
                value = float(ev(out.detach().to(dev, dtype)))
        except Exception:  # the loss does not run there (a weight on another device, ...)
            continue
        tol = 1e-2 if out.dtype in (torch.float16, torch.bfloat16) else 1e-4
        if math.isfinite(value) and abs(value - measured) <= tol * max(1.0, abs(measured)):
            return ev
    return None


class Constants:
    """The input-independent predictions of one batch: the best constant (:attr:`best`), its
    sampling :attr:`allowance`, the :attr:`floor`, the :meth:`uniform` prediction.

    ``out`` is the model's output at init (what ``loss_fn`` received), ``measured`` its loss.
    Raises ``ValueError`` naming ``loss_fn=`` when the loss cannot be evaluated on constants.
    """

    def __init__(self, problem: Any, out: Any, measured: float) -> None:
        self.problem, self.measured = problem, measured
        self.name = problem.spec.name if problem.spec is not None else describe(problem.loss_fn)
        self.out = out.detach()
        self.shape = tuple(out.shape)
        ev = evaluator(problem.loss_fn, problem.targets, self.out, measured)
        if ev is None or not out.is_floating_point():
            raise ValueError(
                f"loss_fn={self.name} cannot be evaluated on constant predictions of the output's "
                f"shape {self.shape} (it raised, or gave another value than on the model's own "
                "output), so the best input-independent prediction cannot be found; pass "
                "expected=, the loss of the best input-independent prediction for these "
                "targets, e.g. expected=math.log(n_classes)."
            )
        self.ev = ev
        targets = problem.targets
        self.targets = targets.detach() if isinstance(targets, torch.Tensor) else targets
        self.spec: _losses.LossSpec | None = problem.spec
        self.by_value = False
        if self.spec is None and self._same_shape:
            self._recognise(elementwise=True)
        self.layout = self._layout()
        if self.spec is None and self.layout.classes:
            self._recognise(elementwise=False)

    # --- what the checks read ---------------------------------------------------------

    @functools.cached_property
    def best(self) -> _losses.Optimum:
        """The best constant prediction and its loss."""
        shape = self.standard_shape
        if shape is not None and self.spec is not None:
            return _losses.best_constant(self.spec, shape, self.standard_targets)
        theta, value = self._fit(self.ev, self.layout, self._starts(self.layout, self.targets))
        probs = None
        if self.spec is not None and self.spec.kind in _losses.PROBABILITY_KINDS:
            probs = theta.sigmoid()
        elif self.spec is not None and self.spec.classes and theta.dim() == 1:
            probs = theta.softmax(0)
        return _losses.Optimum(value, theta.to("cpu", torch.float64), probs)

    @functools.cached_property
    def allowance(self) -> _sampling.Allowance | None:
        """How far above :attr:`best` sampling noise alone can put a correct model."""
        shape = self.standard_shape
        if shape is not None and self.spec is not None:
            return _sampling.sampling_allowance(self.spec, shape, self.standard_targets, self.best)
        return self._numeric_allowance()

    @functools.cached_property
    def floor(self) -> float | None:
        """The lowest loss any prediction reaches on these targets (a per-sample perfect fit);
        ``None`` when the loss has no lower bound over free outputs."""
        shape = self.standard_shape
        if shape is not None and self.spec is not None:
            return _losses.lowest_achievable(self.spec, shape, self.standard_targets)
        full = Layout(self.shape, tuple(range(len(self.shape))), (), "per value")
        starts = [self.layout.broadcast(self._on_device(self.best.constant)), *self._perfect()]
        try:
            theta, value = self._fit(self.ev, full, starts, max_iter=200)
        except ValueError:  # no lower bound over free outputs
            return None
        if not torch.isfinite(theta).all() or _largest(theta) > UNBOUNDED:
            return None
        return min(value, self.best.loss)

    def per_value_best(self) -> float:
        """The best constant's loss with one value per output value (nothing shared but the
        batch) when the layout shares positions by cross-validation; else :attr:`best`'s. An
        untrained model cannot beat this one either."""
        lay = self.layout
        every = tuple(range(1, len(self.shape)))
        if lay.classes or lay.free == every or len(self.shape) < 2:
            return self.best.loss
        full = Layout(self.shape, every, (), "per value")
        try:
            value = self._fit(self.ev, full, self._starts(full, self.targets))[1]
        except ValueError:
            return self.best.loss
        return min(value, self.best.loss)

    def hint_prior(self) -> Any | None:
        """The class prior (or positive rates) for the fix hint, smoothed as ``(count + 1/2) /
        (n + C/2)`` when a class never occurs in the batch (no -27 bias for an absent class);
        ``None`` when nothing needs smoothing."""
        spec, t = self.spec, self.standard_targets
        if spec is None or not isinstance(t, torch.Tensor):
            return None
        t = t.detach().cpu()
        if spec.classes and not t.is_floating_point() and len(self.layout.classes) == 1:
            n_classes = self.shape[self.layout.classes[0]]
            keep = t[(t != spec.option("ignore_index", -100)) & (t >= 0) & (t < n_classes)]
            counts = torch.bincount(keep.reshape(-1), minlength=n_classes).to(torch.float64)
            if bool((counts > 0).all()) or spec.kwargs.get("weight") is not None:
                return None
            return (counts + 0.5) / (counts.sum() + 0.5 * n_classes)
        if spec.kind in _losses.PROBABILITY_KINDS and t.is_floating_point():
            if tuple(t.shape) != self.shape:
                return None
            rate, per = self.layout.reduce(t.to(torch.float64)), self.layout.slots
            if bool(((rate > 0) & (rate < 1)).all()):
                return None
            return (rate * per + 0.5) / (per + 1)
        return None

    def _perfect(self) -> list[Any]:
        """Outputs that predict every target: the targets themselves when shaped like the
        output, else large logits on each target's class (a flat loss, a clamped one, would
        keep a search from the constant stuck far above the floor)."""
        t = self.ev.targets
        if not isinstance(t, torch.Tensor):
            return []
        if tuple(t.shape) == self.shape and t.is_floating_point():
            return [t.clone()]
        lay = self.layout
        if t.is_floating_point() or len(lay.classes) != 1:
            return []
        c = lay.classes[0]
        size = self.shape[c]
        index = t.clamp(0, size - 1)
        onehot = torch.nn.functional.one_hot(index, size).movedim(-1, c).to(self.ev.dtype)
        if tuple(onehot.shape) != self.shape:
            return []
        return [onehot * scale for scale in (10.0, 30.0)]

    def degenerate(self) -> bool:
        """The best constant already fits every target: every slot (sample x position) has
        the same target (a batch of 1, one class only), or the constant's loss is the floor."""
        t = self.targets
        if isinstance(t, torch.Tensor) and t.numel():
            if tuple(t.shape) == self.shape and len(self.shape) > 1:
                rows = self.layout.per_slot(t)
                if bool((rows == rows[:1]).all()):
                    return True
            elif not t.is_floating_point():
                if t[t >= 0].unique().numel() <= 1:  # negatives: ignore_index
                    return True
            elif bool((t == t.reshape(-1)[0]).all()):
                return True
        floor = self.floor if self.standard_shape is not None else None
        if floor is None:
            return False
        return self.best.loss - floor <= 1e-9 * max(1.0, abs(self.best.loss))

    def uniform(self) -> float:
        """The loss of the uniform prediction: every class equally likely (all-zero logits;
        log-probabilities of 1/C for NLL; p = 0.5 for probabilities)."""
        spec = self.spec
        if spec is not None and spec.kind in _losses.REGRESSION_KINDS:
            raise ValueError(
                f'expected="uniform" states that every class starts equally likely; '
                f"loss_fn={self.name} is a regression loss with no classes. Leave expected= "
                "unset (the best constant is then the targets' mean or median)."
            )
        zeros = torch.zeros(self.layout.constant_shape, dtype=self.ev.dtype, device=self.ev.device)
        with torch.no_grad():
            return float(self.ev(self._param(self.layout)(self.layout.broadcast(zeros))))

    @property
    def regression(self) -> bool:
        """A regression loss: a standard one, or float targets shaped like the output that are
        not all 0/1, with no class dim."""
        if self.spec is not None:
            return self.spec.kind in _losses.REGRESSION_KINDS
        t = self.targets
        if self.layout.classes or not isinstance(t, torch.Tensor) or not t.is_floating_point():
            return False
        return not bool(((t == 0) | (t == 1)).all())

    @property
    def standard_shape(self) -> tuple[int, ...] | None:
        """The output shape in which ``_losses``'s closed forms hold for this layout (classes
        moved to dim 1), or ``None`` when they do not apply."""
        spec, lay = self.spec, self.layout
        if spec is None:
            return None
        if spec.classes:
            if len(lay.classes) != 1 or lay.free != lay.classes:
                return None
            c = lay.classes[0]
            if len(self.shape) < 2:
                return self.shape
            order = [0, c, *[d for d in range(1, len(self.shape)) if d != c]]
            return tuple(self.shape[d] for d in order)
        return self.shape if lay.free == tuple(range(1, len(self.shape))) else None

    def standard(self, out: Any) -> Any:
        """``out`` with its classes moved to where ``_losses`` expects them (dim 1)."""
        lay = self.layout
        if self.spec is not None and self.spec.classes and len(lay.classes) == 1:
            return _to_dim1(out, lay.classes[0])
        return out

    @property
    def standard_targets(self) -> Any:
        """The targets as ``_losses`` expects them with :meth:`standard` outputs."""
        return self.standard(self.targets) if self._same_shape else self.targets

    # --- layout ------------------------------------------------------------------------

    @property
    def _same_shape(self) -> bool:
        t = self.targets
        return isinstance(t, torch.Tensor) and tuple(t.shape) == self.shape

    def _layout(self) -> Layout:
        shape, spec, n = self.shape, self.spec, len(self.shape)
        every = tuple(range(1, n))
        if spec is not None and spec.classes and not self.by_value:
            c = _losses.class_dim(shape)
            return Layout(shape, (c,), (c,), "classes")
        t = self.targets
        if n <= 1:
            return Layout(shape, (), (), "one value")
        if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[0] != shape[0]:
            return Layout(shape, every, (), "per value (targets not aligned with the output)")
        if self._same_shape:
            soft = self._softmax_dim()
            if soft is not None:
                return Layout(shape, (soft,), (soft,), "classes (the loss normalises over them)")
            return self._cross_validated()
        layouts = []
        for matched in _alignments(shape, tuple(t.shape)):
            classes = tuple(d for d in every if d not in matched)
            layouts.append(Layout(shape, classes, classes, "classes"))
        if not layouts:
            return Layout(shape, every, (), "per value (targets not aligned with the output)")
        if len(layouts) == 1:
            return layouts[0]
        fits = []
        for lay in layouts:
            try:
                fits.append((self._fit(self.ev, lay, self._starts(lay, t))[1], lay))
            except ValueError:
                continue
        return min(fits, key=lambda f: f[0])[1] if fits else layouts[0]

    def _softmax_dim(self) -> int | None:
        """A dim along which adding one number to every entry leaves the loss unchanged."""
        gen = torch.Generator().manual_seed(0)
        shape, ev = self.shape, self.ev
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(ev.device)
        tol = 1e-9 if ev.float64 else 1e-5
        try:
            with torch.no_grad():
                base = float(ev(x))
                moved = float(ev(x + torch.randn(shape, generator=gen, dtype=torch.float64).to(x)))
                if not math.isfinite(base) or _close(moved, base, tol):
                    return None  # the loss does not even react to its output
                for d in range(1, len(shape)):
                    if shape[d] < 2:
                        continue
                    size = list(shape)
                    size[d] = 1
                    shift = 3 * torch.randn(size, generator=gen, dtype=torch.float64).to(x)
                    if _close(float(ev(x + shift)), base, tol):
                        return d
        except Exception:
            return None
        return None

    def _cross_validated(self) -> Layout:
        """Free along a dim only when constants varying along it, fitted on one half of the
        batch, predict the other half better than constants shared along it."""
        shape = self.shape
        ones = tuple(d for d in range(1, len(shape)) if shape[d] == 1)
        dims = [d for d in range(1, len(shape)) if shape[d] > 1]
        every = tuple(range(1, len(shape)))
        if not dims:
            return Layout(shape, every, (), "per value")
        if shape[0] < 4:
            return Layout(shape, every, (), "per value (batch too small to share)")
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(shape[0], generator=gen)
        halves = (perm[: shape[0] // 2], perm[shape[0] // 2 :])

        def held_out(free: tuple[int, ...]) -> float:
            total = 0.0
            for fit_on, test_on in (halves, halves[::-1]):
                lay = Layout((len(fit_on), *shape[1:]), free, (), "")
                sub = self.ev.subset(fit_on.to(self._targets_device))
                theta, _ = self._fit(sub, lay, self._starts(lay, self.targets[fit_on]))
                test = lay.resized(len(test_on))
                with torch.no_grad():
                    value = float(
                        self.ev.subset(test_on.to(self._targets_device))(
                            self._param(test)(test.broadcast(theta))
                        )
                    )
                total += value if math.isfinite(value) else math.inf
            return total / 2

        free = ones
        try:
            current = held_out(free)
            for d in dims:
                trial = tuple(sorted((*free, d)))
                score = held_out(trial)
                if score < current:
                    free, current = trial, score
        except Exception:  # the loss needs the whole batch (a batch size baked in)
            return Layout(shape, every, (), "per value (the loss takes only the whole batch)")
        return Layout(shape, free, (), "cross-validated")

    @property
    def _targets_device(self) -> Any:
        return self.ev.targets.device

    # --- recognising a standard loss by what it computes --------------------------------

    def _recognise(self, *, elementwise: bool) -> None:
        """Set :attr:`spec` when ``loss_fn`` computes what a standard loss computes."""
        F = torch.nn.functional
        t = self.ev.targets
        if elementwise:
            if not t.is_floating_point():
                return
            kinds = ["mse", "l1", "smooth_l1", "huber", "bce_logits"]
            if bool(((t >= 0) & (t <= 1)).all()):
                kinds.append("bce")
            moves: list[int | None] = [None]
        else:
            if len(self.layout.classes) != 1:
                return
            kinds = ["cross_entropy", "nll"] if not t.is_floating_point() else []
            if t.is_floating_point() and self._same_shape:
                kinds = ["cross_entropy"]
            moves = [self.layout.classes[0]]
        gen = torch.Generator().manual_seed(1)
        points = [
            torch.randn(self.shape, generator=gen, dtype=torch.float64).to(self.ev.device) * s
            for s in (1.0, 3.0)
        ]
        tol = 1e-7 if self.ev.float64 else 1e-4
        for kind in kinds:
            fname = _losses.functional_name(kind)
            fn = getattr(F, fname)
            c = moves[0]
            ok = True
            ts = _to_dim1(t, c) if t.is_floating_point() and self._same_shape else t
            for x in points:
                x = x.sigmoid() if kind == "bce" else x
                try:
                    with torch.no_grad():
                        theirs = float(self.ev(x))
                        ours = float(fn(_to_dim1(x, c), ts))
                except Exception:
                    ok = False
                    break
                if not (math.isfinite(theirs) and _close(theirs, ours, tol)):
                    ok = False
                    break
            if ok:
                where = f" over dim {c}" if c is not None else ""
                self.spec = _losses.LossSpec(kind, f"{self.name} (= F.{fname}{where})", {})
                self.by_value = True
                return

    # --- fitting -----------------------------------------------------------------------

    def _param(self, layout: Layout) -> Callable[[Any], Any]:
        """Constant -> output: the identity, or a sigmoid/log-softmax for a standard loss
        that takes probabilities/log-probabilities."""
        kind = self.spec.kind if self.spec is not None else None
        if kind == "bce":
            return lambda x: x.sigmoid()
        if kind == "nll" and layout.classes:
            c = layout.classes[0]
            return lambda x: x.log_softmax(c)
        return lambda x: x

    def _starts(self, layout: Layout, targets: Any) -> list[Any]:
        """Where the search starts: zeros, the model's mean output, the targets' mean (median)
        over the shared dims when they are shaped like the output."""
        ev = self.ev
        starts = [torch.zeros(layout.constant_shape, dtype=ev.dtype, device=ev.device)]
        kind = self.spec.kind if self.spec is not None else None
        out = self.out.to(ev.device, ev.dtype)
        if tuple(out.shape[1:]) == tuple(layout.shape[1:]):
            mean = layout.resized(out.shape[0]).reduce(out)
            if kind == "bce":
                mean = mean.clamp(1e-6, 1 - 1e-6).logit()
            if torch.isfinite(mean).all():
                starts.append(mean)
        t = _moved(targets, ev.device, ev.dtype)
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            if tuple(t.shape) == tuple(layout.shape):
                how = "median" if kind in ("l1", "smooth_l1", "huber") else "mean"
                value = layout.reduce(t, how)
                if kind in _losses.PROBABILITY_KINDS:
                    value = value.clamp(1e-6, 1 - 1e-6).logit()
                starts.append(value)
        elif isinstance(t, torch.Tensor) and len(layout.classes) == 1:
            c = layout.classes[0]
            size = layout.shape[c]
            valid = t[(t >= 0) & (t < size)]
            if valid.numel():
                counts = torch.bincount(valid.reshape(-1), minlength=size).to(ev.dtype)
                starts.append(((counts + 0.5) / (counts.sum() + 0.5 * size)).log())
        return starts

    def _fit(
        self, ev: LossOnConstants, layout: Layout, starts: list[Any], *, max_iter: int = 100
    ) -> tuple[Any, float]:
        """The constant (on ``ev``'s device) minimising the loss, and that loss."""
        param = self._param(layout)

        def objective(theta: Any) -> Any:
            return ev(param(layout.broadcast(theta)))

        scored = []
        with torch.no_grad():
            for s in starts:
                try:
                    value = float(objective(s))
                except Exception:
                    continue
                if math.isfinite(value):
                    scored.append((value, s))
        if not scored:
            raise ValueError(
                f"loss_fn={self.name} is not finite at any constant prediction tried (zeros, the "
                "model's mean output, the targets' mean); pass expected=, the loss of the best "
                "input-independent prediction for these targets."
            )
        value, theta = min(scored, key=lambda s: s[0])
        for _ in range(3):
            theta, new = _losses.minimise(objective, theta, max_iter=max_iter)
            done = new >= value - 1e-12 * max(1.0, abs(value))
            value = new
            if done:
                break
        if _largest(theta) > UNBOUNDED or value < -UNBOUNDED:
            raise ValueError(
                f"loss_fn={self.name} has no lower bound over constant predictions (it fell to "
                f"{value:.3g} with values of {_largest(theta):.3g}): it probably expects "
                "normalised outputs (log-probabilities, probabilities) that a free constant does "
                "not respect; pass expected=, the loss of the best input-independent prediction."
            )
        return theta, value

    def _on_device(self, theta: Any) -> Any:
        return theta.to(self.ev.device, self.ev.dtype)

    def _numeric_allowance(self) -> _sampling.Allowance | None:
        lay, ev = self.layout, self.ev
        theta = self._on_device(self.best.constant)
        param = self._param(lay)
        with torch.enable_grad():
            full = lay.broadcast(theta).detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(ev(param(full)), full)
        rows = lay.per_slot(grad.detach().to("cpu", torch.float64))
        hessian = None
        if lay.size <= EXACT_HESSIAN:
            hessian = _hessian(lambda th: ev(param(lay.broadcast(th))), theta)
        units = "targets" if lay.positions or lay.classes else "samples"
        what = (
            f"a constant of {lay.size} value{'s' if lay.size > 1 else ''} fitted to "
            f"{lay.slots} {units}"
        )
        cap = None
        if int((rows.abs().sum(1) > 0).sum()) < lay.size:  # fewer targets than constants
            try:
                one = Layout(lay.shape, (), (), "one value")
                scalar = self._fit(ev, one, self._starts(one, self.targets))[1]
                cap = max(scalar - self.best.loss, 0.0)
            except ValueError:
                cap = None
        return _sampling.numeric_allowance(rows, hessian, what=what, samples=self.shape[0], cap=cap)


def describe(loss_fn: Any) -> str:
    return str(getattr(loss_fn, "__qualname__", None) or type(loss_fn).__name__)


def _hessian(objective: Callable[[Any], Any], theta: Any) -> Any:
    with torch.enable_grad():
        th = theta.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(th), th, create_graph=True)
        flat = grad.reshape(-1)
        rows = []
        for j in range(flat.numel()):
            if not flat.requires_grad:
                rows.append(torch.zeros_like(flat))
                continue
            (row,) = torch.autograd.grad(flat[j], th, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(flat) if row is None else row.reshape(-1))
    return torch.stack(rows).detach().to("cpu", torch.float64)


def _alignments(shape: tuple[int, ...], t_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every way to line the targets' non-batch dims up, in order, with output dims of the
    same size (the output dims matched, batch first); at most a few."""
    found: list[tuple[int, ...]] = []

    def walk(i: int, j: int, matched: tuple[int, ...]) -> None:
        if len(found) >= 6:
            return
        if j == len(t_shape):
            found.append(matched)
            return
        for d in range(i, len(shape)):
            if shape[d] == t_shape[j]:
                walk(d + 1, j + 1, (*matched, d))

    if len(t_shape) >= 1 and len(t_shape) < len(shape) and shape[0] == t_shape[0]:
        walk(1, 1, (0,))
    return found


def _to_dim1(x: Any, c: int | None) -> Any:
    return x.movedim(c, 1) if c is not None and x.dim() > 1 else x


def _moved(targets: Any, device: Any, dtype: Any) -> Any:
    if not isinstance(targets, torch.Tensor):
        return targets
    targets = targets.detach().to(device)
    return targets.to(dtype) if targets.is_floating_point() else targets


def _largest(t: Any) -> float:
    return float(t.abs().max()) if t.numel() else 0.0


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))
