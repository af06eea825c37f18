"""Token-id batches, optionally padded with a matching attention mask."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as npst

from ._shapes import DEFAULT_MAX_ELEMENTS, _capped_shape
from ._tensors import _device
from ._validation import _bounds, _check_int, _check_max_elements


def token_batches(
    *,
    vocab_size: int,
    min_batch: int = 2,
    max_batch: int | None = None,
    min_length: int = 1,
    max_length: int | None = None,
    pad_id: int | None = None,
    padding_side: str = "right",
    dtype: torch.dtype = torch.int64,
    device: str | torch.device | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[Any]:
    """Batches of token ids in ``[0, vocab_size)``, ``min_batch..max_batch`` sequences of
    ``min_length..max_length`` tokens (defaults 2..8 and 1..16).

    Without ``pad_id``: an id tensor ``(batch, length)``, every sequence full length. With
    ``pad_id``: each sequence draws its own length, is padded with ``pad_id`` on
    ``padding_side`` to the longest one (which is never padded), and the strategy yields a
    dict ``{"input_ids": ..., "attention_mask": ...}`` (mask 1 on tokens, 0 on padding; both
    ``dtype``), ready for ``model(**batch)`` and for the checks' dict inputs. Real tokens never
    equal ``pad_id``. Shrinks towards short sequences of token 0 (1 if ``pad_id=0``).
    """
    vocab = _check_int(vocab_size, "vocab_size", at_least=1)
    min_batch, max_batch = _bounds("batch", min_batch, max_batch, default_lo=2, span=6, floor=1)
    min_length, max_length = _bounds(
        "length", min_length, max_length, default_lo=1, span=15, floor=0
    )
    if dtype not in (torch.int64, torch.int32):
        raise InvalidArgument(f"Expected dtype=torch.int64 or torch.int32 but got dtype={dtype!r}")
    if padding_side not in ("right", "left"):
        raise InvalidArgument(f"Expected padding_side='right' or 'left' but got {padding_side=!r}")
    if pad_id is not None:
        pad_id = _check_int(pad_id, "pad_id", at_least=0)
        if pad_id >= vocab:
            raise InvalidArgument(f"pad_id={pad_id} must be a token id below vocab_size={vocab}")
        if vocab < 2:
            raise InvalidArgument(f"vocab_size={vocab} leaves no token besides pad_id={pad_id}")
    cap = _check_max_elements(max_elements, (min_batch, min_length), "token batch")
    return _token_batches(
        vocab,
        (min_batch, max_batch),
        (min_length, max_length),
        pad_id,
        padding_side,
        dtype,
        device,
        cap,
    )


@st.composite
def _token_batches(
    draw: st.DrawFn,
    vocab: int,
    batch: tuple[int, int],
    length: tuple[int, int],
    pad_id: int | None,
    padding_side: str,
    dtype: torch.dtype,
    device: str | torch.device | None,
    cap: int,
) -> Any:
    b, room = draw(_capped_shape([(*batch, 1), (*length, 1)], cap))
    dev = _device(device)
    if pad_id is None:
        ids = draw(npst.arrays(np.int64, (b, room), elements=st.integers(0, vocab - 1)))
        return torch.from_numpy(ids).to(dtype).to(dev)
    # Every sequence draws its length; the longest one sets the width and is not padded.
    lengths = draw(st.lists(st.integers(length[0], room), min_size=b, max_size=b))
    longest = max(lengths)
    tokens = draw(npst.arrays(np.int64, (b, longest), elements=st.integers(0, vocab - 2)))
    tokens = tokens + (tokens >= pad_id)  # skip pad_id: real tokens never equal it
    positions = np.arange(longest)[None, :]
    sizes = np.array(lengths)[:, None]
    mask = positions < sizes if padding_side == "right" else positions >= longest - sizes
    ids = np.where(mask, tokens, pad_id)
    return {
        "input_ids": torch.from_numpy(ids).to(dtype).to(dev),
        "attention_mask": torch.from_numpy(mask.astype(np.int64)).to(dtype).to(dev),
    }
