"""The experiment registry: runs, metrics, checkpoints and policies in one SQL database.

SQLite by default (a `srpo.db` file beside a `srpo-artifacts/` folder, like MLflow's mlflow.db),
any SQLAlchemy URL otherwise (PostgreSQL: postgresql+psycopg://). Several training processes
write to one SQLite file at once, so a registry file runs in WAL mode and every write
transaction takes the write lock up front.

The schema is versioned (see `migrations`); opening a registry checks the version, and only
an opening that may write creates or upgrades it. A database srpo did not make is refused
and left as it is. A run being trained carries a lease (see `Registry.acquire_lease`), so a
second process cannot train it at the same time and a dead trainer is recognised.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
import math
import os
import re
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    String,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session

from srpo_core.errors import UserError
from srpo_core.redact import redact

from . import migrations
from .artifacts import ArtifactStore, sha256_hex
from .models import (
    Checkpoint,
    CrossplayResult,
    Metric,
    Policy,
    Run,
    ZooMember,
    canonical_json,
    utcnow,
)
from .zoo_store import ZooStore

if TYPE_CHECKING:
    import pandas as pd

RUN_STATUSES = ("running", "finished", "failed", "interrupted", "imported")
"""`imported`: a run that arrived with a zoo archive (its checkpoints, no training here)."""
POLICY_KINDS = ("trained", "scripted", "random", "untuned")
_ENDED_STATUSES = frozenset({"finished", "failed", "interrupted"})
_MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-f]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_TAG_LENGTH = 200
# Execution option marking a transaction that only reads: on SQLite it starts with a plain
# (deferred) BEGIN, which in WAL mode never waits for writers.
_READ_ONLY = "srpo_read_only"
# pg_advisory_xact_lock key ("SRPO") serialising schema checks, creation and upgrades.
_SCHEMA_LOCK = 0x5352504F
_SEED_RANGE = range(-(2**63), 2**63)
T = TypeVar("T")

# The driver and the pool log what they shrug off, or what reaches the caller as an exception
# anyway (psycopg: "error ignored terminating <Pipeline>" when the server went away). With
# logging unconfigured Python would print that beside the command's one error line; an
# application that configures logging still gets it.
for _logger in ("psycopg", "sqlalchemy.pool"):
    logging.getLogger(_logger).addHandler(logging.NullHandler())


class RegistryError(UserError):
    """The registry cannot be opened or cannot do what was asked."""


class NotFoundError(RegistryError):
    """No run or policy matches what the user typed."""


class CorruptArtifactError(RegistryError):
    """A stored file's bytes no longer match the sha256 recorded when it was saved."""


class MissingArtifactError(RegistryError):
    """A file the registry points to is gone from the artifact folder."""


class RegistryUnavailableError(RegistryError):
    """The database could not be reached or stayed locked: worth trying again later."""


class LeaseLostError(RegistryError):
    """Another process took over the run this handle was training (its lease expired)."""


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


def resolve_registry_url(url: str | None = None) -> str:
    """The registry to use: `url`, else $SRPO_REGISTRY, else ./srpo.db.

    A bare filesystem path (no `://`) names a SQLite file.
    """
    chosen = url or os.environ.get("SRPO_REGISTRY") or "sqlite:///srpo.db"
    if "://" not in chosen:
        chosen = f"sqlite:///{Path(chosen).expanduser()}"
    return chosen


