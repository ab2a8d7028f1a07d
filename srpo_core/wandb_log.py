"""Live Weights & Biases runs of training runs (``--set run.wandb=PROJECT``).

Each training run is mirrored, as it logs, into a W&B run of the same id in that project
(the ``wandb`` extra): its config, and every metric row at the row's env step. The mode
is ``run.wandb_mode``: ``offline`` (default) writes W&B's run files under ``./wandb`` (or
``$WANDB_DIR``) for a later ``wandb sync``, with no network and no account; ``online``
streams to the W&B server you are logged in to. W&B prints nothing (srpo's own output,
``--json`` included, stays as it is). The registry stays the record.
"""

from __future__ import annotations

from typing import Any

from srpo_core.config import Config
from srpo_core.errors import UserError

INSTALL_HINT = "pip install 'srpo[wandb]'"


def check_available(config: Config) -> None:
    """Refuse (one line) a run that asks for W&B when the package is missing, before any
    registry row is written."""
    if config.run.wandb:
        _module()


def _module() -> Any:
    try:
        import wandb
    except ImportError:
        raise UserError(f"run.wandb needs the wandb package: {INSTALL_HINT}") from None
    return wandb


class WandbRuns:
    """One W&B run per training run (all of a population's members in one process)."""

    def __init__(self, configs: list[Config], run_ids: list[str]) -> None:
        wandb = _module()
        run = configs[0].run
        settings = wandb.Settings(mode=run.wandb_mode, silent=True, console="off")
        try:
            self.runs = [
                wandb.init(
                    project=run.wandb,
                    id=run_id,
                    name=run_id,
                    config=config.to_dict(),
                    reinit="create_new",
                    settings=settings,
                )
                for config, run_id in zip(configs, run_ids, strict=True)
            ]
        except Exception as exc:  # wandb raises its own errors for bad projects, no login...
            raise UserError(f"run.wandb: W&B refused the run: {exc}") from None

    def write(self, member: int, step: int, row: dict[str, float]) -> None:
        self.runs[member].log(row, step=step)

    def flush(self) -> None:
        """W&B's own process writes as rows come; nothing to do."""

    def close(self) -> None:
        for run in self.runs:
            run.finish()
