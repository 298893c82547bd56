"""The plotting style shared by every adapter that draws figures (matplotlib's Agg canvas, PNG bytes)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80
"""Resolution of every figure: sharp enough on screen, small enough to inline."""

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
"""matplotlib rc parameters of every figure (use with ``matplotlib.rc_context``)."""


def figure_png(figure: Figure, dpi: float) -> bytes:
    """``figure`` as PNG bytes, drawn on the Agg canvas (no display, no pyplot state)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No Software/date metadata: the same result must give the same bytes.
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