class Registry(ZooStore):
    """Handle on one registry database and its artifact folder.

    Every method is one short transaction and returns frozen dataclasses, so callers never hold
    a session or a lock. Open one Registry per process. A database error inside a method
    becomes a one-line `RegistryError` (`RegistryUnavailableError` when the database is
    unreachable or locked, which `retrying` tries again).

    Timing comes from the environment, in seconds: $SRPO_DB_TIMEOUT_S (default 30) how long a
    SQLite writer waits for the lock or a PostgreSQL connection attempt lasts;
    $SRPO_DB_RETRY_S (60) how long `retrying` keeps trying; $SRPO_LEASE_TTL_S (120) how long
    a run's lease lasts without a heartbeat (a trainer renews it every quarter of that).
    """

    def __init__(
        self, url: str | None = None, *, create: bool = True, upgrade: bool | None = None
    ) -> None:
        """Open the registry at `url` (see `resolve_registry_url`).

        `create=False` (commands that use an existing registry) refuses a missing SQLite
        file or an empty database instead of making a new registry. `upgrade` (default:
        `create`) migrates an older schema to this version; without it an older registry is
        refused and the database is left exactly as it is, journal mode included.
        """
        self.url = resolve_registry_url(url)
        self._shown = redact(self.url)
        self.db_timeout_s = _seconds("SRPO_DB_TIMEOUT_S", 30.0)
        self.retry_s = _seconds("SRPO_DB_RETRY_S", 60.0)
        self.lease_ttl_s = _seconds("SRPO_LEASE_TTL_S", 120.0)
        self.heartbeat_s = self.lease_ttl_s / 4
        self._lease_token = uuid.uuid4().hex
        self._held: set[str] = set()
        """Runs this handle holds the lease of: its writes to them renew and check it."""
        parsed = _parse_url(self.url, self._shown)
        db_file = _sqlite_file(parsed, self._shown)
        if db_file is None:
            self.artifact_dir = Path(os.environ.get("SRPO_ARTIFACTS") or "srpo-artifacts")
        else:
            _check_sqlite_file(db_file, create=create)
            self.artifact_dir = db_file.parent / "srpo-artifacts"
        self.artifact_dir = self.artifact_dir.expanduser().resolve()
        self._artifacts = ArtifactStore(self.artifact_dir)
        self._engine = _open_engine(parsed, self._shown, self.db_timeout_s)
        try:
            self._prepare_schema(create=create, upgrade=create if upgrade is None else upgrade)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def shown(self) -> str:
        """The URL as messages show it: its password masked."""
        return self._shown

    def _prepare_schema(self, *, create: bool, upgrade: bool) -> None:
        """Check the schema version; create or upgrade it where allowed, under a lock.

        The check and any change are one transaction that holds the schema lock: on SQLite
        BEGIN IMMEDIATE's write lock, on PostgreSQL an advisory lock (DDL there does not wait
        for concurrent DDL, so two processes creating tables at once would collide).
        """
        writing = create or upgrade
        dialect = self._engine.dialect.name
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: not writing})
                with conn.begin():
                    if writing and dialect == "postgresql":
                        conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                    self._check_schema(conn, create=create, upgrade=upgrade)
            if writing and dialect == "sqlite":
                _use_wal(self._engine)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise RegistryError(f"cannot open registry {self._shown}: {_reason(exc)}") from None

    def _check_schema(self, conn: Connection, *, create: bool, upgrade: bool) -> None:
        tables = set(inspect(conn).get_table_names())
        revision = self._schema_revision(conn, tables)
        head = migrations.head()
        if revision == head:
            return
        if not tables and not create:
            raise RegistryError(f"{self._shown} is not an srpo registry (it has no tables)")
        if tables and not upgrade:
            version = f"schema version {revision}" if revision else "an unversioned schema"
            raise RegistryError(
                f"registry {self._shown} has {version}, older than this srpo's ({head}), and "
                "this command does not change it: upgrade it with `srpo registry upgrade` "
                "or any command that creates runs"
            )
        migrations.upgrade(conn)

    def _schema_revision(self, conn: Connection, tables: set[str]) -> str | None:
        """The recorded schema revision; None for an empty database or a registry from
        before versioning. Refuses a database that is not an srpo registry or is newer."""
        if migrations.VERSION_TABLE in tables:
            revisions = migrations.stamped(conn)
            if Run.__tablename__ not in tables or len(revisions) != 1:
                raise self._foreign(tables)
            revision = revisions[0]
            if not migrations.is_known(revision):
                raise RegistryError(
                    f"registry {self._shown} has schema version {revision}, newer than this "
                    f"srpo supports ({migrations.head()}): upgrade srpo"
                )
            return revision
        if tables and not migrations.is_unversioned_registry(conn, tables):
            raise self._foreign(tables)
        return None

    def _foreign(self, tables: set[str]) -> RegistryError:
        names = sorted(tables)
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return RegistryError(
            f"{self._shown} is not an srpo registry (it has other tables: {listed}); "
            "srpo leaves it as it is"
        )

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Session]:
        """One transaction, committed on success and rolled back on error."""
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                session.connection(execution_options={_READ_ONLY: not write})
                yield session
        except (SQLAlchemyError, OverflowError) as exc:
            raise _db_error(self._shown, exc) from None

    def retrying(self, action: Callable[[], T]) -> T:
        """`action()`, tried again with backoff while the registry is unreachable or locked,
        for up to `retry_s` seconds; then its last RegistryUnavailableError."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.25
        while True:
            try:
                return action()
            except RegistryUnavailableError as exc:
                wait = min(delay, deadline - time.monotonic())
                if wait <= 0:
                    raise RegistryUnavailableError(
                        f"{exc} (gave up after {self.retry_s:g} s of retries)"
                    ) from None
                time.sleep(wait)
                delay = min(2 * delay, 5.0)

    def _run_row(self, session: Session, run_id: str, *, lock: bool = False) -> Run:
        row = session.get(Run, run_id, with_for_update=lock)
        if row is None:
            raise NotFoundError(f"no run {run_id!r} in {self._shown}")
        return row

    def _run_info(self, row: Run) -> RunInfo:
        return _run_info(row, lease_expired=row.status == "running" and not self._live(row))

    # ---- leases -----------------------------------------------------------------------------

    def acquire_lease(self, run_id: str) -> None:
        """Make this handle the trainer of `run_id`, in one compare-and-set transaction.

        Refused while another process holds a live lease on it (status 'running' and a
        heartbeat within the lease TTL). From then on every write of this handle to the run
        renews the lease, and fails with LeaseLostError if another process took it over.
        """
        with self._tx(write=True) as session:
            self._claim(self._run_row(session, run_id, lock=True))
        self._held.add(run_id)

    def _claim(self, row: Run) -> None:
        if row.lease_token != self._lease_token and self._live(row):
            assert row.heartbeat_at is not None
            age = (utcnow() - row.heartbeat_at).total_seconds()
            raise RegistryError(
                f"run {row.id} is still training (pid {row.lease_pid} on host "
                f"{row.lease_host}, heartbeat {age:.0f}s ago); stop that process, or resume "
                f"once its lease expires ({self.lease_ttl_s:g}s without a heartbeat)"
            )
        row.lease_host = socket.gethostname()
        row.lease_pid = os.getpid()
        row.lease_token = self._lease_token
        row.heartbeat_at = utcnow()

    def _live(self, row: Run) -> bool:
        """Whether a process is training the run: status 'running', a heartbeat within the
        lease TTL, and, when that process ran on this host, the process still there (so a
        run whose trainer was killed resumes at once)."""
        if row.status != "running" or row.lease_token is None or row.heartbeat_at is None:
            return False
        if row.lease_host == socket.gethostname() and not _pid_alive(row.lease_pid):
            return False
        return (utcnow() - row.heartbeat_at).total_seconds() < self.lease_ttl_s

    def _held_run(self, session: Session, run_id: str) -> Run:
        """The run's row for a write; if this handle holds its lease, checked and renewed."""
        row = self._run_row(session, run_id, lock=True)
        if run_id in self._held:
            if row.lease_token != self._lease_token:
                raise LeaseLostError(
                    f"run {run_id} was taken over by pid {row.lease_pid} on host "
                    f"{row.lease_host}: this process sent no heartbeat for over "
                    f"{self.lease_ttl_s:g}s, so its lease expired; it stops training the run"
                )
            row.heartbeat_at = utcnow()
        return row

    # ---- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        env: str,
        algo: str,
        tau: float,
        eps: float,
        seed: int,
        config: dict[str, Any],
        tags: Sequence[str] = (),
        command: str = "",
    ) -> str:
        """Record a new 'running' run with what is needed to reproduce it; returns its id.

        This handle holds the new run's lease (see `acquire_lease`)."""
        if int(seed) not in _SEED_RANGE:
            raise RegistryError(
                f"seed {seed} does not fit the registry: seeds are 64-bit signed integers"
            )
        now = utcnow()
        run = Run(
            id=uuid.uuid4().hex[:12],
            env=env,
            algo=algo,
            tau=float(tau),
            eps=float(eps),
            seed=int(seed),
            config=config,
            config_hash=sha256_hex(canonical_json(config).encode()),
            package_version=package_version(),
            git_commit=_git_commit(),
            status="running",
            error=None,
            tags=[redact(tag) for tag in tags],
            command=redact(command),
            created_at=now,
            updated_at=now,
            ended_at=None,
            env_steps=0,
            hero_samples=0,
        )
        self._claim(run)
        with self._tx(write=True) as session:
            session.add(run)
        self._held.add(run.id)
        return run.id

    def set_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Move a run to `status`; ending statuses stamp ended_at (and end this handle's
        lease), 'running' (resume) clears it."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {RUN_STATUSES}")
        now = utcnow()
        with self._tx(write=True) as session:
            run = self._held_run(session, run_id)
            run.status = status
            run.error = None if error is None else redact(error)
            run.updated_at = now
            run.ended_at = now if status in _ENDED_STATUSES else None
        if status in _ENDED_STATUSES:
            self._held.discard(run_id)

    def update_progress(self, run_id: str, *, env_steps: int, hero_samples: int) -> None:
        """Store the progress counters shown by `runs list` while a run trains (and renew
        the lease: a trainer calls this at least every `heartbeat_s`)."""
        with self._tx(write=True) as session:
            run = self._held_run(session, run_id)
            run.env_steps = int(env_steps)
            run.hero_samples = int(hero_samples)
            run.updated_at = utcnow()

    def get_run(self, run_id_or_prefix: str) -> RunInfo:
        """The run with this id, or the only run whose id starts with it (≥ 4 characters)."""
        with self._tx(write=False) as session:
            return self._run_info(self._find_run(session, run_id_or_prefix))

    def list_runs(
        self,
        *,
        env: str | None = None,
        algo: str | None = None,
        status: str | None = None,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs newest first, keeping those that match every filter given (all of `tags`)."""
        if status is not None and status not in RUN_STATUSES:
            raise RegistryError(f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}")
        if limit is not None and limit < 0:
            raise RegistryError(f"a limit of {limit} runs makes no sense; give 0 or more")
        stmt = select(Run).order_by(Run.created_at.desc(), Run.id.desc())
        if env is not None:
            stmt = stmt.where(Run.env == env)
        if algo is not None:
            stmt = stmt.where(Run.algo == algo)
        if status is not None:
            stmt = stmt.where(Run.status == status)
        wanted = set(tags or ())
        if limit is not None and not wanted:
            stmt = stmt.limit(limit)
        with self._tx(write=False) as session:
            # Tags are a JSON list, matched here so the query stays portable across databases.
            infos = (self._run_info(r) for r in session.scalars(stmt) if wanted.issubset(r.tags))
            return list(itertools.islice(infos, limit))

    def tag_run(
        self, run_id_or_prefix: str, tags: Sequence[str], *, remove: bool = False
    ) -> RunInfo:
        """Add `tags` to a run (those it has already are kept once), or with `remove` take
        them off (each must be there), in one transaction; returns the run after it.

        A tag is a non-empty single line of at most 200 characters; credentials in it are
        masked, as when a run is created."""
        wanted = [redact(_check_tag(tag)) for tag in tags]
        if not wanted:
            raise RegistryError("give at least one tag")
        with self._tx(write=True) as session:
            row = self._find_run(session, run_id_or_prefix, lock=True)
            current = list(row.tags)
            if remove:
                missing = [tag for tag in dict.fromkeys(wanted) if tag not in current]
                if missing:
                    listed = ", ".join(repr(tag) for tag in missing)
                    raise RegistryError(f"run {row.id} has no tag {listed}; nothing changed")
                row.tags = [tag for tag in current if tag not in wanted]
            else:
                row.tags = list(dict.fromkeys([*current, *wanted]))
            row.updated_at = utcnow()
            session.flush()
            return self._run_info(row)

    def check_delete_runs(self, runs: Sequence[str]) -> list[RunInfo]:
        """The runs `delete_runs` would delete (ids or unique prefixes, each once), or the
        RegistryError it would raise; changes nothing."""
        with self._tx(write=False) as session:
            return [self._run_info(row) for row in self._deletable_runs(session, runs)]

    def delete_runs(self, runs: Sequence[str]) -> DeletedRuns:
        """Delete runs (ids or unique prefixes) with their metrics, checkpoint rows and
        policies, all in one transaction; any run that cannot go stops them all (see
        `_deletable_runs`). After the commit, checkpoint files no remaining checkpoint row
        refers to are removed from the artifact folder (files are content-addressed, so other
        runs may share one)."""
        with self._tx(write=True) as session:
            rows = self._deletable_runs(session, runs, lock=True)
            ids = [row.id for row in rows]
            shas = set(session.scalars(select(Checkpoint.sha256).where(Checkpoint.run_id.in_(ids))))
            counts = {
                model.__tablename__: int(
                    session.execute(delete(model).where(model.run_id.in_(ids))).rowcount
                )
                for model in (Metric, Checkpoint, Policy)
            }
            session.execute(delete(Run).where(Run.id.in_(ids)))
        with self._tx(write=False) as session:
            shared = set(
                session.scalars(select(Checkpoint.sha256).where(Checkpoint.sha256.in_(shas)))
            )
        removed: list[str] = []
        failed: list[str] = []
        for sha in sorted(shas - shared):
            if not _SHA256.fullmatch(sha):  # never a path outside the artifact folder
                failed.append(sha)
                continue
            file = self.artifact_dir / ArtifactStore.relative_path(sha)
            try:
                file.unlink(missing_ok=True)
            except OSError:
                failed.append(str(file))
            else:
                removed.append(str(file))
        return DeletedRuns(
            run_ids=tuple(ids),
            metrics=counts[Metric.__tablename__],
            checkpoints=counts[Checkpoint.__tablename__],
            policies=counts[Policy.__tablename__],
            files_removed=tuple(removed),
            files_shared=len(shas & shared),
            files_failed=tuple(failed),
        )

    def _find_run(self, session: Session, run_id_or_prefix: str, *, lock: bool = False) -> Run:
        """A run by id or unique prefix of ≥ 4 characters, in `session`."""
        key = run_id_or_prefix.strip().lower()
        row = session.get(Run, key, with_for_update=lock)
        if row is None and len(key) >= _MIN_PREFIX and _HEX.fullmatch(key):
            ids = session.scalars(select(Run.id).where(Run.id.startswith(key))).all()
            if len(ids) > 1:
                raise RegistryError(
                    f"run id prefix {key!r} matches {len(ids)} runs in {self._shown}; "
                    "type more characters"
                )
            row = session.get(Run, ids[0], with_for_update=lock) if ids else None
        if row is None:
            hint = f" (give at least {_MIN_PREFIX} characters)" if len(key) < _MIN_PREFIX else ""
            raise NotFoundError(f"no run {run_id_or_prefix!r} in {self._shown}{hint}")
        return row

    def _deletable_runs(
        self, session: Session, runs: Sequence[str], *, lock: bool = False
    ) -> list[Run]:
        """The rows of `runs` (each once), refusing with one RegistryError naming every
        reason when any of them is still training (a live lease), has a policy in a zoo, or
        has a policy in stored cross-play results (as the agent or as a partner)."""
        if not runs:
            raise RegistryError("give at least one run")
        rows: dict[str, Run] = {}
        for given in runs:
            row = self._find_run(session, given, lock=lock)
            rows.setdefault(row.id, row)
        ids = list(rows)
        problems: list[str] = []
        for row in rows.values():
            if self._live(row):
                problems.append(
                    f"run {row.id} is still training (pid {row.lease_pid} on host "
                    f"{row.lease_host}): stop it first"
                )
        members = session.execute(
            select(ZooMember.zoo, Policy.run_id)
            .join(Policy, Policy.id == ZooMember.policy_ref)
            .where(Policy.run_id.in_(ids))
            .distinct()
            .order_by(Policy.run_id, ZooMember.zoo)
        ).all()
        zoos: dict[str, list[str]] = {}
        for zoo, run_id in members:
            zoos.setdefault(run_id, []).append(zoo)
        for run_id, names in zoos.items():
            listed = ", ".join(repr(name) for name in names)
            problems.append(
                f"run {run_id} has policies in zoo {listed}: delete the zoo first "
                "(`srpo zoo delete`)"
            )
        results: dict[str, int] = {}
        # Refs are `<run id>/<role>`; the hex id needs no LIKE escaping, and each candidate
        # row is confirmed on its parsed refs. The partners JSON is matched as plain text.
        near = [
            CrossplayResult.agent_ref.startswith(f"{run_id}/")
            | type_coerce(CrossplayResult.partners, String).contains(run_id)
            for run_id in ids
        ]
        for i in range(0, len(near), 100):
            for row in session.scalars(select(CrossplayResult).where(or_(*near[i : i + 100]))):
                refs = {row.agent_ref}
                refs.update(p.get("ref") for p in row.partners.values() if isinstance(p, dict))
                for run_id in {str(ref).partition("/")[0] for ref in refs if ref} & set(ids):
                    results[run_id] = results.get(run_id, 0) + 1
        for run_id in ids:
            if results.get(run_id):
                n = results[run_id]
                problems.append(
                    f"run {run_id} has policies in {n} stored cross-play result"
                    f"{'s' if n != 1 else ''}"
                )
        if problems:
            raise RegistryError("nothing deleted: " + "; ".join(problems))
        return list(rows.values())

    # ---- metrics ----------------------------------------------------------------------------

    def log_metrics(self, run_id: str, rows: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Append (step, {key: value}) rows in one transaction: one lock per batch, not per row."""
        values = [
            {"run_id": run_id, "step": int(step), "key": key, "value": _to_db_float(value)}
            for step, row in rows
            for key, value in row.items()
        ]
        if not values:
            return
        with self._tx(write=True) as session:
            self._held_run(session, run_id)
            session.execute(insert(Metric), values)

    def delete_metrics_after(self, run_id: str, step: int) -> int:
        """Drop rows logged after `step`, so a resumed run does not log those steps twice.

        Takes the run's lease in the same transaction (see `acquire_lease`): the rows of a
        run another process is training are never dropped."""
        with self._tx(write=True) as session:
            self._claim(self._run_row(session, run_id, lock=True))
            result = session.execute(
                delete(Metric).where(Metric.run_id == run_id, Metric.step > step)
            )
        self._held.add(run_id)
        return int(result.rowcount)

    def metrics(self, run_id: str, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """Long-format metrics (columns step, key, value) sorted by key then step."""
        import pandas as pd  # here, not at the top: commands that never plot start faster

        stmt = (
            select(Metric.step, Metric.key, Metric.value)
            .where(Metric.run_id == run_id)
            .order_by(Metric.key, Metric.step, Metric.id)
        )
        if keys is not None:
            stmt = stmt.where(Metric.key.in_(list(keys)))
        with self._tx(write=False) as session:
            self._run_row(session, run_id)
            rows = session.execute(stmt).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["step", "key", "value"])
        return frame.astype({"step": "int64", "value": "float64"})

    def final_metrics(self, run_id: str) -> dict[str, float]:
        """Last logged value of each key (highest step, latest write on ties)."""
        rank = (
            func.row_number()
            .over(partition_by=Metric.key, order_by=(Metric.step.desc(), Metric.id.desc()))
            .label("rank")
        )
        ranked = select(Metric.key, Metric.value, rank).where(Metric.run_id == run_id).subquery()
        stmt = select(ranked.c.key, ranked.c.value).where(ranked.c.rank == 1)
        with self._tx(write=False) as session:
            self._run_row(session, run_id)
            rows = session.execute(stmt).all()
        return {key: math.nan if value is None else value for key, value in sorted(rows)}

    # ---- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self, run_id: str, step: int, payload: bytes) -> CheckpointInfo:
        """Store checkpoint bytes for `step` (replacing an earlier one for the same step)."""
        # The file is written before the row, outside the transaction: no row ever points to
        # a missing file, and the write lock is not held during disk I/O.
        try:
            sha = self._artifacts.put(payload)
        except OSError as exc:
            raise RegistryError(
                f"cannot store a checkpoint of run {run_id} in {self.artifact_dir}: {exc}"
            ) from None
        with self._tx(write=True) as session:
            self._held_run(session, run_id)
            row = session.scalar(
                select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step)
            )
            if row is None:
                row = Checkpoint(run_id=run_id, step=int(step))
                session.add(row)
            row.sha256 = sha
            row.path = ArtifactStore.relative_path(sha)
            row.size_bytes = len(payload)
            row.created_at = utcnow()
            session.flush()
            return _checkpoint_info(row)

    def checkpoints(self, run_id: str) -> list[CheckpointInfo]:
        """A run's checkpoints by step."""
        stmt = select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step)
        with self._tx(write=False) as session:
            self._run_row(session, run_id)
            return [_checkpoint_info(row) for row in session.scalars(stmt)]

    def latest_checkpoint(self, run_id: str) -> CheckpointInfo | None:
        """The checkpoint a resumed run restarts from, if any."""
        stmt = (
            select(Checkpoint)
            .where(Checkpoint.run_id == run_id)
            .order_by(Checkpoint.step.desc())
            .limit(1)
        )
        with self._tx(write=False) as session:
            self._run_row(session, run_id)
            row = session.scalar(stmt)
            return None if row is None else _checkpoint_info(row)

    def read_checkpoint(self, info: CheckpointInfo) -> bytes:
        """The checkpoint's bytes, refused unless they still hash to the recorded sha256."""
        label = f"checkpoint {info.sha256[:12]} of run {info.run_id}"
        file = self.artifact_dir / info.path
        try:
            payload = self._artifacts.read(info.path)
        except FileNotFoundError:
            raise MissingArtifactError(f"{label} is missing: no file {file}") from None
        except OSError as exc:
            raise RegistryError(f"{label} cannot be read from {file}: {exc.strerror}") from None
        actual = sha256_hex(payload)
        if actual != info.sha256:
            raise CorruptArtifactError(
                f"{label} failed its sha256 check: {file} now hashes to {actual[:12]}"
            )
        return payload

    # ---- policies ---------------------------------------------------------------------------

    def register_policy(
        self, *, run_id: str | None, role: str, env: str, kind: str, spec: dict[str, Any]
    ) -> str:
        """Record a policy others can be evaluated with; returns its ref.

        The ref is `<run_id>/<role>` for a run's policy and `<kind>:<env>/<role>` for a
        scripted, random or untuned (a debate base model) policy without a run. Registering
        the same ref again updates it.
        """
        if kind not in POLICY_KINDS:
            raise ValueError(f"unknown policy kind {kind!r}; expected one of {POLICY_KINDS}")
        if run_id is None and kind == "trained":
            raise ValueError("a trained policy needs the run that trained it")
        ref = f"{run_id}/{role}" if run_id is not None else f"{kind}:{env}/{role}"
        with self._tx(write=True) as session:
            if run_id is not None:
                self._run_row(session, run_id)
            row = session.get(Policy, ref)
            if row is None:
                row = Policy(id=ref, created_at=utcnow())
                session.add(row)
            row.run_id = run_id
            row.role = role
            row.env = env
            row.kind = kind
            row.spec = spec
        return ref

    def get_policy(self, ref: str) -> PolicyInfo:
        """The policy `ref` names; its run part may be a unique prefix of ≥ 4 characters."""
        with self._tx(write=False) as session:
            row = session.get(Policy, ref)
            run_part, slash, role = ref.partition("/")
            prefix = run_part.lower()
            if row is None and slash and len(prefix) >= _MIN_PREFIX and _HEX.fullmatch(prefix):
                rows = session.scalars(
                    select(Policy).where(Policy.run_id.startswith(prefix), Policy.role == role)
                ).all()
                if len(rows) > 1:
                    raise RegistryError(
                        f"policy ref {ref!r} matches {len(rows)} policies in {self._shown}; "
                        "type more characters of the run id"
                    )
                row = rows[0] if rows else None
            if row is None:
                raise NotFoundError(f"no policy {ref!r} in {self._shown}")
            return _policy_info(row)

    def policies(self, run_id: str | None = None, env: str | None = None) -> list[PolicyInfo]:
        """Registered policies, oldest first, optionally of one run or one environment."""
        stmt = select(Policy).order_by(Policy.created_at, Policy.id)
        if run_id is not None:
            stmt = stmt.where(Policy.run_id == run_id)
        if env is not None:
            stmt = stmt.where(Policy.env == env)
        with self._tx(write=False) as session:
            return [_policy_info(row) for row in session.scalars(stmt)]


