"""Data checks: "become one with the data" as assertions and a summary.

One module per concern: :mod:`._samples` (reading any data as ``(index, sample)`` and hashing
samples), :mod:`._duplicates` (duplicates, leakage, label conflicts), :mod:`._values`
(NaN/Inf/bounds), :mod:`._balance` (class shares), :mod:`._normalization` (per-channel
statistics before the net), :mod:`._augmentation` (labels move with the input) and
:mod:`._summary` (the table for a person to read).
"""

from __future__ import annotations
