"""Live views of training runs beside the registry: TensorBoard event files
(``run.tensorboard``, `srpo_core.tensorboard`) and W&B runs (``run.wandb``,
`srpo_core.wandb_log`). The training loop writes every metric row to each as it logs it."""

from __future__ import annotations

from typing import Protocol

from srpo_core import tensorboard, wandb_log
from srpo_core.config import Config


class LiveLog(Protocol):
    def write(self, member: int, step: int, row: dict[str, float]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def check_available(config: Config) -> None:
    """Refuse (one line) what the config asks for and this install cannot do."""
    tensorboard.check_available(config)
    wandb_log.check_available(config)


def open_live_logs(configs: list[Config], run_ids: list[str]) -> list[LiveLog]:
    """The live logs the runs' config asks for (none by default); if one cannot open, the
    others are closed again."""
    run = configs[0].run
    logs: list[LiveLog] = []
    try:
        if run.tensorboard:
            logs.append(tensorboard.EventFiles(run.tensorboard, run_ids))
        if run.wandb:
            logs.append(wandb_log.WandbRuns(configs, run_ids))
    except BaseException:  # one failed: close the ones already open
        for log in logs:
            log.close()
        raise
    return logs