# ---- helpers --------------------------------------------------------------------------------


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


def _check_tag(tag: str) -> str:
    """A run tag as given, refused unless it is a non-empty single line of at most
    MAX_TAG_LENGTH characters."""
    if not tag.strip():
        raise RegistryError("a tag cannot be empty")
    if tag.splitlines() != [tag] or any(not ch.isprintable() and ch != " " for ch in tag):
        raise RegistryError(f"a tag must be a single line of printable characters, not {tag!r}")
    if len(tag) > MAX_TAG_LENGTH:
        raise RegistryError(
            f"a tag has at most {MAX_TAG_LENGTH} characters, got {len(tag)}: {tag[:40]!r}..."
        )
    return tag


def _to_db_float(value: float) -> float | None:
    """NaN becomes NULL: SQLite cannot store NaN, and reads turn NULL back into NaN."""
    number = float(value)
    return None if math.isnan(number) else number


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def _reason(exc: BaseException) -> str:
    """What the driver said, on one line with passwords masked (not SQLAlchemy's SQL dump)."""
    return redact(_one_line(getattr(exc, "orig", None) or exc))


def _db_error(shown: str, exc: BaseException) -> RegistryError:
    lost = isinstance(exc, OperationalError | InterfaceError) or getattr(
        exc, "connection_invalidated", False
    )
    kind = RegistryUnavailableError if lost else RegistryError
    return kind(f"registry {shown}: {_reason(exc)}")


