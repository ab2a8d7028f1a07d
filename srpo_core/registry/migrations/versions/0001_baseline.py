"""Baseline: the tables of srpo before its schema was versioned.

Creates those a database lacks, so an empty database, a registry from before versioning
and one from before zoos and cross-play results all end here.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

from srpo_core.registry.migrations.baseline import BASELINE

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    BASELINE.create_all(op.get_bind(), checkfirst=True)
