"""Cross-play: seat an agent with partners it never trained with and measure what happens.

The unit is a *seating*: one agent policy in one seat, pinned partner policies in every other
learning seat (seats the env config freezes, such as a Tag runner, keep their policy). Each
seating is played for ``episodes`` episodes (one batch, one episode per env) from seeds that
depend only on the evaluation ``seed``, so every seating meets the same env randomness
(common random numbers) and a result never depends on which worker computed it. Results are
stored under a hash of every input (policies and their checkpoint hashes, seat, game config,
episodes, seed, protocol version), so a rerun reuses them.

Two plans: ``--zoo`` (every agent x every zoo member x every seat, plus each agent with its
own partners for the training performance, TP) and ``--pool`` (every ordered pair of runs in
a population; the diagonal is TP, the rest cross-play performance, CP).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from srpo_core.canonical import canonical_json
from srpo_core.devices import resolve_device
from srpo_core.envs import ENVS, make_env
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_seats, playable_seats
from srpo_core.registry import Registry, RunInfo, ZooInfo
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.rollout import play_episodes
from srpo_core.seeding import make_generator, sub_seed
from srpo_core.zoo.games import config_hash, env_config_from
from srpo_core.zoo.pinning import Pinned, check_pinned, run_policies

PROTOCOL = 1
"""Bumped whenever evaluation semantics change, so stale cached results are not reused."""
AUTO_WORKERS_MIN_SEATINGS = 8
"""Below this many seatings to play, worker start-up (seconds) costs more than it saves."""


@dataclass(frozen=True)
class Seating:
    agent: Pinned
    seat: str
    partners: tuple[tuple[str, Pinned], ...]
    """(seat, policy) for every other learning seat."""

    def key(self, env_hash: str, episodes: int, seed: int) -> str:
        return sha256_hex(
            canonical_json(
                {
                    "protocol": PROTOCOL,
                    "env": env_hash,
                    "episodes": episodes,
                    "seed": seed,
                    "seat": self.seat,
                    "agent": self.agent.to_dict(),
                    "partners": {s: p.to_dict() for s, p in self.partners},
                }
            ).encode()
        )

    @property
    def partner_label(self) -> str:
        labels = dict.fromkeys(p.label for _, p in self.partners)
        return "+".join(labels)


@dataclass(frozen=True)
class Setup:
    """The evaluation protocol shared by every seating of one cross-play call."""

    env_values: dict[str, Any]
    episodes: int
    seed: int
    device: str = "cpu"

    @property
    def env_hash(self) -> str:
        return config_hash(self.env_values)


Player = Callable[[list[tuple[str, Seating]], Setup], Iterator[tuple[str, Seating, dict[str, Any]]]]
"""Plays (key, seating) pairs elsewhere (on a cluster: `ray_executor.SeatingPlayer`),
yielding (key, seating, metrics) as each finishes."""


@dataclass(frozen=True)
class Outcome:
    seating: Seating
    metrics: dict[str, Any]
    reused: bool


@dataclass
class Evaluation:
    outcomes: list[Outcome] = field(default_factory=list)
    played_episodes: int = 0
    reused: int = 0


@dataclass(frozen=True)
class EnvSeats:
    agents: tuple[str, ...]
    learning: tuple[str, ...]
    """Seats that hold agents and partners (not frozen by the env config)."""


def env_seats(env_config: Any) -> EnvSeats:
    seats = env_config.SEATS  # a family without a batched env names them
    agents = seats if seats else make_env(env_config, 1, torch.device("cpu"), 0).agents
    frozen = env_config.frozen_seats()
    return EnvSeats(agents, tuple(a for a in agents if a not in frozen))


# ---- plans --------------------------------------------------------------------------------


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


# ---- evaluation ---------------------------------------------------------------------------


def evaluate(
    registry: Registry,
    seatings: Sequence[Seating],
    setup: Setup,
    *,
    workers: int = 0,
    recompute: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    player: Player | None = None,
) -> Evaluation:
    """Every distinct seating's result: stored ones are reused (unless ``recompute``), the
    others are played (by ``player``, else in ``workers`` processes; 0 = one per core when
    there are enough) and stored."""
    env_hash = setup.env_hash
    evaluation = Evaluation()
    unique = list({s.key(env_hash, setup.episodes, setup.seed): s for s in seatings}.items())
    todo: list[tuple[str, Seating]] = []
    known: dict[str, dict[str, Any]] = {}
    for key, seating in unique:
        stored = None if recompute else registry.crossplay_result(key)
        if stored is None:
            todo.append((key, seating))
        else:
            known[key] = stored.metrics
    evaluation.reused = len(known)
    done = len(known)
    if on_progress:
        on_progress(done, len(unique))
    played = player(todo, setup) if player else _play_all(registry, todo, setup, workers)
    for key, seating, metrics in played:
        registry.save_crossplay_result(
            {
                "key": key,
                "env": setup.env_values["name"],
                "env_config_hash": env_hash,
                "agent_ref": seating.agent.ref,
                "agent_step": seating.agent.step,
                "agent_sha256": seating.agent.sha256,
                "seat": seating.seat,
                "partners": {s: p.to_dict() for s, p in seating.partners},
                "episodes": setup.episodes,
                "seed": setup.seed,
                "metrics": metrics,
            }
        )
        known[key] = metrics
        evaluation.played_episodes += setup.episodes
        done += 1
        if on_progress:
            on_progress(done, len(unique))
    fresh = {key for key, _ in todo}
    for seating in seatings:
        key = seating.key(env_hash, setup.episodes, setup.seed)
        evaluation.outcomes.append(Outcome(seating, known[key], key in fresh))
    return evaluation


def _play_all(
    registry: Registry, todo: list[tuple[str, Seating]], setup: Setup, workers: int
) -> Iterator[tuple[str, Seating, dict[str, Any]]]:
    if workers == 0:
        enough = len(todo) >= AUTO_WORKERS_MIN_SEATINGS
        workers = min(os.cpu_count() or 1, len(todo)) if enough else 1
    if workers <= 1 or len(todo) <= 1:
        for key, seating in todo:
            yield key, seating, play_seating(registry, seating, setup)
        return
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_open_worker, initargs=(registry.url,)
    ) as pool:
        futures = [(key, s, pool.submit(_play_in_worker, s, setup)) for key, s in todo]
        for key, seating, future in futures:
            yield key, seating, future.result()


_worker_registry: Registry | None = None
"""The registry handle of a cross-play worker process (opened once per process)."""


def _open_worker(url: str) -> None:
    global _worker_registry
    torch.set_num_threads(1)
    _worker_registry = Registry(url, create=False)


def _play_in_worker(seating: Seating, setup: Setup) -> dict[str, Any]:
    assert _worker_registry is not None
    return play_seating(_worker_registry, seating, setup)


def play_seating(registry: Registry, seating: Seating, setup: Setup) -> dict[str, Any]:
    """Play one seating: per-episode and mean returns, costs and the free-riding degree
    (families without a batched env, like debate, play it their own way)."""
    family = ENVS[setup.env_values["name"]]
    if family.play_seating is not None:
        return family.hook("play_seating")(registry, seating, setup)
    device = resolve_device(setup.device)
    env_config = env_config_from(setup.env_values)
    env = make_env(
        env_config, setup.episodes, device, sub_seed(setup.seed, "crossplay/env"), evaluation=True
    )
    frozen = env_config.frozen_seats()
    chosen = {seating.seat: seating.agent, **dict(seating.partners)}
    refs: dict[str, tuple[str, int | None]] = {}
    for name in env.agents:
        if name in frozen:
            refs[name] = (frozen[name], None)
        elif name in chosen:
            check_pinned(registry, chosen[name])
            refs[name] = (chosen[name].ref, chosen[name].step)
        else:
            raise UserError(f"seat {name} has no policy in this seating")
    seats = load_seats(registry, env, env_config, refs, device)
    learning = [i for i, name in enumerate(env.agents) if name not in frozen]
    generator = make_generator(device, sub_seed(setup.seed, "crossplay/actions"))
    episodes = play_episodes(env, seats, generator)
    metrics: dict[str, Any] = episodes.summary(env.agents, learning)
    utility = (episodes.reward - episodes.cost)[learning].mean(0)
    metrics["episode_returns"] = [float(x) for x in utility]
    metrics["agent/return"] = metrics[f"{seating.seat}/return"]
    metrics["agent/cost"] = metrics[f"{seating.seat}/cost"]
    partner_costs = [metrics[f"{s}/cost"] for s, _ in seating.partners]
    metrics["partner/cost"] = sum(partner_costs) / max(len(partner_costs), 1)
    metrics["device"] = str(device)
    return metrics
