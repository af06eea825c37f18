"""Input statistics just before the net: per-channel mean and std against what the model expects.

Tolerances (both per channel ``c``, with expected mean ``mu_c`` and std ``sigma_c``):

- mean: ``|mean_c - mu_c| <= mean_tol * sigma_c`` (default ``mean_tol=0.5``: half an expected
  standard deviation; a real batch of images of a normalised dataset sits well inside, a
  forgotten or wrong mean sits well outside);
- std: ``1 / (1 + std_tol) <= std_c / sigma_c <= 1 + std_tol`` (default ``std_tol=0.5``: within
  a factor 1.5 either way).

Both bounds are widened by the sampling error of ``n`` values per channel (of ``C``
channels): the mean by ``z / sqrt(n)`` expected stds, the std ratio by the chi-square
quantiles of ``n`` Gaussian values (see :func:`sampling_margin`), with ``z`` the normal
quantile for a false-alarm rate of :data:`ALPHA` over all channels (``z ~ 4`` for 3
channels, ``~ 4.6`` for 128). A correctly
normalised batch of 32 vectors of 128 features then passes (its per-feature means scatter by
``1/sqrt(32) ~ 0.18`` std, and with 128 features some are beyond 0.5 by chance); for image
batches (``n`` in the thousands) the margin is negligible. Fewer than 2 values per channel
cannot give a std: a ``ValueError``.

Statistics are exact over every value read (float64 accumulation, chunks merged with Chan's
formula), streamed over a Dataset without stacking it. Failures draw a per-channel table and
name the likely slip: unnormalised values (their range as measured, and the scale the data
itself suggests: its maximum, its own mean and std), 0..1 values not normalised, the wrong
mean, the wrong std, or swapped channels (RGB vs BGR).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _context, _messages
from .._records import NormalizationRecord
from .._results import ChannelStats
from . import _samples

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Data

#: Rows of the per-channel table (failing channels first).
MAX_ROWS = 16
#: False-alarm rate (all channels together) the sampling margin allows for Gaussian inputs.
ALPHA = 1e-3


def sampling_margin(n: int, channels: int) -> tuple[float, float, float]:
    """Sampling error of ``n`` values in each of ``channels``, for correctly scaled inputs.

    Returns (mean margin in expected stds, low and high quantile of measured / true std):
    the mean of ``n`` values scatters by ``1 / sqrt(n)``; the (population) std of ``n``
    Gaussian values is ``sqrt(chi2(n - 1) / n)`` times the true one (Wilson-Hilferty
    quantiles), at a false-alarm rate of :data:`ALPHA` over all channels and both tails.
    """
    z = statistics.NormalDist().inv_cdf(1 - ALPHA / (4 * max(channels, 1)))
    k = max(n - 1, 1)
    a = 2 / (9 * k)

    def chi2(zq: float) -> float:
        return k * max(1 - a + zq * math.sqrt(a), 0.0) ** 3

    return z / math.sqrt(n), math.sqrt(chi2(-z) / n), math.sqrt(chi2(z) / n)


class Moments:
    """Streaming per-channel count, mean, M2, min and max (Chan et al. parallel merge)."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)
        self.min = np.full(channels, np.inf)
        self.max = np.full(channels, -np.inf)

    def add(self, x: np.ndarray) -> None:
        """``x``: (channels, values) float64."""
        k = x.shape[1]
        if k == 0:
            return
        mean = x.mean(axis=1)
        m2 = ((x - mean[:, None]) ** 2).sum(axis=1)
        total = self.n + k
        delta = mean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * k / total)
        self.n = total
        self.min = np.minimum(self.min, x.min(axis=1))
        self.max = np.maximum(self.max, x.max(axis=1))

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))


