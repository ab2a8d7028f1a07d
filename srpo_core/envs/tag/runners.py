"""Scripted Tag runners (``scripted:tag/flee``, ``-noisy``, ``-slow``): the default frozen
runner of chasers' training (`TagEnvConfig.runner`) and partners of zoos."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from srpo_core.distributions import Categorical
from srpo_core.envs.family import Scripted
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


def _flee(noise: float, activity: float) -> Callable[[Any], FleeRunner]:
    def build(env_config: Any) -> FleeRunner:
        if env_config.continuous:
            raise UserError("scripted Tag runners play discrete actions only")
        return FleeRunner(env_config.num_obstacles, env_config.num_adversaries, noise, activity)

    return build


SCRIPTED: dict[str, Scripted] = {
    "flee": Scripted("tag", "runner", _flee(0.0, 1.0), {"noise": 0.0, "activity": 1.0}),
    "flee-noisy": Scripted("tag", "runner", _flee(0.3, 1.0), {"noise": 0.3, "activity": 1.0}),
    "flee-slow": Scripted("tag", "runner", _flee(0.0, 0.5), {"noise": 0.0, "activity": 0.5}),
}
