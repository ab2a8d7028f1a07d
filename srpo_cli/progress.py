"""Training progress as a person sees it: a live bar on a terminal, plain lines in a log.

Under nohup, tmux logs and cluster schedulers stdout is a file: a rich bar would print
nothing until the run ends, so there a line goes out every ``every_s`` seconds (steps, the
steps/s since the previous line, the last evaluation return, elapsed time and ETA).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from srpo_core.learn import Progress as TrainProgress


class TrainingDisplay:
    """Shows `srpo_core.learn.Progress` updates, one bar or line per run (a population
    trains several); remembers the latest for the end-of-run and interruption messages
    (``last``)."""

    def __init__(self, console: Console, *, every_s: float, quiet: bool = False) -> None:
        self.console = console
        self.every_s = every_s
        self.last: TrainProgress | None = None
        self._bar = None if quiet or not console.is_terminal else _bar(console)
        self._tasks: dict[str, object] = {}
        self._lines = not quiet and not console.is_terminal
        self._start = time.monotonic()
        self._next_line: dict[str, float] = {}
        self._first_done: int | None = None

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: TrainProgress) -> None:
        if self._first_done is None:
            self._first_done = progress.done
            self._start = time.monotonic()
        self.last = progress
        ret = "-" if progress.eval_return is None else f"{progress.eval_return:.3f}"
        if self._bar is not None:
            if progress.run_id not in self._tasks:
                self._tasks[progress.run_id] = self._bar.add_task(
                    progress.run_id, total=None, sps=0.0, ret="-"
                )
            self._bar.update(
                self._tasks[progress.run_id],
                completed=progress.done,
                total=progress.budget,
                sps=progress.sps,
                ret=ret,
            )
        now = time.monotonic()
        finished = progress.done >= progress.budget
        if self._lines and (now >= self._next_line.get(progress.run_id, 0.0) or finished):
            self._next_line[progress.run_id] = now + self.every_s
            line = self._line(progress, ret, now - self._start)
            self.console.print(line, highlight=False, soft_wrap=True)

    def _line(self, progress: TrainProgress, ret: str, elapsed: float) -> str:
        share = progress.done / progress.budget if progress.budget else 1.0
        done_here = progress.done - (self._first_done or 0)
        left = max(progress.budget - progress.done, 0)
        eta = "-" if done_here <= 0 else _clock(left * elapsed / done_here)
        return (
            f"run {progress.run_id}  {progress.done:,}/{progress.budget:,} steps ({share:.0%})  "
            f"{progress.sps:,.0f} SPS  return {ret}  elapsed {_clock(elapsed)}  ETA {eta}"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]training {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[sps]:,.0f} SPS"),
        TextColumn("return {task.fields[ret]}"),
        TimeElapsedColumn(),
        console=console,
    )
