"""TensorBoard event files through torch.utils.tensorboard (needs the `tensorboard` package)."""

from __future__ import annotations

from pathlib import Path

from nas.core.errors import UserError


def require_tensorboard() -> None:
    """A one-line UserError when the tensorboard package is missing (check before any work)."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: "
                        "pip install tensorboard") from None


def summary_writer(log_dir: str | Path, purge_step: int | None = None):
    """A `SummaryWriter` into `log_dir`; `purge_step` drops events logged at or after that step
    by an interrupted run (on resume)."""
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(log_dir), purge_step=purge_step)
