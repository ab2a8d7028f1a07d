"""Scripted policies: fixed heuristics that sit in a seat like any trained policy.

They are addressed as ``scripted:ENV/NAME`` and registered in the registry on first use,
so zoos and cross-play can treat them as partners or opponents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from srpo_core.agents.distributions import Categorical
from srpo_core.agents.gridworld_partners import PARTNERS as GRIDWORLD_PARTNERS
from srpo_core.agents.gridworld_partners import partner as gridworld_partner
from srpo_core.agents.hanabi_rules import HanabiRules
from srpo_core.agents.memory_one import PROBES, probe
from srpo_core.envs.overcooked_scripted import AGENTS as OVERCOOKED_AGENTS
from srpo_core.envs.overcooked_scripted import ScriptedSeat as OvercookedSeat
from srpo_core.errors import UserError


class FleeRunner:
    """MPE Tag runner: step away from the nearest chaser, pulled back towards the centre
    near the edge (the runner is penalised outside the arena).

    ``noise``: probability of a uniformly random action instead; ``activity``: probability
    of moving at all (else no-op), a slower runner. Discrete actions only
    (noop, left, right, down, up)."""

    def __init__(self, num_obstacles: int, num_chasers: int, noise: float, activity: float):
        self.chasers = slice(4 + 2 * num_obstacles, 4 + 2 * num_obstacles + 2 * num_chasers)
        self.noise, self.activity = noise, activity

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        lead = obs.shape[:-1]
        obs = obs.reshape(-1, obs.shape[-1])
        position = obs[:, 2:4]
        chasers = obs[:, self.chasers].reshape(obs.shape[0], -1, 2)
        nearest = chasers.norm(dim=-1).argmin(-1)
        away = -chasers[torch.arange(obs.shape[0]), nearest]
        away = away / away.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        direction = away - position * (position.norm(dim=-1, keepdim=True) > 0.8)
        dx, dy = direction[:, 0], direction[:, 1]
        horizontal = torch.where(dx > 0, 2, 1)
        vertical = torch.where(dy > 0, 4, 3)
        move = torch.where(dx.abs() > dy.abs(), horizontal, vertical)
        probs = torch.full((obs.shape[0], 5), self.noise / 5, device=obs.device)
        probs[:, 0] += (1 - self.noise) * (1 - self.activity)
        probs[torch.arange(obs.shape[0]), move] += (1 - self.noise) * self.activity
        return Categorical(probs.log().reshape(*lead, 5), mask)


@dataclass(frozen=True)
class Scripted:
    env: str
    seat: str
    """The seat (role) it is written for."""
    build: Callable[[Any], Any]
    """build(env_config) -> an object with distribution(obs, mask)."""
    params: dict


def _flee(noise: float, activity: float) -> Callable[[Any], FleeRunner]:
    def build(env_config: Any) -> FleeRunner:
        if env_config.continuous:
            raise UserError("scripted Tag runners play discrete actions only")
        return FleeRunner(env_config.num_obstacles, env_config.num_adversaries, noise, activity)

    return build


def _hanabi_rules(env_config: Any) -> HanabiRules:
    return HanabiRules(env_config.layout())


def _overcooked(name: str) -> Callable[[Any], Any]:
    """overcooked-ai's own agent ``name``; it acts inside the env it is bound to (see
    `srpo_core.envs.overcooked_scripted`)."""

    def build(env_config: Any) -> OvercookedSeat:
        return OvercookedSeat(name, env_config)

    return build


def _ipd_probe(name: str) -> Callable[[Any], Any]:
    """A memory-one IPD probe (`srpo_core.agents.memory_one.PROBES`)."""

    def build(env_config: Any) -> Any:
        return probe(name)

    return build


def _gridworld(name: str) -> Callable[[Any], Any]:
    """A gridworld worker variant (`srpo_core.agents.gridworld_partners.PARTNERS`)."""

    def build(env_config: Any) -> Any:
        return gridworld_partner(name, env_config)

    return build


CATALOGUE: dict[str, Scripted] = {
    "tag/flee": Scripted("tag", "runner", _flee(0.0, 1.0), {"noise": 0.0, "activity": 1.0}),
    "tag/flee-noisy": Scripted("tag", "runner", _flee(0.3, 1.0), {"noise": 0.3, "activity": 1.0}),
    "tag/flee-slow": Scripted("tag", "runner", _flee(0.0, 0.5), {"noise": 0.0, "activity": 0.5}),
    "hanabi/rules": Scripted("hanabi", "agent", _hanabi_rules, {}),
    **{
        f"overcooked/{name}": Scripted("overcooked", "agent", _overcooked(name), params)
        for name, params in OVERCOOKED_AGENTS.items()
    },
    **{
        f"ipd/{name}": Scripted(
            "ipd", "agent", _ipd_probe(name), {"p_cooperate": list(p) if p else "U(0,1)"}
        )
        for name, p in PROBES.items()
    },
    **{
        f"gridworld/{name}": Scripted("gridworld", "agent", _gridworld(name), dict(params))
        for name, params in GRIDWORLD_PARTNERS.items()
    },
}