def channel_moments(
    source: _samples.Source, dim: int | None, *, batched: bool
) -> tuple[Moments, int | None]:
    """Per-channel moments of a data source; ``dim`` counts the batch/sample dim as 0."""
    moments: Moments | None = None
    channels: int | None = None
    first_index: int | None = None

    def feed(x: np.ndarray, index: int) -> None:
        nonlocal moments, channels, first_index
        if not _samples.numeric(x) or x.dtype.kind == "c":
            raise TypeError(
                f"sample {index} is {x.dtype} data; assert_normalized needs real numbers "
                "(pass key= picking the input of a pair)"
            )
        if dim is None:
            flat = x.astype(np.float64, copy=False).reshape(1, -1)
        else:
            if not -x.ndim <= dim < x.ndim:
                raise ValueError(
                    f"dim={dim} is out of range for inputs of shape {_shape(x, batched)} "
                    f"({x.ndim} dims counting the batch dim); pass the channel dim, or "
                    "dim=None for one global mean/std"
                )
            c = x.shape[dim]
            if channels is None:
                channels, first_index = c, index
            elif c != channels:
                raise ValueError(
                    f"sample {index} has {c} channels along dim={dim} but sample {first_index} "
                    f"has {channels}: ragged samples (shape {_shape(x, batched)})"
                )
            flat = np.moveaxis(x, dim, 0).astype(np.float64, copy=False).reshape(c, -1)
        if moments is None:
            moments = Moments(flat.shape[0])
        moments.add(flat)

    if source.is_array:
        for idx, rows in source.chunked():
            feed(rows, int(idx[0]))
    else:
        for i, sample in source:
            if not isinstance(sample, np.ndarray):
                raise TypeError(
                    f"sample {i} is {_samples.show(sample)}, not a tensor/array; for "
                    f"(input, label) samples pass {_samples.key_hint(sample, 'input')}"
                )
            feed(sample[None], i)
    if moments is None:
        raise _samples.empty_error(source)
    return moments, channels


