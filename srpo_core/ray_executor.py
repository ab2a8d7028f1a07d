"""Sweeps and cross-play on a Ray cluster (the ``ray`` extra; the only module importing Ray).

`RayCluster.connect` joins the cluster at an address (``auto``, ``HOST:PORT``) or, without
one, the cluster Ray finds on this machine (else a one-node Ray started for this command).

`RayExecutor` is a sweep's `Executor` there. Each job is one Ray task with the job's
resource request (`cluster.Resources`) that runs the job's `srpo` command line in a child
process on its node, with the driver's registry URL and artifact folder (`cluster.task_env`);
the child dies with its task (`tethered`), and the task with its node or with the driver. A
lost node therefore ends its trainings as a power cut would, and the sweep submits those
jobs again (`dispatch`), which resume the runs from their checkpoints. Ray does not retry
these tasks itself: a second attempt must resume the run the first one created, not start
it again.

`RayCluster.seating_player` plays cross-play seatings as Ray tasks, one per seating, each
with the seeds a local process would use, so the results are the same as a local
cross-play's; the driver stores them. Those tasks store nothing, so Ray retries them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from srpo_core.cluster import (
    Resources,
    absolute_url,
    check_artifacts_visible,
    check_shared_registry,
    seating_resources,
    task_env,
)
from srpo_core.errors import UserError
from srpo_core.evaluation.play import play_seating
from srpo_core.evaluation.seatings import Seating, Setup
from srpo_core.registry import Registry
from srpo_core.sweep import Ended, Job, last_line

STOP_WAIT_S = 30.0
"""How long `RayExecutor.stop` waits for interrupted tasks to record their runs' status."""
SEATING_RETRIES = 3
"""Times Ray runs a cross-play seating again whose worker or node died."""


class RayCluster:
    """A connection to a Ray cluster (this process its driver); `close` disconnects."""

    @classmethod
    def connect(cls, address: str | None) -> RayCluster:
        """Join the cluster (Ray's SIGTERM handler, which exits, is replaced by the one this
        process had)."""
        handler = signal.getsignal(signal.SIGTERM)
        _cluster_messages_to_stderr()
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {address}" if address else "on this machine"
            raise UserError(
                f"cannot connect to a Ray cluster {where}: {_first_line(exc)}"
            ) from None
        finally:
            if handler is not None:
                signal.signal(signal.SIGTERM, handler)
        return cls()

    def close(self) -> None:
        ray.shutdown()

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's live nodes."""
        return [node for node in ray.nodes() if node.get("Alive")]

    def check_registry(self, url: str) -> None:
        """Refuse a registry the nodes cannot share (SQLite on more than one node)."""
        check_shared_registry(url, len(self.nodes()))

    def check_fits(self, requests: Iterable[Resources]) -> None:
        """Refuse, before anything runs, a request that no live node could ever grant (Ray
        would keep such a task pending for ever)."""
        offers = [node.get("Resources", {}) for node in self.nodes()]
        for request in set(requests):
            if not any(_fits(request, offer) for offer in offers):
                largest = ", ".join(
                    f"{key} {max(o.get(key, 0) for o in offers):g}" for key in ("CPU", "GPU")
                )
                raise UserError(
                    f"no node of this Ray cluster can grant {request.describe()} (its largest "
                    f"nodes have {largest}): lower run.threads, run.device or --resources"
                )

    def executor(self, registry: Registry, override: Resources) -> RayExecutor:
        return RayExecutor(registry, override)

    def seating_player(self, registry: Registry, override: Resources) -> SeatingPlayer:
        return SeatingPlayer(registry, override)


