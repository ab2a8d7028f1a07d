"""srpo as a library: the calls a script needs, in one place.

    from srpo_core import api

    config = api.resolve(presets=["gridworld-srpo"], sets=["run.steps=200000"])
    with api.Registry("sqlite:///srpo.db") as registry:
        run = api.train(config, registry)
        scores = api.play(registry, config.env, {"agent0": f"{run.run_id}/agent0",
                                                 "agent1": "scripted:gridworld/worker"})

Runs trained here are the CLI's runs (same registry, same numbers for the same config), so
`srpo crossplay`, `srpo report` and the rest work on them. `docs/examples/first_experiment.py`
is a runnable tour; docs/python-api.md describes each call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from srpo_core.agents.scripted import CATALOGUE
from srpo_core.agents.seat import Seat
from srpo_core.config import Config, resolve, with_seed
from srpo_core.devices import resolve_device
from srpo_core.envs import make_env
from srpo_core.envs.family import Scripted
from srpo_core.errors import UserError
from srpo_core.learn import TrainResult
from srpo_core.policy_loading import load_policy, load_seats
from srpo_core.registry import Registry
from srpo_core.rollout import play_episodes
from srpo_core.seeding import make_generator, sub_seed
from srpo_core.train import resume, train, train_population

__all__ = [
    "Config",
    "Registry",
    "Seat",
    "TrainResult",
    "add_partner",
    "load_policy",
    "play",
    "resolve",
    "resume",
    "train",
    "train_population",
    "with_seed",
]


def play(
    registry: Registry,
    env_config: Any,
    seats: Mapping[str, str],
    *,
    episodes: int = 100,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """One episode per env of ``episodes`` envs with the policy ``seats[name]`` in each
    seat (``RUN/role``, ``RUN/role@STEP``, ``scripted:ENV/NAME`` or ``random:ENV/uniform``):
    mean return, team reward, each seat's return and cost, free-riding. Seeded: the same
    call gives the same numbers."""
    if episodes < 1:
        raise UserError(f"episodes must be >= 1, got {episodes}")
    torch_device = resolve_device(device)
    env = make_env(env_config, episodes, torch_device, sub_seed(seed, "play/env"), evaluation=True)
    unknown = set(seats) - set(env.agents)
    if unknown:
        raise UserError(f"no seat {sorted(unknown)[0]!r} in {env_config.name} ({env.agents})")
    refs = {}
    for name, text in seats.items():
        ref, _, step = text.partition("@")
        refs[name] = (ref, int(step) if step else None)
    policies = load_seats(registry, env, env_config, refs, torch_device)
    generator = make_generator(torch_device, sub_seed(seed, "play/actions"))
    return play_episodes(env, policies, generator).summary(env.agents)


def add_partner(
    env: str,
    name: str,
    build: Callable[[Any], Seat],
    *,
    seat: str = "agent",
    params: Mapping[str, Any] | None = None,
) -> str:
    """Make ``scripted:ENV/NAME`` a partner of this process: ``build(env_config)`` returns
    an object with ``distribution(obs, mask) -> srpo_core.distributions.Categorical``
    for the seats whose names start with ``seat``. Usable wherever a policy ref is (`play`,
    zoos, cross-play, frozen seats) in this process; ``params`` are stored with it in the
    registry on first use. Returns the ref."""
    key = f"{env}/{name}"
    if key in CATALOGUE:
        raise UserError(f"scripted:{key} already exists")
    CATALOGUE[key] = Scripted(env, seat, build, dict(params or {}))
    return f"scripted:{key}"