def assert_normalized(
    batch: Data,
    *,
    mean: float | Sequence[float] | Any = 0.0,
    std: float | Sequence[float] | Any = 1.0,
    dim: int | None = 1,
    mean_tol: float = 0.5,
    std_tol: float = 0.5,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    msg: str | None = None,
) -> ChannelStats:
    """Per-channel mean and std of what enters the net match ``mean`` and ``std``.

    ``batch``: the tensor that goes into ``model(batch)`` (``dim`` is its channel dim: 1 for
    NCHW / (batch, features), -1 for NHWC), or a dataset/sequence of samples (``dim`` still
    counts the batch dim as 0, so samples are read as batches of one). ``mean``/``std``: what
    the model expects (scalars or per-channel sequences such as ImageNet's
    ``(0.485, 0.456, 0.406)``/``(0.229, 0.224, 0.225)`` for raw 0..1 pixels, or the defaults
    0 and 1 for normalised inputs). ``dim=None``: one mean/std over everything.
    """
    __tracebackhide__ = True
    for name, v in (("mean_tol", mean_tol), ("std_tol", std_tol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name}={v!r} must be a positive number")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"dim={dim!r} must be an int (the channel dim) or None")
    source = _samples.open_data(
        batch, name="batch", max_samples=max_samples, progress=progress, key=key
    )
    _samples.refuse_empty(source)
    moments, _ = channel_moments(source, dim, batched=source.is_array)
    c = len(moments.mean)
    mu = _per_channel(mean, "mean", c)
    sigma = _per_channel(std, "std", c)
    if (sigma <= 0).any():
        raise ValueError(f"std={std!r} must be positive for every channel")
    if moments.n < 2:
        raise ValueError(
            f"batch= gives {moments.n} value per channel along dim={dim}: a std needs at least "
            "2; pass a bigger batch, or dim=None for one mean/std over all values"
        )
    got_mean, got_std = moments.mean, moments.std
    mean_off = (got_mean - mu) / sigma
    ratio = got_std / sigma
    mean_margin, q_low, q_high = sampling_margin(moments.n, c)
    low, high = q_low / (1 + std_tol), q_high * (1 + std_tol)
    with np.errstate(invalid="ignore"):
        bad_mean = ~(np.abs(mean_off) <= mean_tol + mean_margin)  # NaN counts as bad
        bad_std = ~((ratio <= high) & (ratio >= low))
    bad = bad_mean | bad_std
    passed = not bad.any()
    lo, hi = float(moments.min.min()), float(moments.max.max())
    _context.record(NormalizationRecord(
        check="assert_normalized", model=source.kind, passed=passed, channels=c, dim=dim,
        mean=got_mean.tolist(), std=got_std.tolist(),
        expected_mean=mu.tolist(), expected_std=sigma.tolist(), min=lo, max=hi,
    ))  # fmt: skip
    if not passed:
        headline, cause = _diagnose(got_mean, got_std, mu, sigma, lo, hi, bad_mean, bad_std,
                                    mean_tol + mean_margin, high - 1)  # fmt: skip
        raise _messages.fail(
            "assert_normalized",
            headline,
            msg=msg,
            evidence=[
                f"{int(bad.sum())} of {c} channel(s) off (along dim={dim}): "
                f"mean off by up to {np.abs(mean_off).max():.3g} expected std, std ratio "
                f"{ratio.min():.3g}..{ratio.max():.3g}; values range over [{lo:g}, {hi:g}].",
                f"Allowed: |mean - expected| <= mean_tol={mean_tol} x expected std, std within "
                f"a factor 1+std_tol={1 + std_tol:g} of expected"
                + (
                    f"; widened for the sampling error of {moments.n} values per channel to "
                    f"{mean_tol + mean_margin:.3g} std and a std ratio in [{low:.3g}, {high:.3g}]."
                    if mean_margin > 0.01 * mean_tol
                    else "."
                ),
                f"Read: {source.read_note()} of {source.kind} ({moments.n} values per channel).",
            ],
            cause=cause,
            picture=_table(
                got_mean, got_std, mu, sigma, moments.min, moments.max, bad_mean, bad_std
            ),
        )
    return ChannelStats(
        tuple(got_mean.tolist()), tuple(got_std.tolist()), tuple(moments.min.tolist()),
        tuple(moments.max.tolist()), tuple(mu.tolist()), tuple(sigma.tolist()), moments.n,
    )  # fmt: skip


def _diagnose(
    got_mean: np.ndarray,
    got_std: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    lo: float,
    hi: float,
    bad_mean: np.ndarray,
    bad_std: np.ndarray,
    mean_tol: float,
    std_tol: float,
) -> tuple[str, str]:
    """Headline and likely cause: which normalisation slip the numbers look like."""
    if not (np.isfinite(got_mean).all() and np.isfinite(got_std).all()):
        return (
            "the inputs hold NaN or Inf, so their statistics are not finite.",
            "corrupted values or a division by zero in preprocessing; find them with "
            "assert_finite_data.",
        )
    if lo >= 0 and hi > 1 and bad_std.any() and (mu < 5).all():
        pixels = " (the range of 8-bit pixels)" if 128 < hi <= 255 else ""
        return (
            f"inputs are unnormalised values in [{lo:g}, {hi:g}]{pixels}, not "
            f"{_expected(mu, sigma)}.",
            f"forgot to normalise: scale to 0..1 by the data's maximum (x / {hi:g}) and then "
            f"apply (x - mean) / std before the model; {_own_scale(got_mean, got_std)}.",
        )
    if lo >= 0 and hi <= 1 and ((mu < 0).any() or (np.abs(mu) < 0.1).all()):
        return (
            f"inputs are 0..1 values (in [{lo:g}, {hi:g}]), scaled but not normalised, not "
            f"{_expected(mu, sigma)}.",
            "forgot (x - mean) / std after scaling to 0..1 (e.g. transforms.Normalize missing "
            f"from the pipeline, or applied to another split only); {_own_scale(got_mean, got_std)}.",
        )
    if len(mu) > 1 and bad_mean.any():
        rev = slice(None, None, -1)
        rev_ok = (np.abs(got_mean - mu[rev]) <= mean_tol * sigma[rev]).all() and (
            np.abs(np.log(got_std / sigma[rev])) <= np.log1p(std_tol)
        ).all()
        if rev_ok:
            return (
                "channel statistics match the expected ones in reverse channel order.",
                "channels swapped (BGR vs RGB, e.g. OpenCV's cv2.imread) before the net, or "
                "the mean/std given in the other order.",
            )
    if bad_mean.any() and not bad_std.any():
        return (
            f"the mean is off in {int(bad_mean.sum())} channel(s) while the spread matches.",
            "used the wrong mean: another dataset's or another channel order's mean "
            "subtracted, or no mean subtracted at all (only divided by std).",
        )
    if bad_std.any() and not bad_mean.any():
        factor = float(np.median(got_std / sigma))
        return (
            f"the std is off by a factor of about {factor:.3g} while the centre matches.",
            "used the wrong std (another dataset's, a per-image std), divided by std twice "
            "or not at all, or the wrong value scale (0..1 vs 0..255 vs -1..1).",
        )
    return (
        f"mean and std are off in {int((bad_mean | bad_std).sum())} channel(s).",
        "normalised with another dataset's constants, normalised twice, or not at all; or "
        "the mean/std are given for the wrong dim (pass dim= the channel dim).",
    )


def _expected(mu: np.ndarray, sigma: np.ndarray) -> str:
    """What the model expects, in words: one mean/std or the per-channel range of them."""
    if np.ptp(mu) == 0 and np.ptp(sigma) == 0:
        return f"mean {mu[0]:.3g}, std {sigma[0]:.3g} as expected"
    return (
        f"the expected per-channel mean {mu.min():.3g}..{mu.max():.3g}, std "
        f"{sigma.min():.3g}..{sigma.max():.3g}"
    )


def _own_scale(mean: np.ndarray, std: np.ndarray) -> str:
    """The normalisation this data's own statistics give (constants measured here)."""
    if len(mean) == 1:
        return f"this data's own statistics give (x - {mean[0]:.4g}) / {std[0]:.4g}"
    return (
        f"this data's own per-channel statistics (the table's mean and std columns: mean "
        f"{mean.min():.3g}..{mean.max():.3g}, std {std.min():.3g}..{std.max():.3g}) are the "
        "constants if the model was not trained on other data"
    )


def _table(
    mean: np.ndarray,
    std: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    bad_mean: np.ndarray,
    bad_std: np.ndarray,
) -> str:
    c = len(mean)
    order = sorted(range(c), key=lambda i: (not (bad_mean[i] or bad_std[i]), i))
    shown = sorted(order[:MAX_ROWS])
    head = f"{'channel':>7} {'mean':>10} {'expected':>9} {'std':>10} {'expected':>9} {'min':>9} {'max':>9}"
    lines = [head]
    for i in shown:
        m_mark = "✗" if bad_mean[i] else " "
        s_mark = "✗" if bad_std[i] else " "
        lines.append(
            f"{i:>7} {mean[i]:>9.4g}{m_mark} {mu[i]:>9.4g} {std[i]:>9.4g}{s_mark} "
            f"{sigma[i]:>9.4g} {lo[i]:>9.4g} {hi[i]:>9.4g}"
        )
    if c > len(shown):
        lines.append(f"({c - len(shown)} more channels not shown; ✗ = outside tolerance)")
    else:
        lines.append("✗ = outside tolerance")
    return "\n".join(lines)


def _per_channel(value: Any, name: str, c: int) -> np.ndarray:
    try:
        arr = np.asarray(_samples.canonical(value, name=name), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}={value!r} must be a number or a per-channel sequence of numbers"
        ) from None
    if arr.size == 1:
        return np.full(c, float(arr[0]))
    if arr.size != c:
        raise ValueError(
            f"{name}= has {arr.size} values but the data has {c} channels along dim; pass "
            f"one value or {c}, or the right dim="
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}={value!r} must be finite")
    return arr


def _shape(x: np.ndarray, batched: bool) -> tuple[int, ...]:
    return tuple(x.shape) if batched else tuple(x.shape[1:])
