"""PNG pictures of what the checks saw (``--nn-artifacts DIR``), drawn with matplotlib.

matplotlib comes from the optional extra ``plot`` and is imported only when a picture is
drawn; without it the writers raise :class:`PicturesUnavailable` (an ``ImportError``) whose
message says how to install it. No pyplot, no backend switch: each figure has its own Agg
canvas, so the user's matplotlib state is untouched and xdist workers draw in parallel.

One function per picture kind, each taking plain data and a path and returning the path, and
:func:`write_artifacts`, which picks the pictures a check record has data for.
"""

from __future__ import annotations

from ._artifacts import file_stem, write_artifacts, write_test_artifacts
from ._canvas import PicturesUnavailable
from ._charts import class_histogram, init_loss, loss_curve, lr_curve
from ._grids import batch, conv_weights, looks_like_images
from ._matrix import dependency_matrix

__all__ = [
    "PicturesUnavailable",
    "batch",
    "class_histogram",
    "conv_weights",
    "dependency_matrix",
    "file_stem",
    "init_loss",
    "looks_like_images",
    "loss_curve",
    "lr_curve",
    "write_artifacts",
    "write_test_artifacts",
]
