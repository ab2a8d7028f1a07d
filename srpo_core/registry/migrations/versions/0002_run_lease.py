"""Run leases: who trains a run and when it last showed it was alive; 64-bit seeds.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_host", sa.String(255)))
    op.add_column("runs", sa.Column("lease_pid", sa.Integer()))
    op.add_column("runs", sa.Column("lease_token", sa.String(32)))
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime()))
    if op.get_bind().dialect.name != "sqlite":  # SQLite's INTEGER already has 64 bits
        op.alter_column("runs", "seed", type_=sa.BigInteger(), existing_nullable=False)
