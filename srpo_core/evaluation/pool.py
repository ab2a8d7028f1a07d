"""Cross-play pools: the matrix of every ordered pair of runs, and TP / CP per group of runs.

Entry (row run i, column run j) is the mean return over the seats of the seatings where i's
policy sits in one seat and j's policies fill every other learning seat; the diagonal is the
training performance (TP), the rest the cross-play performance (CP), as in the paper's
figures. `srpo crossplay --pool` builds it from fresh results, `srpo report` from stored ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, pstdev
from typing import TypeVar

from srpo_core.evaluation.play import Outcome
from srpo_core.evaluation.seatings import Seating
from srpo_core.intervals import bootstrap_ci
from srpo_core.registry import CrossplayRecord, Registry, RunInfo

Group = TypeVar("Group", bound=Hashable)
Row = TypeVar("Row", bound=Hashable)


@dataclass(frozen=True)
class PoolMatrix:
    runs: tuple[str, ...]
    """Row and column order: the runs that have at least one stored entry."""
    returns: dict[tuple[str, str], float]
    """(row run, column run) -> mean return over the seats played."""
    free_riding: dict[tuple[str, str], float]
    """(row run, column run) -> mean free-riding degree over the seats, where reported."""
    by_seat: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)
    """Seat -> (row run, column run) -> the mean return with the row run's policy in that
    seat: the seatings kept apart (`returns` averages them)."""


@dataclass(frozen=True)
class TpCp:
    runs: int
    """Runs of the group; its seeds, where runs repeating a seed are merged (`tp_cp`)."""
    tp: float | None
    tp_std: float | None
    cp: float | None
    cp_std: float | None
    free_riding: float | None
    """Mean free-riding degree of the group's runs with their own partners (diagonal)."""
    tp_ci: tuple[float, float] | None = None
    """95% bootstrap interval over the group's runs (seeds) of the mean TP; likewise below
    of the mean CP (each run's mean over its partners), of TP - CP per run, and of the
    free-riding degree (`intervals.bootstrap_ci`)."""
    cp_ci: tuple[float, float] | None = None
    drop_ci: tuple[float, float] | None = None
    free_riding_ci: tuple[float, float] | None = None

    @property
    def drop(self) -> float | None:
        return None if self.tp is None or self.cp is None else self.tp - self.cp


def cell_means(entries: Iterable[tuple[Row, Row, float]]) -> dict[tuple[Row, Row], float]:
    """(row run, column run, value) per seat -> the mean value per (row, column)."""
    values: dict[tuple[Row, Row], list[float]] = defaultdict(list)
    for row, col, value in entries:
        values[(row, col)].append(value)
    return {cell: fmean(v) for cell, v in values.items()}


def pair_returns(
    pairs: Sequence[tuple[RunInfo, RunInfo, Seating]], outcomes: Sequence[Outcome]
) -> dict[tuple[str, str], float]:
    """The pool matrix from a pool plan's seatings (`plan.plan_pool`) and their outcomes:
    (row run, column run) -> the mean return over the seats."""
    return cell_means(
        (row.id, col.id, outcome.metrics["return"])
        for (row, col, _), outcome in zip(pairs, outcomes, strict=True)
    )


def run_tp_cp(entries: Iterable[tuple[str, str, float]]) -> dict[str, tuple[float, float]]:
    """Per agent run, in order of first appearance: the mean return of its "tp" seatings and
    of its "cp" ones, from (run, kind, return) entries (a zoo evaluation's)."""
    kinds: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, kind, value in entries:
        kinds[run][kind].append(value)
    return {run: (fmean(k["tp"]), fmean(k["cp"])) for run, k in kinds.items()}


