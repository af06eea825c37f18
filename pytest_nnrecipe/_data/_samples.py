"""Data as a stream of ``(index, sample)``: what every data check reads, and sample hashing.

:func:`open_data` accepts a tensor or NumPy array (samples along dim 0), a sequence of samples,
a map-style ``torch.utils.data.Dataset`` (``len`` + ``__getitem__``) or any other iterable
(an ``IterableDataset``: read in order, no ``len`` needed). A sample is a tensor, an array, a
number, a string, or a tuple/list/dict of those; :func:`canonical` turns it into NumPy arrays
(torch tensors are read on the CPU, never modified) so that a tensor row, the same values as a
NumPy array, and a Python number of the same dtype are the same sample.

Reading streams: nothing but the current sample (or one chunk of rows of an in-memory array)
is held. ``max_samples`` reads a random subset of that many indices, chosen by a private
generator (``numpy.random.default_rng(seed)``, global RNGs untouched), visited in index order,
so that a dataset sorted by class is still sampled evenly. Indices in every message are the
data's own indices.

Fingerprints (:func:`fingerprint`) are 128-bit BLAKE2b digests of canonical bytes: kind of
number, shape and values of every array, with tuples/dicts hashed from their parts. Two samples
have the same fingerprint iff they are the same (up to a 2**-128 collision chance): same shape
and equal values, numbers compared by value within their kind, whatever their width. So a
float32 row and the same values in float64 (a train split from torch, a test split from
pandas) are one sample, as are int32 and int64 token ids; ``-0.0`` equals ``0.0`` and NaNs at
the same place are equal (a missing value repeated is still a repeat), whatever their bits.
Floats, integers and bools stay different kinds (``[1, 2]`` is not ``[1.0, 2.0]``).

Progress: a one-line counter on stderr (no dependency: a ``\\r`` line is all a counter needs),
shown when ``progress=True``, or by default (``progress=None``) once a read has taken over a
second and stderr is a terminal: never in captured or CI output.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

#: Rows per chunk when an in-memory array is read in bulk.
CHUNK = 8192
#: Digest size of a fingerprint, in bytes.
DIGEST = 16
#: Widened bytes hashed per block by :func:`row_fingerprints`.
BLOCK_BYTES = 1 << 24
_INT64_MAX = 2**63 - 1


def describe(data: Any) -> str:
    """A short name for the data in messages and records: type and, for arrays, shape/dtype."""
    kind = type(data).__name__
    shape = getattr(data, "shape", None)
    dtype = getattr(data, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{kind}[{', '.join(str(s) for s in shape)}] {str(dtype).replace('torch.', '')}"
    try:
        return f"{kind} of {len(data)}"
    except TypeError:
        return kind


@dataclasses.dataclass
class Source:
    """One readable data argument. Iterate for ``(index, canonical sample)``."""

    data: Any
    name: str
    kind: str
    length: int | None
    indices: np.ndarray | None
    key: Callable[[Any], Any] | None
    progress: bool | None

    @property
    def n(self) -> int | None:
        """How many samples a full pass visits (``None`` for an iterable of unknown length)."""
        return len(self.indices) if self.indices is not None else self.length

    @property
    def is_array(self) -> bool:
        return _is_array(self.data) and self.key is None

    def read_note(self) -> str:
        """ "all 1000 samples" / "a random 500 of 1000 samples (max_samples=500)"."""
        if self.indices is not None and self.length is not None and len(self.indices) < self.length:
            return f"a random {len(self.indices)} of {self.length} samples (max_samples={len(self.indices)})"
        return f"all {self.n} samples" if self.n is not None else "every sample"

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        with _Progress(self.n, self.name, self.progress) as bar:
            if self.is_array:
                for idx, chunk in self.chunks():
                    for k, i in enumerate(idx.tolist()):
                        yield i, chunk[k, ...]  # a 0-d array, not a NumPy scalar, for 1-d data
                    bar.advance(len(idx))
                return
            for i, raw in self._raw():
                yield i, self._canon(raw, i)
                bar.advance(1)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Bulk read of an in-memory array: ``(indices, rows)`` blocks of at most CHUNK rows."""
        total = self.length or 0
        if self.indices is None:
            for start in range(0, total, CHUNK):
                stop = min(start + CHUNK, total)
                yield np.arange(start, stop), _numpy(self.data[start:stop])
        else:
            for start in range(0, len(self.indices), CHUNK):
                idx = self.indices[start : start + CHUNK]
                block = (
                    self.data[idx]
                    if isinstance(self.data, np.ndarray)
                    else self.data[_torch_index(idx)]
                )
                yield idx, _numpy(block)

    def chunked(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like :meth:`chunks`, with the progress counter (array sources only)."""
        with _Progress(self.n, self.name, self.progress) as bar:
            for idx, rows in self.chunks():
                yield idx, rows
                bar.advance(len(idx))

    def get(self, i: int) -> Any:
        """Sample ``i`` again (map-style data only), canonical."""
        return self._canon(self._read(i), i)

    def _raw(self) -> Iterator[tuple[int, Any]]:
        if self.length is None:
            it = iter(self.data)
            i = 0
            while True:
                try:
                    raw = next(it)
                except StopIteration:
                    return
                except Exception as exc:
                    raise ValueError(
                        f"{self.name}: reading sample {i} raised {type(exc).__name__}: {exc}"
                    ) from exc
                yield i, raw
                i += 1
        order = range(self.length) if self.indices is None else self.indices.tolist()
        for i in order:
            yield i, self._read(i)

    def _read(self, i: int) -> Any:
        try:
            return self.data[i]
        except Exception as exc:
            raise ValueError(
                f"{self.name}[{i}] raised {type(exc).__name__}: {exc} (while reading sample {i} "
                f"of {self.kind}; fix the dataset's __getitem__ or pass a subset)"
            ) from exc

    def _canon(self, raw: Any, i: int) -> Any:
        if self.key is not None:
            try:
                raw = self.key(raw)
            except Exception as exc:
                raise ValueError(
                    f"key= raised {type(exc).__name__}: {exc} on sample {i} of {self.name}"
                ) from exc
        return canonical(raw, index=i, name=self.name)


def open_data(
    data: Any,
    *,
    name: str = "data",
    max_samples: int | None = None,
    progress: bool | None = None,
    key: Callable[[Any], Any] | None = None,
    seed: int = 0,
) -> Source:
    """Wrap ``data`` for reading; ``TypeError``/``ValueError`` naming ``name=`` on bad input."""
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"max_samples={max_samples!r} must be a positive int or None")
    if key is not None and not callable(key):
        raise TypeError(f"key={key!r} must be a callable sample -> part, or None")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress={progress!r} must be True, False or None (auto)")
    length: int | None
    if _is_array(data):
        if getattr(data, "is_sparse", False) or getattr(data, "layout", None) not in (
            None,
            _strided(),
        ):
            raise TypeError(f"{name}= is a sparse tensor; pass data.to_dense()")
        if data.ndim == 0:
            raise ValueError(
                f"{name}= is a 0-d {type(data).__name__}; samples lie along dim 0, so pass "
                "at least a 1-d tensor/array"
            )
        length = int(data.shape[0])
    elif isinstance(data, (str, bytes, Mapping)) or data is None:
        raise TypeError(
            f"{name}= must be a tensor, NumPy array, sequence of samples or Dataset, got "
            f"{type(data).__name__}"
            + (
                "; for columns {'x': X, 'y': Y} pass the columns separately (e.g. data['x'])"
                if isinstance(data, Mapping)
                else ""
            )
        )
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        length = len(data)
    elif hasattr(data, "__iter__"):
        length = None
    else:
        raise TypeError(
            f"{name}= must be a tensor, NumPy array, sequence of samples or Dataset, got "
            f"{type(data).__name__} (it has neither __len__/__getitem__ nor __iter__)"
        )
    indices = None
    if max_samples is not None and length is not None and max_samples < length:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(length, size=max_samples, replace=False))
    source = Source(data, name, describe(data), length, indices, key, progress)
    if max_samples is not None and length is None:
        source = dataclasses.replace(source, data=_first(data, max_samples))
    return source


def refuse_empty(source: Source, n: int | None = None, *, argument: str | None = None) -> None:
    """``ValueError`` when ``source`` holds no sample: a check of nothing would pass silently.

    ``n``: the samples read, for data of unknown length (an iterable) once it has been read;
    by default the length known up front (nothing is raised while it is unknown).
    ``argument``: how the message names the argument (default ``"<name>="``).
    """
    count = source.n if n is None else n
    if count == 0:
        raise empty_error(source, argument=argument)


def empty_error(source: Source, *, argument: str | None = None) -> ValueError:
    """The error of :func:`refuse_empty`."""
    return ValueError(
        f"{argument or source.name + '='} is empty ({source.kind}): nothing to check: 0 "
        "samples. Pass the data to check; an empty dataset is usually a path, glob, filter "
        "or split that matched nothing."
    )


def canonical(sample: Any, *, index: int | None = None, name: str = "data") -> Any:
    """``sample`` as NumPy arrays (leaves), tuples, dicts, strings, bytes or ``None``."""
    where = f"sample {index} of {name}" if index is not None else name
    if isinstance(sample, np.ndarray):
        if sample.dtype == object:
            return _from_list(sample.tolist(), where)
        return sample
    if _is_tensor(sample):
        return _numpy(sample)
    if isinstance(sample, (bool, np.bool_)):
        return np.asarray(sample, dtype=bool)
    if isinstance(sample, int):
        return np.asarray(sample, dtype=np.int64) if -(2**63) <= sample < 2**63 else str(sample)
    if isinstance(sample, float):
        return np.asarray(sample, dtype=np.float64)
    if isinstance(sample, np.generic):
        return np.asarray(sample)
    if isinstance(sample, (str, bytes)) or sample is None:
        return sample
    if isinstance(sample, Mapping):
        return {str(k): canonical(v, index=index, name=name) for k, v in sample.items()}
    if isinstance(sample, list) and sample and all(_is_number_tree(v) for v in sample):
        return _from_list(sample, where)
    if isinstance(sample, (tuple, list)):
        return tuple(canonical(v, index=index, name=name) for v in sample)
    raise TypeError(
        f"{where} is a {type(sample).__name__}, which the data checks cannot read: samples "
        "must be tensors, arrays, numbers, strings or tuples/lists/dicts of them. Pass key= "
        "to turn a sample into one (e.g. key=lambda s: torch.as_tensor(s.pixels))"
    )


def fingerprint(sample: Any, *, atol: float | None = None) -> bytes:
    """128-bit digest of a canonical sample (floats rounded to multiples of ``atol`` if given)."""
    if isinstance(sample, np.ndarray):
        if sample.dtype == np.uint64 and sample.size and int(sample.max()) > _INT64_MAX:
            h = _prefix(sample.dtype.str, sample.shape).copy()
            h.update(np.ascontiguousarray(sample).data)
            return h.digest()
        tag, values = _hash_form(sample, atol)
        h = _prefix(tag, sample.shape).copy()
        h.update(np.ascontiguousarray(values).data)
        return h.digest()
    if isinstance(sample, tuple):
        h = hashlib.blake2b(b"T%d:" % len(sample), digest_size=DIGEST)
        for part in sample:
            h.update(fingerprint(part, atol=atol))
        return h.digest()
    if isinstance(sample, dict):
        h = hashlib.blake2b(b"D%d:" % len(sample), digest_size=DIGEST)
        for k in sorted(sample):
            h.update(fingerprint(k))
            h.update(fingerprint(sample[k], atol=atol))
        return h.digest()
    if isinstance(sample, str):
        return hashlib.blake2b(
            b"S" + sample.encode("utf-8", "surrogatepass"), digest_size=DIGEST
        ).digest()
    if isinstance(sample, bytes):
        return hashlib.blake2b(b"B" + sample, digest_size=DIGEST).digest()
    if sample is None:
        return hashlib.blake2b(b"N", digest_size=DIGEST).digest()
    raise TypeError(f"cannot fingerprint a {type(sample).__name__}; canonicalise it first")


def row_fingerprints(rows: np.ndarray, *, atol: float | None = None) -> list[bytes]:
    """:func:`fingerprint` of every row of an array at once (same digests, ~1 µs a row).

    Rows are widened (``float64``/``int64``) a block of at most :data:`BLOCK_BYTES` at a time,
    so a chunk of large images never needs a full-size widened copy.
    """
    m = len(rows)
    if m == 0:
        return []
    if rows.dtype == np.uint64:  # rare: values past int64 keep their own dtype, row by row
        return [fingerprint(r, atol=atol) for r in rows]
    row_values = int(np.prod(rows.shape[1:], dtype=np.int64))
    block = max(1, BLOCK_BYTES // max(16 * row_values, 1))
    out = []
    for start in range(0, m, block):
        sub = rows[start : start + block]
        tag, values = _hash_form(sub, atol)
        prefix = _prefix(tag, rows.shape[1:])
        values = np.ascontiguousarray(values)
        k = len(sub)
        step = values.nbytes // k
        buf = memoryview(values.reshape(-1).view(np.uint8)) if step else memoryview(b"")  # type: ignore[arg-type]
        for r in range(k):
            h = prefix.copy()
            h.update(buf[r * step : (r + 1) * step])
            out.append(h.digest())
    return out


def _hash_form(a: np.ndarray, atol: float | None) -> tuple[str, np.ndarray]:
    """The tag and values a numeric array is hashed by: numbers compare by value.

    Floats of any width are widened to ``float64`` (exact), with ``-0.0`` read as ``0.0`` and
    every NaN as one NaN (so a NaN at the same place is equal, whatever its bits); integers of
    any width to ``int64``; complex to ``complex128``. So a float32 row and the same values as
    float64, or int32 and int64 token ids, are the same sample; a float and an integer array,
    or bools and integers, stay different kinds. With ``atol``, floats are rounded to the grid.
    Other dtypes (strings, dates) are hashed by dtype and bytes.
    """
    kind = a.dtype.kind
    if kind in "fc":
        x = a.astype(np.complex128 if kind == "c" else np.float64)
        if kind == "c":
            x = x.reshape(-1).view(np.float64)  # (re, im) pairs; the shape is hashed apart
        if atol is not None:
            return f"q{atol!r}{kind}", quantise(x, atol)
        np.add(x, 0.0, out=x)  # -0.0 + 0.0 == +0.0
        nan = np.isnan(x)
        if nan.any():
            x[nan] = np.nan
        return kind, x
    if kind in "iu":
        return "i", a.astype(np.int64, copy=False)
    return a.dtype.str, a


@functools.lru_cache(maxsize=256)
def _prefix(tag: str, shape: tuple[int, ...]) -> Any:
    """The hasher after an array's header (number kind or rounding grid, shape): copied per sample."""
    header = b"A%s(%s):" % (tag.encode(), ",".join(str(s) for s in shape).encode())
    return hashlib.blake2b(header, digest_size=DIGEST)


def quantise(a: np.ndarray, atol: float | None) -> np.ndarray:
    """Floats rounded to the nearest multiple of ``atol`` (as int64; non-finite kept apart)."""
    if atol is None or not _is_float(a):
        return a
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.round(a.astype(np.float64) / atol)
        finite = np.isfinite(q) & (np.abs(q) < 2**62)
        out = np.where(finite, q, 0).astype(np.int64)
    # Non-finite values: distinct sentinels for nan, +inf, -inf (and overflow -> +-inf).
    if not finite.all():
        out = np.where(np.isnan(q), np.int64(-(2**63)), out)
        out = np.where(~finite & (q > 0), np.int64(2**63 - 1), out)
        out = np.where(~finite & (q < 0), np.int64(-(2**63) + 1), out)
    return out


def leaves(sample: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf of a canonical sample: ``""``, ``"[0]"``, ``"['x']"``."""
    if isinstance(sample, tuple):
        for i, part in enumerate(sample):
            yield from leaves(part, f"{path}[{i}]")
    elif isinstance(sample, dict):
        for k, part in sample.items():
            yield from leaves(part, f"{path}[{k!r}]")
    else:
        yield path, sample


def numeric(a: Any) -> bool:
    """Whether a leaf holds numbers (bool, int, float, complex arrays)."""
    return isinstance(a, np.ndarray) and a.dtype.kind in "biufc"


def show(sample: Any, limit: int = 40) -> str:
    """A short readable form of a canonical sample (labels, values) for messages."""
    if isinstance(sample, np.ndarray) and sample.ndim == 0:
        text = repr(sample.item())
    elif isinstance(sample, np.ndarray):
        text = np.array2string(sample.ravel()[:8], precision=3, separator=",") + (
            f" shape {tuple(sample.shape)}" if sample.size > 8 else ""
        )
    elif isinstance(sample, tuple):
        text = "(" + ", ".join(show(s, limit) for s in sample) + ")"
    elif isinstance(sample, dict):
        text = "{" + ", ".join(f"{k!r}: {show(v, limit)}" for k, v in sample.items()) + "}"
    else:
        text = repr(sample)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Keys that usually hold the label of a dict sample (used to suggest ``key=``).
LABEL_KEYS = ("label", "labels", "target", "targets", "y", "class", "category")


def key_hint(sample: Any, part: str) -> str:
    """The ``key=`` that picks the ``part`` ("input", "label" or "pair") of a canonical sample."""
    if isinstance(sample, dict) and sample:
        keys = list(sample)
        x = next((k for k in keys if k not in LABEL_KEYS), keys[0])
        y = next((k for k in keys if k in LABEL_KEYS), "label")
        pick = {"input": f"s[{x!r}]", "label": f"s[{y!r}]", "pair": f"(s[{x!r}], s[{y!r}])"}
        return f"key=lambda s: {pick[part]}"
    return "key=lambda s: " + {"input": "s[0]", "label": "s[1]", "pair": "(s[0], s[1])"}[part]


def as_float(a: np.ndarray) -> np.ndarray:
    """A numeric leaf as float64 (bool/int widened; complex kept)."""
    return a if a.dtype.kind == "c" else a.astype(np.float64, copy=False)


# --------------------------------------------------------------------------- helpers


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_array(x: Any) -> bool:
    """A tensor or a NumPy array of numbers/strings; an object array (ragged samples, e.g.
    token-id arrays of different lengths) is read as a sequence of samples instead."""
    return (isinstance(x, np.ndarray) and x.dtype != object) or _is_tensor(x)


def _strided() -> Any:
    torch = sys.modules.get("torch")
    return torch.strided if torch is not None else None


def _torch_index(idx: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(idx)


def _numpy(t: Any) -> np.ndarray:
    """A tensor's values as a NumPy array on the CPU (a view when possible, never a write)."""
    if isinstance(t, np.ndarray):
        return t
    import torch

    if t.device.type == "cpu" and t.dtype != torch.bfloat16 and not t.is_conj():
        return t.detach().numpy()
    t = t.detach().resolve_conj()
    if t.dtype == torch.bfloat16:
        return t.cpu().float().numpy()
    return t.cpu().numpy()


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind in "fc"


def _is_number_tree(v: Any) -> bool:
    if isinstance(v, list):
        return all(_is_number_tree(x) for x in v)
    return isinstance(v, (int, float, bool, np.number, np.bool_))


def _from_list(values: list[Any], where: str) -> np.ndarray:
    try:
        out = np.asarray(values)
    except ValueError as exc:
        raise ValueError(
            f"{where} is ragged (nested lists of different lengths: {exc}); make each "
            "sample rectangular, or pass key= that turns it into a tensor or tuple of tensors"
        ) from None
    if out.dtype == object:
        raise ValueError(
            f"{where} is ragged (nested lists of different lengths); make each sample "
            "rectangular, or pass key= that turns it into a tensor or tuple of tensors"
        )
    return out


def _first(data: Any, n: int) -> Any:
    def gen() -> Iterator[Any]:
        for i, x in enumerate(data):
            if i >= n:
                return
            yield x

    class _Head:
        def __iter__(self) -> Iterator[Any]:
            return gen()

    return _Head()


class _Progress:
    """``name: 12,000/1,000,000 samples (1.2%)`` on stderr, at most 4 updates a second."""

    def __init__(self, total: int | None, name: str, mode: bool | None) -> None:
        self.total, self.name, self.mode = total, name, mode
        self.count = 0
        self.start = self.last = time.monotonic()
        self.shown = False

    def __enter__(self) -> _Progress:
        return self

    def advance(self, k: int) -> None:
        self.count += k
        if self.mode is False:
            return
        now = time.monotonic()
        if now - self.last < 0.25 and not (self.mode and not self.shown):
            return
        self.last = now
        if self.mode is None and (now - self.start < 1.0 or not _stderr_is_tty()):
            return
        self.shown = True
        total = f"/{self.total:,}" if self.total else ""
        pct = f" ({self.count / self.total:.0%})" if self.total else ""
        sys.stderr.write(f"\r{self.name}: {self.count:,}{total} samples{pct}   ")
        sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False