def _cluster_messages_to_stderr() -> None:
    """Ray's driver prints what the cluster reports (such as a node marked dead) on stdout,
    where it would break a table or --json: send it to stderr with the command's other
    messages. (A private hook of Ray's: without it, in another version, nothing changes.)"""
    from ray._private import worker

    show = getattr(worker, "print_to_stdstream", None)
    if show is None or getattr(show, "srpo_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        show({**data, "is_err": True}, ignore_prefix)

    to_stderr.srpo_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _fits(request: Resources, offer: dict[str, float]) -> bool:
    wanted = {"CPU": request.cpus, "GPU": request.gpus, "memory": request.memory}
    return all(value is None or offer.get(key, 0) >= value for key, value in wanted.items())


def task_options(request: Resources) -> dict[str, Any]:
    """Ray's options for a task with this request."""
    options: dict[str, Any] = {"num_cpus": request.cpus or 0, "num_gpus": request.gpus or 0}
    if request.memory is not None:
        options["memory"] = request.memory
    return options


class RayExecutor:
    """Each job a Ray task running its `srpo` command on some node (see the module doc)."""

    def __init__(self, registry: Registry, override: Resources) -> None:
        self.override = override
        self.env = task_env(registry)
        registry.artifact_dir.mkdir(parents=True, exist_ok=True)
        self.running: dict[ray.ObjectRef, Job] = {}

    def request(self, job: Job) -> Resources:
        """The job's request: its config's, then ``--resources``."""
        return self.override.over(job.points[0].resources)

    def submit(self, job: Job, registry_url: str) -> None:
        options = task_options(self.request(job))
        env = {**self.env, "SRPO_REGISTRY": absolute_url(registry_url)}
        self.running[_srpo_task.options(**options).remote(list(job.args), env)] = job

    def finished(self) -> list[Ended]:
        if not self.running:
            return []
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        ended = []
        for ref in ready:
            job = self.running.pop(ref)
            try:
                code, error = ray.get(ref)
            except RayTaskError as exc:  # the task's own code failed, not the srpo process
                ended.append(Ended(job, 1, _first_line(exc.cause or exc)))
            except RayError as exc:  # its worker or node died, or its result was lost
                ended.append(Ended(job, -1, _first_line(exc), lost=True))
            else:
                ended.append(Ended(job, code, error))
        return ended

    def stop(self) -> None:
        """Cancel every task: a running one interrupts its `srpo` process (SIGTERM), which
        records its runs as 'interrupted'; a queued one never starts."""
        refs = list(self.running)
        for ref in refs:
            ray.cancel(ref)
        deadline = time.monotonic() + STOP_WAIT_S
        while refs and time.monotonic() < deadline:
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)
        self.running.clear()

    @property
    def busy(self) -> int:
        return len(self.running)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@ray.remote(max_retries=0)
def _srpo_task(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """On a node: ``srpo ARGS`` in a tethered child process; (exit code, last error line)."""
    try:
        check_artifacts_visible(env, ray.util.get_node_ip_address())
    except UserError as exc:
        return 2, f"error: {exc}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "srpo_core.tethered", str(os.getpid()), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while True:  # in short waits, so that a cancellation's KeyboardInterrupt lands
            try:
                _, err = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:  # ray.cancel: the run records 'interrupted'
        proc.send_signal(signal.SIGTERM)
        proc.communicate()
        raise
    return proc.returncode, last_line(err)


class SeatingPlayer:
    """Plays cross-play seatings as Ray tasks (`crossplay.evaluate`'s ``player``): yields
    (key, seating, metrics) as seatings finish."""

    def __init__(self, registry: Registry, override: Resources) -> None:
        self.override = override
        self.env = task_env(registry)

    def __call__(
        self, todo: list[tuple[str, Seating]], setup: Setup
    ) -> Iterator[tuple[str, Seating, dict[str, Any]]]:
        request = self.override.over(seating_resources(setup.device))
        task = _seating_task.options(**task_options(request))
        refs = {task.remote(self.env, seating, setup): (key, seating) for key, seating in todo}
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    key, seating = refs[ref]
                    outcome, value = ray.get(ref)
                    if outcome == "error":
                        raise UserError(value)
                    yield key, seating, value
        finally:
            for ref in pending:
                ray.cancel(ref)


_registries: dict[tuple[str, str], Registry] = {}
"""A Ray worker's registry handles, opened once per worker process."""


@ray.remote(max_retries=SEATING_RETRIES)
def _seating_task(env: dict[str, str], seating: Seating, setup: Setup) -> tuple[str, Any]:
    """On a node: play one seating; ("ok", metrics) or ("error", the user error's line)."""
    import torch

    try:
        check_artifacts_visible(env, ray.util.get_node_ip_address())
        key = (env["SRPO_REGISTRY"], env["SRPO_ARTIFACTS"])
        if key not in _registries:
            torch.set_num_threads(1)
            os.environ["SRPO_ARTIFACTS"] = env["SRPO_ARTIFACTS"]
            _registries[key] = Registry(env["SRPO_REGISTRY"], create=False)
        return "ok", play_seating(_registries[key], seating, setup)
    except UserError as exc:
        return "error", str(exc)
