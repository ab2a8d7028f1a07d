"""The registry's tables as srpo wrote them before its schema was versioned: revision 0001.

Frozen here (not taken from models.py, which moves on with later revisions) because the
baseline revision creates them and `is_unversioned_registry` recognises them by their
columns.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

BASELINE = MetaData()

Table(
    "runs",
    BASELINE,
    Column("id", String(12), primary_key=True),
    Column("env", String(200), nullable=False),
    Column("algo", String(100), nullable=False),
    Column("tau", Float, nullable=False),
    Column("eps", Float, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("config", Text, nullable=False),
    Column("config_hash", String(64), nullable=False, index=True),
    Column("package_version", String(100), nullable=False),
    Column("git_commit", String(100)),
    Column("status", String(20), nullable=False, index=True),
    Column("error", Text),
    Column("tags", Text, nullable=False),
    Column("command", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("env_steps", BigInteger, nullable=False),
    Column("hero_samples", BigInteger, nullable=False),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_env_algo", "env", "algo"),
)

Table(
    "metrics",
    BASELINE,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(12), ForeignKey("runs.id"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("key", String(200), nullable=False),
    Column("value", Float),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

Table(
    "checkpoints",
    BASELINE,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(12), ForeignKey("runs.id"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("path", String(500), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("run_id", "step", name="uq_checkpoints_run_step"),
)

Table(
    "policies",
    BASELINE,
    Column("id", String(300), primary_key=True),
    Column("run_id", String(12), ForeignKey("runs.id"), index=True),
    Column("role", String(100), nullable=False),
    Column("env", String(200), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

Table(
    "zoos",
    BASELINE,
    Column("name", String(100), primary_key=True),
    Column("env", String(200), nullable=False),
    Column("env_config", Text, nullable=False),
    Column("env_config_hash", String(64), nullable=False),
    Column("held_out", Boolean, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("frozen_at", DateTime),
    Column("manifest_sha256", String(64)),
)

Table(
    "zoo_members",
    BASELINE,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("zoo", String(100), ForeignKey("zoos.name"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("policy_ref", String(300), ForeignKey("policies.id"), nullable=False, index=True),
    Column("step", BigInteger),
    Column("sha256", String(64)),
    UniqueConstraint("zoo", "policy_ref", "step", name="uq_zoo_members"),
)

Table(
    "crossplay_results",
    BASELINE,
    Column("key", String(64), primary_key=True),
    Column("env", String(200), nullable=False),
    Column("env_config_hash", String(64), nullable=False),
    Column("agent_ref", String(300), nullable=False),
    Column("agent_step", BigInteger),
    Column("agent_sha256", String(64)),
    Column("seat", String(100), nullable=False),
    Column("partners", Text, nullable=False),
    Column("episodes", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("package_version", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_crossplay_agent", "agent_ref"),
)

FIRST_TABLES = frozenset({"runs", "metrics", "checkpoints", "policies"})
"""What every srpo registry has; zoos and cross-play results came later."""
