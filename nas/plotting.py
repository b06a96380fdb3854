"""Figures: matplotlib on the Agg backend (no display needed) and atomic PNG writes.

matplotlib is imported only when a figure is drawn, so `nas --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from nas.atomic import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> None:
    """Write `fig` atomically (temporary file, then rename) and close it, even on error."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        pyplot().close(fig)