def tp_cp(
    returns: Mapping[tuple[str, str], float],
    group_of: Mapping[str, Group],
    free_riding: Mapping[tuple[str, str], float] | None = None,
    seed_of: Mapping[str, int] | None = None,
) -> dict[Group, TpCp]:
    """Per group of row runs: TP over their diagonal entries, CP over their entries with
    every other run of the pool (both methods pooled as partners, as in the paper);
    means and population standard deviations of the entries, and 95% bootstrap intervals
    over the runs (one value per run: its TP, its mean CP, their difference).

    With ``seed_of``, runs of a group that repeat a seed are one seed: their entries are
    averaged into one row and column, and pairs among them count as TP (a setting and
    seed train the same policy)."""
    if seed_of is not None:
        unit = {run: (group_of[run], seed_of[run]) for run in group_of}
        returns = cell_means((unit[r], unit[c], v) for (r, c), v in returns.items())
        if free_riding:
            free_riding = cell_means((unit[r], unit[c], v) for (r, c), v in free_riding.items())
        group_of = {u: u[0] for u in unit.values()}
    parts: dict[Group, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    per_run: dict[Hashable, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (row, col), value in returns.items():
        kind = "tp" if row == col else "cp"
        parts[group_of[row]][kind].append(value)
        per_run[row][kind].append(value)
        if row == col and free_riding and (row, col) in free_riding:
            parts[group_of[row]]["free"].append(free_riding[(row, col)])
    out = {}
    for group, p in parts.items():
        runs = [r for r in per_run if group_of[r] == group]
        tp_of = {r: fmean(per_run[r]["tp"]) for r in runs if per_run[r]["tp"]}
        cp_of = {r: fmean(per_run[r]["cp"]) for r in runs if per_run[r]["cp"]}
        free_of = [free_riding[(r, r)] for r in tp_of if free_riding and (r, r) in free_riding]
        out[group] = TpCp(
            runs=sum(1 for g in group_of.values() if g == group),
            tp=_mean(p["tp"]),
            tp_std=_std(p["tp"]),
            cp=_mean(p["cp"]),
            cp_std=_std(p["cp"]),
            free_riding=_mean(p["free"]),
            tp_ci=bootstrap_ci(list(tp_of.values())),
            cp_ci=bootstrap_ci(list(cp_of.values())),
            drop_ci=bootstrap_ci([tp_of[r] - cp_of[r] for r in tp_of if r in cp_of]),
            free_riding_ci=bootstrap_ci(free_of),
        )
    return out


def stored_pool(
    registry: Registry,
    runs: Sequence[RunInfo],
    records: Sequence[CrossplayRecord],
) -> PoolMatrix:
    """The pool matrix of ``runs`` from stored results (of one env config and protocol).

    A record counts only where the agent and every partner are the latest checkpoints of
    runs in the pool (the policies `srpo crossplay --pool` seats), checked by step and
    sha256, so results with earlier checkpoints (zoo members pinned with --at) stay out.
    """
    latest = {}
    for run in runs:
        checkpoint = registry.latest_checkpoint(run.id)
        if checkpoint is not None:
            latest[run.id] = (checkpoint.step, checkpoint.sha256)

    def owner(run: str | None, step: int | None, sha: str | None) -> str | None:
        return run if run in latest and latest[run] == (step, sha) else None

    returns, free = [], []
    seated: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for record in records:
        row = owner(record.agent_run, record.agent_step, record.agent_sha256)
        partner_runs = record.partner_runs
        cols = {owner(partner_runs[s], p["step"], p["sha256"]) for s, p in record.partners.items()}
        if row is None or len(cols) != 1 or None in cols:
            continue
        col = cols.pop()
        returns.append((row, col, float(record.metrics["return"])))
        seated[record.seat].append(returns[-1])
        if record.metrics.get("free_riding") is not None:
            free.append((row, col, float(record.metrics["free_riding"])))
    cells = cell_means(returns)
    present = {run for cell in cells for run in cell}
    return PoolMatrix(
        runs=tuple(run.id for run in runs if run.id in present),
        returns=cells,
        free_riding=cell_means(free),
        by_seat={seat: cell_means(entries) for seat, entries in sorted(seated.items())},
    )


def _mean(values: Sequence[float]) -> float | None:
    return fmean(values) if values else None


def _std(values: Sequence[float]) -> float | None:
    return pstdev(values) if values else None
