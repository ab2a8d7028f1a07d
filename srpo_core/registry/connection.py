"""Opening a registry database: the URL, the SQLAlchemy engine, SQLite's locking and WAL mode,
and database errors turned into one-line `RegistryError`s."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, InterfaceError, OperationalError

from srpo_core.redact import redact

from .errors import RegistryError, RegistryUnavailableError

# Execution option marking a transaction that only reads: on SQLite it starts with a plain
# (deferred) BEGIN, which in WAL mode never waits for writers.
_READ_ONLY = "srpo_read_only"

# The driver and the pool log what they shrug off, or what reaches the caller as an exception
# anyway (psycopg: "error ignored terminating <Pipeline>" when the server went away). With
# logging unconfigured Python would print that beside the command's one error line; an
# application that configures logging still gets it.
for _logger in ("psycopg", "sqlalchemy.pool"):
    logging.getLogger(_logger).addHandler(logging.NullHandler())


def resolve_registry_url(url: str | None = None) -> str:
    """The registry to use: `url`, else $SRPO_REGISTRY, else ./srpo.db.

    A bare filesystem path (no `://`) names a SQLite file.
    """
    chosen = url or os.environ.get("SRPO_REGISTRY") or "sqlite:///srpo.db"
    if "://" not in chosen:
        chosen = f"sqlite:///{Path(chosen).expanduser()}"
    return chosen


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
