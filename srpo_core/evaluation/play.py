"""Playing seatings: stored results reused by key, the rest played (in worker processes
or by a cluster's player) and stored with what they are."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from srpo_core.devices import resolve_device
from srpo_core.envs import ENVS, make_env
from srpo_core.errors import UserError
from srpo_core.evaluation.seatings import Seating, Setup
from srpo_core.policy_loading import load_seats
from srpo_core.registry import Registry
from srpo_core.rollout import play_episodes
from srpo_core.seeding import make_generator, sub_seed
from srpo_core.zoo.games import env_config_from
from srpo_core.zoo.pinning import check_pinned

AUTO_WORKERS_MIN_SEATINGS = 8
"""Below this many seatings to play, worker start-up (seconds) costs more than it saves."""


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
