"""Metrics: (step, key, value) rows of a run, in long format."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select

from .leases import LeaseStore
from .models import Metric

if TYPE_CHECKING:
    import pandas as pd


class MetricStore(LeaseStore):
    """Metric methods of `Registry`; see there for the transaction rules."""

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


def _to_db_float(value: float) -> float | None:
    """NaN becomes NULL: SQLite cannot store NaN, and reads turn NULL back into NaN."""
    number = float(value)
    return None if math.isnan(number) else number
