"""Handing a sweep's jobs to an executor, each checked against the registry just before it
goes, so that a rerun of a sweep, or a job lost with its node, never starts a point's run a
second time nor trains one run in two places at once (two sweep commands started at the
same moment still could: run one at a time).

- A job whose run still trains under a live lease (a sweep killed a moment ago whose trainer
  has not died yet, or another sweep process) waits until the run ends or its lease expires
  ($SRPO_LEASE_TTL_S without a heartbeat), then goes as `train --resume` if it is still
  unfinished.
- A job whose points already have runs (a first attempt created them before its node died)
  goes as `train --resume`, never as a new run.
- A job the executor lost (its node or worker died: `Ended.lost`) goes again, at most
  `LOST_RETRIES` times, and so resumes from its last checkpoint.
"""

from __future__ import annotations

from collections import Counter

from srpo_core.redact import redact
from srpo_core.registry import Registry, RunInfo
from srpo_core.sweep import Executor, Job, Sweep, pending_jobs, point_runs

LOST_RETRIES = 3
"""Times a job is submitted again after its node or worker died under it."""


class Dispatcher:
    """Submits a sweep's ``jobs`` to ``executor``, at most ``workers`` at a time (None: all
    at once, the engine queues them). Call `step` until `active` is false; `failures` then
    holds (job, error line) for each job whose `srpo` process failed or that was lost too
    often."""

    def __init__(
        self,
        registry: Registry,
        sweep: Sweep,
        jobs: list[Job],
        executor: Executor,
        *,
        workers: int | None,
        population_size: int | None,
    ) -> None:
        self.registry = registry
        self.sweep = sweep
        self.queue = list(jobs)
        self.executor = executor
        self.workers = workers
        self.population_size = population_size
        self.failures: list[tuple[Job, str]] = []
        self.resubmitted = 0
        """Jobs sent again after the executor lost them."""
        self._lost: Counter[tuple[str, ...]] = Counter()

    @property
    def active(self) -> bool:
        """Jobs are queued, waiting for a lease or running."""
        return bool(self.queue) or self.executor.busy > 0

    def step(self) -> None:
        """Collect the jobs that ended, then submit what may go now."""
        for ended in self.executor.finished():
            if not ended.lost:
                if ended.code != 0:
                    error = redact(ended.error) or f"exit code {ended.code}"
                    self.failures.append((ended.job, error))
                continue
            points = tuple(p.key for p in ended.job.points)
            self._lost[points] += 1
            if self._lost[points] > LOST_RETRIES:
                error = f"lost {self._lost[points]} times (last: {redact(ended.error)})"
                self.failures.append((ended.job, error))
            else:
                self.queue.insert(0, ended.job)
                self.resubmitted += 1
        self._submit()

    def stop(self) -> None:
        """Interrupt the running jobs (their runs record 'interrupted'); drop the queue."""
        self.queue = []
        self.executor.stop()

    def _submit(self) -> None:
        waiting: list[Job] = []
        runs: dict[str, RunInfo] | None = None
        while self.queue and (self.workers is None or self.executor.busy < self.workers):
            job = self.queue.pop(0)
            if runs is None:
                runs = point_runs(self.registry, self.sweep)
            found = [runs[p.key] for p in job.points if p.key in runs]
            if any(_training(run) for run in found):
                waiting.append(job)
            elif job.resumes is None and found:  # resume what its points have now
                now, _ = pending_jobs(
                    self.registry, self.sweep, self.population_size, points=job.points
                )
                self.queue[:0] = now
                runs = None
            elif not (found and all(run.status == "finished" for run in found)):
                self.executor.submit(job, self.registry.url)
        self.queue[:0] = waiting


def _training(run: RunInfo) -> bool:
    """Some process trains the run now: status 'running' under a live lease."""
    return run.status == "running" and not run.lease_expired
