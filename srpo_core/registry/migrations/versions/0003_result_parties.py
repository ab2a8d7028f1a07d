"""Cross-play results say what they are: the run of the agent's policy, the run of each
partner's, and the kind (tp / cp); filled in for the results already stored.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from srpo_core.canonical import canonical_json
from srpo_core.registry.info import result_kind

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("crossplay_results", sa.Column("agent_run", sa.String(12)))
    op.add_column("crossplay_results", sa.Column("partner_runs", sa.Text()))
    op.add_column("crossplay_results", sa.Column("kind", sa.String(2)))
    conn = op.get_bind()
    run_of = dict(conn.execute(sa.text("SELECT id, run_id FROM policies")).all())
    rows = conn.execute(sa.text('SELECT "key", agent_ref, partners FROM crossplay_results')).all()
    update = sa.text(
        "UPDATE crossplay_results SET agent_run = :agent_run, partner_runs = :partner_runs, "
        'kind = :kind WHERE "key" = :key'
    )
    for key, agent_ref, partners in rows:
        agent_run = run_of.get(agent_ref)
        partner_runs = {seat: run_of.get(p["ref"]) for seat, p in json.loads(partners).items()}
        kind = result_kind(agent_run, partner_runs.values())
        values = {"agent_run": agent_run, "partner_runs": canonical_json(partner_runs)}
        conn.execute(update, {**values, "kind": kind, "key": key})
