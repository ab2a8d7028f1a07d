"""Registry rows of cached cross-play results (mixed into `Registry`).

Only rows live here: how results are keyed is decided by `srpo_core.evaluation.seatings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from .database import Database
from .info import CrossplayRecord, _record, result_kind
from .models import CrossplayResult, Policy, utcnow
from .provenance import package_version


class ResultStore(Database):
    """Cross-play result methods of `Registry`; see there for the transaction rules."""

    def crossplay_result(self, key: str) -> CrossplayRecord | None:
        with self._tx(write=False) as session:
            row = session.get(CrossplayResult, key)
            return None if row is None else _record(row)

    def save_crossplay_result(self, record: Mapping[str, Any]) -> None:
        """Store (or, recomputed, replace) one result; fields as in `CrossplayRecord`, but for
        what the result is (the runs of its policies, its kind), which is found here."""
        refs = [record["agent_ref"], *(p["ref"] for p in record["partners"].values())]
        with self._tx(write=True) as session:
            stmt = select(Policy.id, Policy.run_id).where(Policy.id.in_(refs))
            run_of: dict[str, str | None] = dict(session.execute(stmt).all())
            row = session.get(CrossplayResult, record["key"])
            if row is None:
                row = CrossplayResult(key=record["key"])
                session.add(row)
            for field in (
                "env",
                "env_config_hash",
                "agent_ref",
                "agent_step",
                "agent_sha256",
                "seat",
                "partners",
                "episodes",
                "seed",
                "metrics",
            ):
                setattr(row, field, record[field])
            row.agent_run = run_of.get(record["agent_ref"])
            row.partner_runs = {s: run_of.get(p["ref"]) for s, p in record["partners"].items()}
            row.kind = result_kind(row.agent_run, row.partner_runs.values())
            row.package_version = package_version()
            row.created_at = utcnow()

    def crossplay_results(
        self, *, env_config_hash: str, episodes: int, seed: int
    ) -> list[CrossplayRecord]:
        """Every stored result for one env configuration and evaluation protocol."""
        stmt = (
            select(CrossplayResult)
            .where(
                CrossplayResult.env_config_hash == env_config_hash,
                CrossplayResult.episodes == episodes,
                CrossplayResult.seed == seed,
            )
            .order_by(CrossplayResult.agent_ref, CrossplayResult.seat, CrossplayResult.key)
        )
        with self._tx(write=False) as session:
            return [_record(row) for row in session.scalars(stmt)]
