"""The base of the registry's stores: a handle on one registry database and its artifact
folder, which opens it, checks (or creates, or upgrades) its schema and runs its transactions."""

from __future__ import annotations

import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from srpo_core.redact import redact

from . import migrations
from .artifacts import ArtifactStore
from .connection import (
    _READ_ONLY,
    _check_sqlite_file,
    _db_error,
    _open_engine,
    _parse_url,
    _reason,
    _sqlite_file,
    _use_wal,
    resolve_registry_url,
)
from .errors import RegistryError, RegistryUnavailableError
from .models import Run

# pg_advisory_xact_lock key ("SRPO") serialising schema checks, creation and upgrades.
_SCHEMA_LOCK = 0x5352504F
T = TypeVar("T")


class Database:
    """One registry handle's database, artifact folder and settings; every store of
    `Registry` builds on it (see there for the transaction rules and the timing)."""

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
