"""What the registry hands back: frozen dataclasses instead of rows, so no session ever leaks
out of it, and the converters from rows to them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import Checkpoint, CrossplayResult, Policy, Run


@dataclass(frozen=True)
class RunInfo:
    id: str
    env: str
    algo: str
    tau: float
    eps: float
    seed: int
    config: dict[str, Any]
    config_hash: str
    package_version: str
    git_commit: str | None
    status: str
    error: str | None
    tags: tuple[str, ...]
    command: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    env_steps: int
    hero_samples: int
    lease_host: str | None = None
    lease_pid: int | None = None
    heartbeat_at: datetime | None = None
    """When the training process last renewed its lease."""
    lease_expired: bool = False
    """Status 'running' but no heartbeat within the lease TTL: its trainer is gone."""

    @property
    def display_status(self) -> str:
        return "running (lease expired)" if self.lease_expired else self.status


@dataclass(frozen=True)
class CheckpointInfo:
    id: int
    run_id: str
    step: int
    sha256: str
    path: str
    size_bytes: int
    created_at: datetime


@dataclass(frozen=True)
class PolicyInfo:
    id: str
    run_id: str | None
    role: str
    env: str
    kind: str
    spec: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class DeletedRuns:
    """What `Registry.delete_runs` removed."""

    run_ids: tuple[str, ...]
    metrics: int
    checkpoints: int
    policies: int
    files_removed: tuple[str, ...]
    """Checkpoint files no remaining run refers to, removed from the artifact folder."""
    files_shared: int
    """Checkpoint files kept because another run's checkpoints have the same content."""
    files_failed: tuple[str, ...]
    """Files that could not be removed (the rows are gone all the same)."""


@dataclass(frozen=True)
class ZooMemberInfo:
    policy_ref: str
    step: int | None
    """The checkpoint step of a trained policy; None for scripted and random ones."""
    sha256: str | None
    position: int

    @property
    def label(self) -> str:
        return self.policy_ref if self.step is None else f"{self.policy_ref}@{self.step}"


@dataclass(frozen=True)
class ZooInfo:
    name: str
    env: str
    env_config: dict[str, Any]
    env_config_hash: str
    held_out: bool
    description: str
    created_at: datetime
    frozen_at: datetime | None
    manifest_sha256: str | None
    members: tuple[ZooMemberInfo, ...]

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None


@dataclass(frozen=True)
class CrossplayRecord:
    key: str
    env: str
    env_config_hash: str
    agent_ref: str
    agent_step: int | None
    agent_sha256: str | None
    seat: str
    partners: dict[str, Any]
    episodes: int
    seed: int
    metrics: dict[str, Any]
    package_version: str
    created_at: datetime
    agent_run: str | None
    """The run that trained the agent's policy (None: scripted or random)."""
    partner_runs: dict[str, str | None]
    """Seat -> the run that trained that partner's policy."""
    kind: str
    """"tp" or "cp" (`result_kind`)."""


def result_kind(agent_run: str | None, partner_runs: Iterable[str | None]) -> str:
    """A cross-play result's kind: "tp" (training performance) when a trained agent has its
    own run's policies in every other seat (at least one), else "cp" (cross-play
    performance)."""
    runs = set(partner_runs)
    return "tp" if agent_run is not None and runs == {agent_run} else "cp"


def _run_info(row: Run, *, lease_expired: bool) -> RunInfo:
    return RunInfo(
        id=row.id,
        env=row.env,
        algo=row.algo,
        tau=row.tau,
        eps=row.eps,
        seed=row.seed,
        config=row.config,
        config_hash=row.config_hash,
        package_version=row.package_version,
        git_commit=row.git_commit,
        status=row.status,
        error=row.error,
        tags=tuple(row.tags),
        command=row.command,
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_at=row.ended_at,
        env_steps=row.env_steps,
        hero_samples=row.hero_samples,
        lease_host=row.lease_host,
        lease_pid=row.lease_pid,
        heartbeat_at=row.heartbeat_at,
        lease_expired=lease_expired,
    )


def _checkpoint_info(row: Checkpoint) -> CheckpointInfo:
    return CheckpointInfo(
        id=row.id,
        run_id=row.run_id,
        step=row.step,
        sha256=row.sha256,
        path=row.path,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
    )


def _policy_info(row: Policy) -> PolicyInfo:
    return PolicyInfo(
        id=row.id,
        run_id=row.run_id,
        role=row.role,
        env=row.env,
        kind=row.kind,
        spec=row.spec,
        created_at=row.created_at,
    )


def _record(row: CrossplayResult) -> CrossplayRecord:
    return CrossplayRecord(
        key=row.key,
        env=row.env,
        env_config_hash=row.env_config_hash,
        agent_ref=row.agent_ref,
        agent_step=row.agent_step,
        agent_sha256=row.agent_sha256,
        seat=row.seat,
        partners=row.partners,
        episodes=row.episodes,
        seed=row.seed,
        metrics=row.metrics,
        package_version=row.package_version,
        created_at=row.created_at,
        agent_run=row.agent_run,
        partner_runs=row.partner_runs,
        kind=row.kind,
    )
