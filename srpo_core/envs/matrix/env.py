"""Two-player matrix games with a shared reward table and private action costs.

u_i(a) = R(a_0, a_1) - c_i(a_i), as in srpo-notes section 2. One step per episode; the
observation is a constant, so a policy is just a distribution over actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srpo_core.envs.base import BatchedEnv, Discrete, EnvSpec, Step
from srpo_core.envs.family import EnvConfig
from srpo_core.errors import UserError

# name -> (action labels, team reward R[a0][a1], private costs c_i[a_i])
GAMES: dict[str, tuple[list[str], list[list[float]], list[list[float]]]] = {
    # Example 4.2: R = 1 if anyone collaborates; collaborating costs 0.4.
    "collab-defect": (["C", "D"], [[1.0, 1.0], [1.0, 0.0]], [[0.4, 0.0], [0.4, 0.0]]),
}


@dataclass
class MatrixEnvConfig(EnvConfig):
    name: str = "matrix"
    game: str = "collab-defect"
    """A built-in game (collab-defect), or a label for the tables given below."""
    reward: list[list[float]] | None = None
    """Team reward R[a0][a1], shared by both players; given with `cost`, overrides `game`."""
    cost: list[list[float]] | None = None
    """Private cost per player and own action: cost[i][a_i]."""
    actions: list[str] | None = None
    """Action labels (for metrics)."""

    def tables(self) -> tuple[list[str], list[list[float]], list[list[float]]]:
        if self.reward is None and self.cost is None:
            if self.game not in GAMES:
                raise UserError(
                    f"unknown game '{self.game}' (built in: {', '.join(GAMES)}; or give "
                    "env.reward and env.cost in a preset)"
                )
            return GAMES[self.game]
        if self.reward is None or self.cost is None:
            raise UserError("a custom matrix game needs both env.reward and env.cost")
        n0, n1 = len(self.reward), len(self.reward[0]) if self.reward else 0
        if n0 < 2 or n1 < 2 or any(len(row) != n1 for row in self.reward):
            raise UserError("env.reward must be a rectangular table, at least 2x2")
        if len(self.cost) != 2 or len(self.cost[0]) != n0 or len(self.cost[1]) != n1:
            raise UserError(f"env.cost must be [[{n0} costs], [{n1} costs]] for this reward")
        labels = self.actions or [str(a) for a in range(max(n0, n1))]
        if len(labels) < max(n0, n1):
            raise UserError("env.actions needs a label per action")
        return labels, self.reward, self.cost

    def validate(self) -> None:
        self.tables()


def spec(config: MatrixEnvConfig) -> EnvSpec:
    labels, reward, _ = config.tables()
    n0, n1 = len(reward), len(reward[0])
    spaces = (Discrete(n0, tuple(labels[:n0])), Discrete(n1, tuple(labels[:n1])))
    return EnvSpec(("agent0", "agent1"), (1, 1), spaces)


class MatrixEnv(BatchedEnv):
    member_seeded = True
    agents = ("agent0", "agent1")
    obs_dims = (1, 1)

    def __init__(self, config: MatrixEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        labels, reward, cost = config.tables()
        self.reward_table = torch.tensor(reward, dtype=torch.float32, device=self.device)
        self.costs = [torch.tensor(c, dtype=torch.float32, device=self.device) for c in cost]
        self.action_spaces = spec(config).action_spaces
        self._obs = torch.ones(num_envs, 1, device=self.device)

    def reset(self) -> list[torch.Tensor]:
        return [self._obs, self._obs]

    def step(self, actions: list[torch.Tensor]) -> Step:
        a0, a1 = actions
        team = self.reward_table[a0, a1]
        return Step(
            obs=self.reset(),
            reward=torch.stack([team, team]),
            cost=torch.stack([self.costs[0][a0], self.costs[1][a1]]),
            done=torch.ones(self.num_envs, dtype=torch.bool, device=self.device),
        )
