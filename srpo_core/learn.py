"""The run loop, in the shape of Stable-Baselines3's ``learn()``: collect and update
(`Members.iterate`), log, checkpoint, until the budget is spent. What it counts, when it
logs or saves and where rows go are small objects of their own: `Budget`, `Cadence`,
`Recorder`. Members share the budget and every cadence; each is logged, evaluated,
checkpointed and reported as its own run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from srpo_core import checkpoints
from srpo_core.algos.base import Iteration, prefixed
from srpo_core.config import Config
from srpo_core.errors import UserError
from srpo_core.live_logs import LiveLog, open_live_logs
from srpo_core.registry import Registry
from srpo_core.seeding import sub_seed

FLUSH_SECONDS = 30.0
"""Metric rows and progress reach the registry at least this often, between checkpoints."""


@dataclass(frozen=True)
class Progress:
    run_id: str
    env_steps: int
    hero_samples: int
    budget: int
    """The budget in the unit of ``Config.algo.budget``."""
    done: int
    """Progress in that unit."""
    sps: float
    eval_return: float | None


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    status: str
    env_steps: int
    hero_samples: int
    metrics: dict[str, float]


class Members(Protocol):
    """What the loop drives: a population's members side by side (a solo run is a
    population of one; `train.Solo` adapts a trainer of its own)."""

    device: torch.device

    def iterate(self) -> list[Iteration]: ...

    def set_lr_fraction(self, fraction: float) -> None: ...

    def evaluate(self, episodes: int, seeds: list[int], final: bool = False) -> list[dict]: ...

    def policy_states(self) -> list[dict[str, dict[str, torch.Tensor]]]: ...

    def state_dict(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class Budget:
    """The progress counters (env steps, hero samples, iterations, as checkpoints store
    them) and the budget: ``steps`` in the unit ``key`` (``config.algo.budget``)."""

    def __init__(self, counters: dict[str, int], key: str, steps: int) -> None:
        self.counters, self.key, self.steps = counters, key, steps

    @property
    def env_steps(self) -> int:
        return self.counters["env_steps"]

    @property
    def done(self) -> int:
        """Progress in the budget's unit."""
        return self.counters[self.key]

    @property
    def spent(self) -> bool:
        return self.done >= self.steps

    @property
    def fraction_left(self) -> float:
        """What linear learning-rate annealing multiplies the rates by."""
        return 1 - self.done / self.steps

    def add(self, iteration: Iteration) -> None:
        self.counters["env_steps"] += iteration.env_steps
        self.counters["hero_samples"] += iteration.hero_samples
        self.counters["iterations"] += 1


