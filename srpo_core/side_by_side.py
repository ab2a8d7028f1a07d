"""Independent jobs (two heroes' updates) run side by side in threads.

torch releases the GIL inside its ops, so jobs that touch disjoint state (their own
networks, optimisers and generators) share the cores; each thread runs torch with the
run's thread count, so the kernels, and therefore the numbers, are the ones a sequential
run uses. Results come back in the jobs' order whichever way they ran.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


class SideBySide:
    """Runs a list of jobs in threads when ``enabled`` (else one after the other); the
    first job runs in the calling thread. The pool is built on first use and kept."""

    def __init__(self, enabled: bool, threads: int) -> None:
        self.enabled = enabled
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._workers = 0

    def run(self, jobs: list[Callable[[], T]]) -> list[T]:
        if not self.enabled or len(jobs) < 2:
            return [job() for job in jobs]
        if self._workers < len(jobs) - 1:
            self._workers = len(jobs) - 1
            self._pool = ThreadPoolExecutor(
                len(jobs) - 1,
                thread_name_prefix="srpo-update",
                initializer=torch.set_num_threads,
                initargs=(self.threads,),
            )
        assert self._pool is not None
        futures = [self._pool.submit(job) for job in jobs[1:]]
        first = jobs[0]()
        return [first, *(future.result() for future in futures)]
