"""The two-robot pushing game (srpo-notes Example 4.1), a quadratic aggregative game.

Continuous actions a_i in R; shared reward -0.5 * (a_0 + a_1 - target)^2, private cost
0.5 * a_i^2; one step per episode. Its Gaussian RQE has variance eps/2 and mean
target / (3 - tau * eps / 2) for tau * eps < 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srpo_core.envs.base import BatchedEnv, Box, EnvSpec, Step
from srpo_core.envs.family import EnvConfig


@dataclass
class QuadraticEnvConfig(EnvConfig):
    name: str = "quadratic"
    target: float = 1.0
    """The joint push ā the team is rewarded for."""


def rqe_mean(target: float, tau: float, eps: float) -> float:
    """Closed-form mean of the symmetric Gaussian RQE (tau * eps < 2)."""
    return target / (3.0 - tau * eps / 2.0)


class QuadraticEnv(BatchedEnv):
    member_seeded = True
    agents = ("agent0", "agent1")
    obs_dims = (1, 1)
    action_spaces = (Box(1), Box(1))

    def __init__(self, config: QuadraticEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        self.target = config.target
        self._obs = torch.ones(num_envs, 1, device=self.device)

    def reset(self) -> list[torch.Tensor]:
        return [self._obs, self._obs]

    def step(self, actions: list[torch.Tensor]) -> Step:
        a0, a1 = (a.reshape(self.num_envs) for a in actions)
        team = -0.5 * (a0 + a1 - self.target) ** 2
        return Step(
            obs=self.reset(),
            reward=torch.stack([team, team]),
            cost=torch.stack([0.5 * a0**2, 0.5 * a1**2]),
            done=torch.ones(self.num_envs, dtype=torch.bool, device=self.device),
        )


def spec(config: QuadraticEnvConfig) -> EnvSpec:
    return EnvSpec(QuadraticEnv.agents, QuadraticEnv.obs_dims, QuadraticEnv.action_spaces)
