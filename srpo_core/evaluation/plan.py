"""Which seatings to play: with a zoo (every agent x every member x every seat, plus each
agent with its own team, TP) or a pool (every ordered pair of runs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from srpo_core.errors import UserError
from srpo_core.evaluation.seatings import EnvSeats, Seating, env_seats
from srpo_core.policy_loading import playable_seats
from srpo_core.query import RunQuery, parse_query, select_runs
from srpo_core.registry import Registry, RunInfo, ZooInfo
from srpo_core.zoo.games import config_hash, env_config_from
from srpo_core.zoo.pinning import Pinned, run_policies


def team_of(registry: Registry, run: RunInfo, seats: EnvSeats) -> dict[str, Pinned]:
    """Which of a run's (latest) policies sits in each learning seat."""
    team: dict[str, Pinned] = {}
    for pinned in run_policies(registry, run):
        info = registry.get_policy(pinned.ref)
        for seat in playable_seats(info, seats.agents):
            if seat in seats.learning:
                team.setdefault(seat, pinned)
    missing = [s for s in seats.learning if s not in team]
    if missing:
        raise UserError(f"run {run.id} has no policy for seat {missing[0]}")
    return team


def plan_zoo(
    registry: Registry, zoo: ZooInfo, agents: Sequence[RunInfo], seats: EnvSeats
) -> list[tuple[RunInfo, Seating, str]]:
    """(agent run, seating, kind) with kind "tp" (the run's own team) or "cp" (a member in
    every other learning seat)."""
    members = []
    for member in zoo.members:
        info = registry.get_policy(member.policy_ref)
        pinned = Pinned(member.policy_ref, member.step, member.sha256)
        members.append((pinned, set(playable_seats(info, seats.agents))))
    plan = []
    for run in agents:
        team = team_of(registry, run, seats)
        for seat in seats.learning:
            others = [s for s in seats.learning if s != seat]
            own = tuple((s, team[s]) for s in others)
            plan.append((run, Seating(team[seat], seat, own), "tp"))
            for pinned, playable in members:
                if all(s in playable for s in others):
                    partners = tuple((s, pinned) for s in others)
                    plan.append((run, Seating(team[seat], seat, partners), "cp"))
    if not any(kind == "cp" for _, _, kind in plan):
        raise UserError(f"no member of zoo {zoo.name!r} can partner these agents in any seat")
    return plan


def plan_pool(
    registry: Registry, runs: Sequence[RunInfo], seats: EnvSeats
) -> list[tuple[RunInfo, RunInfo, Seating]]:
    """(row run, column run, seating): the row run's policy in each seat with the column
    run's policies everywhere else."""
    teams = {run.id: team_of(registry, run, seats) for run in runs}
    plan = []
    for row in runs:
        for col in runs:
            for seat in seats.learning:
                partners = tuple((s, teams[col.id][s]) for s in seats.learning if s != seat)
                plan.append((row, col, Seating(teams[row.id][seat], seat, partners)))
    return plan


def zoo_plan(
    registry: Registry, zoo: ZooInfo, agents: RunQuery | None
) -> list[tuple[RunInfo, Seating, str]]:
    """`srpo crossplay --zoo`'s seatings (`plan_zoo`) of the agent runs `zoo_agents` finds."""
    seats = env_seats(env_config_from(zoo.env_config))
    return plan_zoo(registry, zoo, zoo_agents(registry, zoo, agents), seats)


def pool_plan(
    registry: Registry, runs: Sequence[RunInfo]
) -> tuple[dict[str, Any], list[tuple[RunInfo, RunInfo, Seating]]]:
    """The env config ``runs`` share (`common_env`) and their pool's seatings (`plan_pool`)."""
    env_values = common_env(runs)
    return env_values, plan_pool(registry, runs, env_seats(env_config_from(env_values)))


def zoo_agents(registry: Registry, zoo: ZooInfo, agents: RunQuery | None) -> list[RunInfo]:
    """The runs ``agents`` selects (every finished run by default) on the zoo's env config,
    but for the zoo's own members' runs."""
    in_zoo = {registry.get_policy(m.policy_ref).run_id for m in zoo.members}
    runs = [
        r
        for r in select_runs(registry, agents or parse_query(""), env=zoo.env)
        if r.id not in in_zoo and config_hash(r.config["env"]) == zoo.env_config_hash
    ]
    if not runs:
        raise UserError(f"no agent runs to evaluate with zoo {zoo.name!r} (check --agents)")
    return runs


def common_env(runs: Sequence[RunInfo]) -> dict[str, Any]:
    """The env config every run of ``runs`` plays (refused, one line, if two differ)."""
    first = runs[0].config["env"]
    for run in runs[1:]:
        if config_hash(run.config["env"]) != config_hash(first):
            raise UserError(f"runs {runs[0].id} and {run.id} play different env configurations")
    return first