def _pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this host (a reused id counts as alive)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _seconds(name: str, default: float) -> float:
    """A positive duration from the environment variable `name`."""
    text = os.environ.get(name) or str(default)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise RegistryError(f"{name} must be a positive number of seconds, not {text!r}")
    return value


def _parse_url(url: str, shown: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise RegistryError(f"invalid registry URL {shown}: {redact(_one_line(exc))}") from None


def _sqlite_file(url: URL, shown: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases. In-memory SQLite is
    refused: everything written there would be gone when the command exits."""
    if url.get_backend_name() != "sqlite":
        return None
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        raise RegistryError(
            f"registry {shown} is an in-memory SQLite database, lost when the command "
            "exits: give a file path"
        )
    return Path(url.database).expanduser()


def _check_sqlite_file(db_file: Path, *, create: bool) -> None:
    """Refuse, before SQLite touches the disk, to open what cannot be a registry file."""
    if db_file.is_dir():
        raise RegistryError(f"registry path {db_file} is a directory, not a database file")
    if not db_file.exists():
        if not create:
            raise RegistryError(f"no registry at {db_file}")
        if not db_file.parent.is_dir():
            raise RegistryError(
                f"cannot create registry {db_file}: directory {db_file.parent} does not exist"
            )


def _open_engine(url: URL, shown: str, timeout_s: float) -> Engine:
    sqlite = url.get_backend_name() == "sqlite"
    connect_args = {} if sqlite else {"connect_timeout": max(1, round(timeout_s))}
    try:
        engine = create_engine(url, pool_pre_ping=not sqlite, connect_args=connect_args)
    except (ArgumentError, ImportError, TypeError) as exc:
        raise RegistryError(f"cannot open registry {shown}: {_reason(exc)}") from None
    _refuse_forked_connections(engine)
    if sqlite:
        _configure_sqlite(engine, timeout_s)
    return engine


def _refuse_forked_connections(engine: Engine) -> None:
    """SQLAlchemy's recipe against using a pooled connection inherited through fork(): the
    child gets a fresh connection, since sharing one (SQLite's above all) corrupts state."""

    @event.listens_for(engine, "connect")
    def _remember_pid(dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _check_pid(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info["pid"] != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise DisconnectionError("connection was opened by another process")


def _configure_sqlite(engine: Engine, timeout_s: float) -> None:
    """BEGIN IMMEDIATE, so concurrent writer processes wait instead of failing.

    pysqlite starts transactions lazily (BEGIN DEFERRED before the first write), so two
    processes can both hold a read lock and then both ask to write; SQLite then fails one of
    them at once with SQLITE_BUSY, without waiting for busy_timeout. Following SQLAlchemy's
    documented recipe, pysqlite's own BEGIN is disabled and the "begin" event emits BEGIN
    IMMEDIATE, which takes the write lock first and so waits its turn. Read-only
    transactions keep a deferred BEGIN: in WAL mode readers never block on writers. The
    pragmas set here belong to the connection; nothing is written to the file.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {round(timeout_s * 1000)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _use_wal(engine: Engine) -> None:
    """Switch a registry file srpo created or recognised to WAL (a property of the file,
    kept once set), so readers never wait for writers. Outside any transaction, as SQLite
    requires; a no-op once the file is in WAL mode."""
    connection = engine.raw_connection()
    try:
        connection.cursor().execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()


def package_version() -> str:
    try:
        return importlib.metadata.version("srpo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str | None:
    """HEAD of the work tree holding srpo_core, with '-dirty' if it has uncommitted changes;
    None when git is missing or the package is not in a work tree."""
    package_dir = Path(__file__).resolve().parents[1]
    try:
        head = _git(package_dir, "rev-parse", "HEAD")
        changes = _git(package_dir, "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if changes else head


def _git(cwd: Path, *args: str) -> str:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take index.lock under a user's running git.
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    return result.stdout.strip()