class Cadence:
    """Due every ``every`` env steps (0 or None: never), counted from the start of the
    run, so a resumed run keeps an uninterrupted one's schedule."""

    def __init__(self, every: int | None, env_steps: int) -> None:
        self.every = every or 0
        self.next = (env_steps // every + 1) * every if every else None

    def due(self, env_steps: int) -> bool:
        return self.next is not None and env_steps >= self.next

    def passed(self, env_steps: int) -> None:
        """Skip to the first point after ``env_steps``."""
        while self.next is not None and self.next <= env_steps:
            self.next += self.every


class Recorder:
    """Where every member's rows go: kept until flushed to the registry with the runs'
    progress (which renews their leases, a heartbeat), written to the live logs, and
    reported to ``on_progress``."""

    def __init__(
        self,
        registry: Registry,
        run_ids: list[str],
        configs: list[Config],
        budget: Budget,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.registry, self.run_ids, self.configs, self.budget = registry, run_ids, configs, budget
        self.on_progress = on_progress
        self.pending: list[list[tuple[int, dict[str, float]]]] = [[] for _ in run_ids]
        self.last: list[dict[str, float]] = [{} for _ in run_ids]
        """Each member's latest row: what its `TrainResult` reports."""
        self.eval_returns: list[float | None] = [None for _ in run_ids]
        self.logs: list[LiveLog] = []
        self.last_flush = time.monotonic()
        # Every flush renews the leases, so it happens at least once per heartbeat interval.
        self.flush_every = min(FLUSH_SECONDS, registry.heartbeat_s)
        self.window_start, self.window_steps = time.perf_counter(), budget.env_steps

    def open_logs(self) -> None:
        self.logs = open_live_logs(self.configs, self.run_ids)

    def close(self) -> None:
        for log in self.logs:
            log.close()

    def speed(self) -> float:
        """Env steps per second since the last call (or the start)."""
        now, steps = time.perf_counter(), self.budget.env_steps
        sps = (steps - self.window_steps) / max(now - self.window_start, 1e-9)
        self.window_start, self.window_steps = now, steps
        return sps

    def record(self, rows: list[dict[str, float]]) -> None:
        """One row per member at the current env step."""
        step = self.budget.env_steps
        for k, (pending, row) in enumerate(zip(self.pending, rows, strict=True)):
            pending.append((step, row))
            self.eval_returns[k] = row.get("eval/return")
            for log in self.logs:
                log.write(k, step, row)
        self.last = rows

    def flush(self) -> None:
        counters = self.budget.counters
        for run_id, rows in zip(self.run_ids, self.pending, strict=True):
            self.registry.log_metrics(run_id, rows)
            self.registry.update_progress(
                run_id, env_steps=counters["env_steps"], hero_samples=counters["hero_samples"]
            )
        for rows in self.pending:
            rows.clear()
        for log in self.logs:
            log.flush()
        self.last_flush = time.monotonic()

    @property
    def heartbeat_due(self) -> bool:
        return time.monotonic() - self.last_flush > self.flush_every

    def report(self, sps: float) -> None:
        if not self.on_progress:
            return
        budget = self.budget
        for run_id, eval_return in zip(self.run_ids, self.eval_returns, strict=True):
            self.on_progress(
                Progress(
                    run_id=run_id,
                    env_steps=budget.env_steps,
                    hero_samples=budget.counters["hero_samples"],
                    budget=budget.steps,
                    done=budget.done,
                    sps=sps,
                    eval_return=eval_return,
                )
            )


def learn(
    run_ids: list[str],
    configs: list[Config],
    members: Members,
    registry: Registry,
    counters: dict[str, int],
    on_progress: Callable[[Progress], None] | None,
) -> list[TrainResult]:
    """Train every member to the budget, from ``counters`` (zero, or a checkpoint's)."""
    run, algo, ppo = configs[0].run, configs[0].algo, configs[0].ppo
    budget = Budget(counters, algo.budget, run.steps)
    saves = Cadence(run.checkpoint_cadence, budget.env_steps)
    recorder = Recorder(registry, run_ids, configs, budget, on_progress)
    for run_id in run_ids:
        registry.acquire_lease(run_id)  # refused while another process trains the run

    def save() -> None:
        payloads = [
            checkpoints.to_bytes(policies, state, counters)
            for policies, state in zip(members.policy_states(), members.state_dict(), strict=True)
        ]
        # Metric rows first: a stored checkpoint implies its rows are stored too.
        registry.retrying(recorder.flush)
        for run_id, payload in zip(run_ids, payloads, strict=True):
            registry.retrying(
                lambda: registry.save_checkpoint(run_id, budget.env_steps, payload)  # noqa: B023
            )

    try:
        recorder.open_logs()
        recorder.report(0.0)  # where the runs start (or resume), before their first iteration
        while not budget.spent:
            if ppo.anneal_lr:
                members.set_lr_fraction(budget.fraction_left)
            iterations = members.iterate()
            budget.add(iterations[0])
            if budget.counters["iterations"] % run.log_every == 0 or budget.spent:
                sps = recorder.speed()
                recorder.record(_rows(iterations, members, configs, budget, sps))
                recorder.report(sps)
            if budget.spent or saves.due(budget.env_steps):
                save()
                saves.passed(budget.env_steps)
            elif recorder.heartbeat_due:
                # Visible progress and a heartbeat; rows after the last checkpoint redo on
                # resume.
                registry.retrying(recorder.flush)
        for run_id in run_ids:
            registry.retrying(lambda: registry.set_status(run_id, "finished"))  # noqa: B023
    except KeyboardInterrupt:
        _end(registry, run_ids, "interrupted", "interrupted by the user or a signal")
        raise
    except UserError as exc:
        _end(registry, run_ids, "failed", str(exc))
        raise
    except Exception as exc:
        _end(registry, run_ids, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        recorder.close()
        members.close()
    return [
        TrainResult(
            run_id=run_id,
            status="finished",
            env_steps=budget.env_steps,
            hero_samples=counters["hero_samples"],
            metrics=row,
        )
        for run_id, row in zip(run_ids, recorder.last, strict=True)
    ]


def _rows(
    iterations: list[Iteration],
    members: Members,
    configs: list[Config],
    budget: Budget,
    sps: float,
) -> list[dict[str, float]]:
    """Each member's metric row: its iteration's metrics, the counters and speed, and
    (``run.eval_episodes`` > 0) an evaluation from a seed of its own for this step."""
    rows = [dict(it.metrics) for it in iterations]
    for row in rows:
        row["hero_samples"] = budget.counters["hero_samples"]
        row["perf/sps"] = sps
    episodes = configs[0].run.eval_episodes
    if episodes:
        seeds = [sub_seed(config.run.seed, f"eval/{budget.env_steps}") for config in configs]
        scores = members.evaluate(episodes, seeds, final=budget.spent)
        for row, score in zip(rows, scores, strict=True):
            row |= prefixed("eval/", score)
    return rows


def _end(registry: Registry, run_ids: list[str], status: str, error: str) -> None:
    """Best effort: if the registry itself failed, or another process took a run over
    (its lease check refuses), the status stays as it is. An interrupt can land inside a
    registry write and leave its connection unusable or its lock held, so a failed write
    is tried twice more from fresh connections."""
    for run_id in run_ids:
        for attempt in range(3):
            if attempt:
                registry.close()  # the pool's connections go; new ones open on demand
                time.sleep(0.5 * attempt)
            try:
                registry.set_status(run_id, status, error=error)
                break
            except UserError:
                pass
