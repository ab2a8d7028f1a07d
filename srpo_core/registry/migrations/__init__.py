"""Schema versions of the registry, kept by Alembic in the database's alembic_version table.

Revisions live in versions/ and only move forward: 0001 is the baseline (the tables of srpo
before its schema was versioned), 0002 adds run leases and 64-bit seeds, 0003 the runs and
the kind (TP / CP) of each cross-play result. `Registry` reads the version on every open and
upgrades an older schema inside the transaction that holds the registry's schema lock (see
database.Database._prepare_schema).

To change the schema, edit models.py and add versions/NNNN_what.py whose down_revision is
the previous head; tests/test_registry_trust.py fails until a migrated database matches
models.py. To upgrade a registry by hand: `srpo registry upgrade [--registry URL]`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from .baseline import BASELINE, FIRST_TABLES

VERSION_TABLE = "alembic_version"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The revision this srpo creates and upgrades to."""
    return _script().get_current_head()


def is_known(revision: str) -> bool:
    """Whether this srpo has `revision` (an unknown one comes from a newer srpo)."""
    return any(script.revision == revision for script in _script().walk_revisions())


def stamped(conn: Connection) -> tuple[str, ...]:
    """The revisions recorded in the database's alembic_version table."""
    return tuple(MigrationContext.configure(conn).get_current_heads())


def is_unversioned_registry(conn: Connection, tables: set[str]) -> bool:
    """Whether `tables` (a database without alembic_version) are those of an srpo registry
    from before versioning: at least the first four, each with exactly its baseline columns."""
    if not FIRST_TABLES <= tables <= set(BASELINE.tables):
        return False
    inspector = inspect(conn)
    return all(
        {column["name"] for column in inspector.get_columns(name)}
        == set(BASELINE.tables[name].columns.keys())
        for name in tables
    )


def upgrade(conn: Connection) -> None:
    """Bring the schema to the head revision, inside `conn`'s open transaction."""
    command.upgrade(_config(conn), "head")
