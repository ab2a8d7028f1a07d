"""Live TensorBoard event files of training runs (``--set run.tensorboard=DIR``).

Every metric row a run logs is also written, as it is logged, to ``DIR/<run id>/``
(tensorboardX, the ``tensorboard`` extra), one scalar per key at the row's env step, so
``tensorboard --logdir DIR`` follows runs while they train. The registry stays the record;
the event files are a view of it.
"""

from __future__ import annotations

import os
from typing import Any

from srpo_core.config import Config
from srpo_core.errors import UserError

INSTALL_HINT = "pip install 'srpo[tensorboard]'"


def check_available(config: Config) -> None:
    """Refuse (one line) a run that asks for event files when tensorboardX is missing,
    before any registry row is written."""
    directory = config.run.tensorboard
    if not directory:
        return
    _writer_class()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f"run.tensorboard: cannot create {directory!r}: {reason}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"run.tensorboard: {directory!r} is not writable")


def _writer_class() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UserError(f"run.tensorboard needs tensorboardX: {INSTALL_HINT}") from None
    return SummaryWriter


class EventFiles:
    """One tensorboardX writer per run, under ``directory/<run id>``."""

    def __init__(self, directory: str, run_ids: list[str]) -> None:
        writer = _writer_class()
        try:
            self.writers = [writer(logdir=os.path.join(directory, r)) for r in run_ids]
        except OSError as exc:
            reason = exc.strerror or exc
            raise UserError(f"run.tensorboard: cannot write to {directory!r}: {reason}") from None

    def write(self, member: int, step: int, row: dict[str, float]) -> None:
        writer = self.writers[member]
        for key, value in row.items():
            writer.add_scalar(key, value, step)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
