"""Figures: matplotlib on the Agg backend (no display needed) and atomic figure writes.

matplotlib is imported only when a figure is drawn, so `nas --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from nas.core.atomic import atomic_path
from nas.core.paths import check_output_file
from nas.core.errors import UserError


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def check_figure_path(path: str | Path, what: str = "figure") -> Path:
    """`path` if matplotlib can write a figure there: a known suffix, a place where a file can
    be written (nas.core.paths.check_output_file: creates nothing). `what` names it in errors
    ("--plot figure")."""
    path = Path(path)
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    if path.suffix.lstrip(".").lower() not in formats:
        raise UserError(f"{what} {path}: give a file name ending in one of "
                        f"{', '.join('.' + f for f in sorted(formats))} (e.g. plot.png)")
    return check_output_file(path, what)


def save_figure(fig, path: str | Path, dpi: int = 120) -> None:
    """Write `fig` atomically (temporary file, then rename) and close it, even on error."""
    try:
        path = check_figure_path(path)
        with atomic_path(path, "figure") as tmp:    # creates the figure's folder
            fig.savefig(tmp, dpi=dpi)
    finally:
        pyplot().close(fig)
