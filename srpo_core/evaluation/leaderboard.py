"""Leaderboards: agents ranked by how well they do with a zoo's held-out partners.

Computed from stored cross-play results only (never by playing), so regenerating one gives
the same numbers. Per agent run: the mean return over its (partner, seat) seatings (CP), the
interquartile mean (IQM) of those returns with a percentile-bootstrap 95% interval, its
return with its own training partners (TP) and the drop TP - CP, the normalised score (per
partner and seat, the return divided by the best return any listed agent reached there,
capped at 1, as JaxAHT and ZSC-Eval do; undefined where that best is not positive) and the
free-riding degree. Groups pool the agents of one (algorithm, tau, eps); their IQM interval
resamples whole agents (a hierarchical bootstrap), so seeds, not episodes, set its width.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from srpo_core.errors import UserError
from srpo_core.intervals import iqm
from srpo_core.registry import CrossplayRecord, Registry, ZooInfo

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


def bootstrap_iqm(groups: Sequence[Sequence[float]]) -> tuple[float, float]:
    """95% percentile interval of the IQM of all values, resampling the groups (agents, or
    single values) with replacement; a fixed seed keeps reports reproducible."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    # Sorted, so the interval depends on the values only, not on the order results came in.
    arrays = sorted((np.sort(np.asarray(g, dtype=float)) for g in groups), key=tuple)
    picks = rng.integers(0, len(arrays), size=(BOOTSTRAP_SAMPLES, len(arrays)))
    stats = [iqm(np.concatenate([arrays[i] for i in row])) for row in picks]
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class AgentRow:
    rank: int
    run: str
    algo: str
    tau: float
    eps: float
    seed: int
    step: int | None
    pairs: int
    cp: float
    cp_std: float
    cp_iqm: float
    cp_iqm_low: float
    cp_iqm_high: float
    tp: float | None
    drop: float | None
    normalised: float | None
    free_riding: float | None


@dataclass(frozen=True)
class GroupRow:
    algo: str
    tau: float
    eps: float
    agents: int
    cp: float
    cp_std: float
    cp_iqm: float
    cp_iqm_low: float
    cp_iqm_high: float
    tp: float | None
    drop: float | None
    drop_std: float | None
    normalised: float | None
    free_riding: float | None


