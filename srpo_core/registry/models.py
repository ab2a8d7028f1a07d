"""SQLAlchemy ORM schema of the registry: runs, metrics (long format), checkpoints, policies,
partner zoos and cached cross-play results.

This is the schema at the head revision of `migrations/`; a change here needs a new
revision there (tests/test_registry_trust.py checks that the two agree).

Only the registry's stores touch these classes; callers get frozen dataclasses instead, so no
session ever leaks out of the registry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from srpo_core.canonical import canonical_json


def utcnow() -> datetime:
    """Timezone-aware now in UTC: every timestamp of the registry is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC and reads back aware UTC, because SQLite drops the timezone."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class JSONText(TypeDecorator[Any]):
    """JSON kept as canonical text (sorted keys) so every database stores the same bytes."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_env_algo", "env", "algo"),
    )

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    env: Mapped[str] = mapped_column(String(200))
    algo: Mapped[str] = mapped_column(String(100))
    tau: Mapped[float] = mapped_column(Float)
    eps: Mapped[float] = mapped_column(Float)
    # 64 bits everywhere: SQLite's INTEGER already is, so its files keep that type.
    seed: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    config: Mapped[dict[str, Any]] = mapped_column(JSONText)
    config_hash: Mapped[str] = mapped_column(String(64), index=True)
    package_version: Mapped[str] = mapped_column(String(100))
    git_commit: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONText)
    command: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    env_steps: Mapped[int] = mapped_column(BigInteger)
    hero_samples: Mapped[int] = mapped_column(BigInteger)
    # The lease of the process training the run (see Registry.acquire_lease): who holds it,
    # the token only that process knows, and when it last showed it was alive.
    lease_host: Mapped[str | None] = mapped_column(String(255))
    lease_pid: Mapped[int | None] = mapped_column(Integer)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Metric(Base):
    __tablename__ = "metrics"
    # Serves metrics(run, keys) ordered by key, step, final_metrics and delete_metrics_after.
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(200))
    # NULL stands for NaN: SQLite cannot store NaN, and a diverged loss must still be logged.
    value: Mapped[float | None] = mapped_column(Float)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_checkpoints_run_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    step: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Policy(Base):
    __tablename__ = "policies"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    role: Mapped[str] = mapped_column(String(100))
    env: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Zoo(Base):
    """A named set of partner policies for one env configuration. ``frozen_at`` set means
    immutable: its manifest hash is fixed and membership changes are refused."""

    __tablename__ = "zoos"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    env: Mapped[str] = mapped_column(String(200))
    env_config: Mapped[dict[str, Any]] = mapped_column(JSONText)
    env_config_hash: Mapped[str] = mapped_column(String(64))
    held_out: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))


class ZooMember(Base):
    """One partner: a policy, pinned to a checkpoint (step + sha256) when it is trained."""

    __tablename__ = "zoo_members"
    __table_args__ = (UniqueConstraint("zoo", "policy_ref", "step", name="uq_zoo_members"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zoo: Mapped[str] = mapped_column(ForeignKey("zoos.name"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    policy_ref: Mapped[str] = mapped_column(ForeignKey("policies.id"), index=True)
    step: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))


class CrossplayResult(Base):
    """Mean outcome of one seating (agent in ``seat``, partners elsewhere) over ``episodes``
    evaluation episodes from ``seed``. ``key`` hashes every input, so a rerun finds it."""

    __tablename__ = "crossplay_results"
    __table_args__ = (Index("ix_crossplay_agent", "agent_ref"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    env: Mapped[str] = mapped_column(String(200))
    env_config_hash: Mapped[str] = mapped_column(String(64))
    agent_ref: Mapped[str] = mapped_column(String(300))
    agent_step: Mapped[int | None] = mapped_column(BigInteger)
    agent_sha256: Mapped[str | None] = mapped_column(String(64))
    seat: Mapped[str] = mapped_column(String(100))
    partners: Mapped[dict[str, Any]] = mapped_column(JSONText)
    """seat -> {ref, step, sha256} of every other seat's policy."""
    agent_run: Mapped[str | None] = mapped_column(String(12))
    """The run that trained the agent's policy (None: a scripted or random policy)."""
    partner_runs: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    """seat -> the run that trained that partner's policy (None: scripted or random)."""
    kind: Mapped[str | None] = mapped_column(String(2))
    """"tp" (the agent with its own run's policies in every other seat) or "cp"
    (`info.result_kind`); stored with the result, so readers need not re-derive it."""
    episodes: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONText)
    package_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
