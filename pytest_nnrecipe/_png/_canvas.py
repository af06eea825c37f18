"""Figures that touch no global matplotlib state: no pyplot, no backend switch, exact sizes.

Every picture is a :class:`matplotlib.figure.Figure` with its own Agg canvas, saved at a fixed
DPI with an explicit bounding box, so the PNG has exactly the pixel size asked for whatever the
user's ``rcParams`` say (``savefig.bbox = tight`` included) and pictures can be drawn from
several threads or xdist workers at once.
"""

from __future__ import annotations

import os
from typing import Any

DPI = 100

#: Shared look: one colour per meaning across every picture.
FORBIDDEN = "#d62728"  # red: a dependency that must not exist, a bar below its share
ALLOWED = "#1f5fa8"  # blue: a dependency that may exist
INCONCLUSIVE = "#ff9f1c"  # orange: could not be decided
REGION = "#e6e6e6"  # light grey: where dependencies are allowed
TARGET = "#2ca02c"  # green: the target line


class PicturesUnavailable(ImportError):
    """matplotlib is not installed: the caller says once how to get PNG pictures."""

    HINT = (
        "install pytest-nnrecipe[plot] (matplotlib) for PNG pictures; "
        "text pictures are in the messages"
    )

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.HINT + (f" ({reason})" if reason else ""), name="matplotlib")


def figure(width_px: int, height_px: int) -> Any:
    """A new figure of ``width_px`` x ``height_px`` pixels with its own Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching the import
        raise PicturesUnavailable(str(exc)) from exc
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.set_facecolor("white")
    return fig


def save(fig: Any, path: str | os.PathLike[str]) -> str:
    """Write ``fig`` as a PNG at exactly its pixel size; return the path as a string."""
    from matplotlib.transforms import Bbox

    w, h = fig.get_size_inches()
    out = os.fspath(path)
    fig.savefig(
        out,
        format="png",
        dpi=DPI,
        facecolor="white",
        bbox_inches=Bbox.from_bounds(0, 0, w, h),
        metadata={"Software": "pytest-nnrecipe"},
    )
    return out


def as_array(x: Any) -> Any:
    """A NumPy array from a tensor (any device, any dtype), array, list or scalar."""
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.dtype.is_floating_point or x.dtype.is_complex:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def log_scale(values: Any) -> bool:
    """The text pictures' log-scale rule (:func:`pytest_nnrecipe._text_pictures.use_log`): positive
    ``values`` spanning more than two decades are drawn on a log axis."""
    import numpy as np

    from .. import _text_pictures

    return _text_pictures.use_log(np.asarray(values, dtype=float).reshape(-1).tolist())