@dataclass(frozen=True)
class Leaderboard:
    zoo: str
    manifest_sha256: str | None
    env: str
    episodes: int
    seed: int
    agents: tuple[AgentRow, ...]
    groups: tuple[GroupRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_leaderboard(registry: Registry, zoo: ZooInfo, *, episodes: int, seed: int) -> Leaderboard:
    members = {(m.policy_ref, m.step) for m in zoo.members}
    member_runs = {registry.get_policy(ref).run_id for ref, _ in members} - {None}
    results = registry.crossplay_results(
        env_config_hash=zoo.env_config_hash, episodes=episodes, seed=seed
    )
    # (run, agent step) -> seatings with members ("cp") and with the run's own team ("tp")
    cp: dict[tuple[str, int | None], list[CrossplayRecord]] = defaultdict(list)
    tp: dict[tuple[str, int | None], list[CrossplayRecord]] = defaultdict(list)
    for record in results:
        run = record.agent_run
        if run is None or run in member_runs:
            continue
        if plays_one_member(record, members):
            cp[(run, record.agent_step)].append(record)
        elif record.kind == "tp":
            tp[(run, record.agent_step)].append(record)
    latest: dict[str, int | None] = {}
    for run, step in cp:
        if run not in latest or (step or 0) > (latest[run] or 0):
            latest[run] = step
    if not latest:
        raise UserError(
            f"no stored cross-play results with zoo {zoo.name!r} for {episodes} episodes from "
            f"seed {seed}; run `srpo crossplay --zoo {zoo.name}` first"
        )
    best: dict[tuple[str, str], float] = defaultdict(lambda: -math.inf)
    for run, step in latest.items():
        for record in cp[(run, step)]:
            slot = _slot(record)
            best[slot] = max(best[slot], record.metrics["return"])

    rows = []
    for run, step in latest.items():
        info = registry.get_run(run)
        seatings = cp[(run, step)]
        returns = [r.metrics["return"] for r in seatings]
        own = [r.metrics["return"] for r in tp.get((run, step), [])]
        scores = [
            min(r.metrics["return"] / best[_slot(r)], 1.0) for r in seatings if best[_slot(r)] > 0
        ]
        free = [r.metrics["free_riding"] for r in seatings if "free_riding" in r.metrics]
        low, high = bootstrap_iqm([[x] for x in returns])
        tp_mean = _mean(own)
        rows.append(
            AgentRow(
                rank=0,
                run=run,
                algo=info.algo,
                tau=info.tau,
                eps=info.eps,
                seed=info.seed,
                step=step,
                pairs=len(returns),
                cp=_mean(returns),
                cp_std=_std(returns),
                cp_iqm=iqm(returns),
                cp_iqm_low=low,
                cp_iqm_high=high,
                tp=tp_mean,
                drop=None if tp_mean is None else tp_mean - _mean(returns),
                normalised=_mean(scores),
                free_riding=_mean(free),
            )
        )
    rows.sort(key=lambda r: (-r.cp, r.run))
    ranked = tuple(AgentRow(**{**asdict(row), "rank": i + 1}) for i, row in enumerate(rows))
    returns_of = {
        run: [r.metrics["return"] for r in cp[(run, step)]] for run, step in latest.items()
    }
    return Leaderboard(
        zoo=zoo.name,
        manifest_sha256=zoo.manifest_sha256,
        env=zoo.env,
        episodes=episodes,
        seed=seed,
        agents=ranked,
        groups=_groups(ranked, returns_of),
    )


def _groups(rows: Sequence[AgentRow], returns_of: dict[str, list[float]]) -> tuple[GroupRow, ...]:
    by_setting: dict[tuple[str, float, float], list[AgentRow]] = defaultdict(list)
    for row in rows:
        by_setting[(row.algo, row.tau, row.eps)].append(row)
    groups = []
    for (algo, tau, eps), members in sorted(by_setting.items()):
        pooled = [returns_of[r.run] for r in members]
        everything = [x for values in pooled for x in values]
        low, high = bootstrap_iqm(pooled)
        drops = [r.drop for r in members if r.drop is not None]
        groups.append(
            GroupRow(
                algo=algo,
                tau=tau,
                eps=eps,
                agents=len(members),
                cp=_mean([r.cp for r in members]),
                cp_std=_std([r.cp for r in members]),
                cp_iqm=iqm(everything),
                cp_iqm_low=low,
                cp_iqm_high=high,
                tp=_mean([r.tp for r in members if r.tp is not None]),
                drop=_mean(drops),
                drop_std=_std(drops) if drops else None,
                normalised=_mean([r.normalised for r in members if r.normalised is not None]),
                free_riding=_mean([r.free_riding for r in members if r.free_riding is not None]),
            )
        )
    groups.sort(key=lambda g: (-g.cp, g.algo, g.tau, g.eps))
    return tuple(groups)


def plays_one_member(record: CrossplayRecord, members: set[tuple[str, int | None]]) -> bool:
    """Whether every other seat of ``record`` holds one and the same zoo member (``members``:
    (policy ref, step) pairs): a result that counts as the agent's CP with the zoo."""
    partners = {(p["ref"], p["step"]) for p in record.partners.values()}
    return len(partners) == 1 and partners <= members


def _slot(record: CrossplayRecord) -> tuple[str, str]:
    partner = next(iter(record.partners.values()))
    return f"{partner['ref']}@{partner['step']}", record.seat


def _mean(values: Sequence[float]) -> Any:
    return float(np.mean(values)) if len(values) else None


def _std(values: Sequence[float]) -> float:
    return float(np.std(values)) if len(values) else 0.0


# ---- rendering ----------------------------------------------------------------------------

AGENT_COLUMNS = (
    ("rank", "#"),
    ("run", "run"),
    ("algo", "algo"),
    ("tau", "tau"),
    ("eps", "eps"),
    ("seed", "seed"),
    ("cp", "CP mean"),
    ("cp_iqm", "CP IQM"),
    ("cp_ci", "IQM 95% CI"),
    ("tp", "TP"),
    ("drop", "TP-CP"),
    ("normalised", "normalised"),
    ("free_riding", "free-riding"),
    ("pairs", "pairs"),
)
GROUP_COLUMNS = (
    ("algo", "algo"),
    ("tau", "tau"),
    ("eps", "eps"),
    ("agents", "agents"),
    ("cp", "CP mean"),
    ("cp_std", "CP std"),
    ("cp_iqm", "CP IQM"),
    ("cp_ci", "IQM 95% CI"),
    ("tp", "TP"),
    ("drop", "TP-CP"),
    ("drop_std", "TP-CP std"),
    ("normalised", "normalised"),
    ("free_riding", "free-riding"),
)


TABLE_AGENT_COLUMNS = tuple(c for c in AGENT_COLUMNS if c[0] not in ("eps", "free_riding"))
"""The terminal table drops what the group table already shows, to fit 100 columns."""


def cells(
    row: AgentRow | GroupRow,
    columns: Sequence[tuple[str, str]],
    number: Callable[[float], str] | None = None,
) -> list[str]:
    """The row's cells; ``number`` formats its floats (default: 4 decimals)."""
    values = asdict(row)
    values["cp_ci"] = f"[{_fmt(row.cp_iqm_low, number)}, {_fmt(row.cp_iqm_high, number)}]"
    return [
        values[key]
        if key == "cp_ci"
        else f"{values[key]:g}"
        if key in ("tau", "eps")
        else _fmt(values[key], number)
        for key, _ in columns
    ]


def _fmt(value: Any, number: Callable[[float], str] | None = None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if number is None else number(value)
    return str(value)


def to_markdown(board: Leaderboard, number: Callable[[float], str] | None = None) -> str:
    """The group and agent tables; ``number`` formats the floats (default: 4 decimals;
    `srpo report` passes its 3 significant digits)."""

    def table(rows: Sequence[AgentRow | GroupRow], columns: Sequence[tuple[str, str]]) -> str:
        lines = [
            "| " + " | ".join(title for _, title in columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
        ]
        lines += ["| " + " | ".join(cells(row, columns, number)) + " |" for row in rows]
        return "\n".join(lines)

    return (
        f"Zoo `{board.zoo}` ({board.env}, manifest {str(board.manifest_sha256)[:12]}), "
        f"{board.episodes} episodes per seating from seed {board.seed}.\n\n"
        f"{table(board.groups, GROUP_COLUMNS)}\n\n{table(board.agents, AGENT_COLUMNS)}\n"
    )


def to_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = [f for f in AgentRow.__dataclass_fields__]
    writer.writerow(fields)
    for row in board.agents:
        values = asdict(row)
        writer.writerow(["" if values[f] is None else values[f] for f in fields])
    return buffer.getvalue()
