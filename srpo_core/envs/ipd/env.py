"""The iterated prisoner's dilemma (srpo-notes section 6, Weis et al.).

``rounds`` simultaneous rounds of C (0) or D (1); payoffs (own, other): CC (1, 1),
CD (-1, 2), DC (2, -1), DD (0, 0). The PD has no shared team reward, so ``Step.reward``
carries each agent's *own* payoff and ``Step.cost`` is zero: utility = own payoff.

Observation of each agent (``OBS_DIM`` = 9 floats, 15 with ``identity``):

    [0:5]  one-hot: start of the episode, or the previous joint action CC, CD, DC, DD
           with the agent's own action first
    [5:8]  one-hot of the agent's previous action: none (start), C, D
    [8]    the agent's previous payoff (0 at the start)
    [9:15] (identity only) the co-player's identity: [is tabular, its 5 cooperation
           probabilities]; the env writes zeros, a partner pool that knows who sits
           opposite fills them in (the "explicit identity" ablation)

``info`` counts each agent's cooperations as 1/rounds per C, so an episode's sum is that
agent's cooperation rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srpo_core.envs.base import BatchedEnv, Discrete, EnvSpec, Step
from srpo_core.envs.family import EnvConfig
from srpo_core.errors import UserError

C, D = 0, 1
PAYOFF = ((1.0, -1.0), (2.0, 0.0))
"""PAYOFF[own][other]: the row player's payoff."""
STATES = ("start", "CC", "CD", "DC", "DD")
OBS_DIM = 9
IDENTITY = slice(9, 15)
IDENTITY_DIM = 6


def state_index(own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """1 + 2 * own + other: the index of the joint action in `STATES`."""
    return 1 + 2 * own + other


@dataclass
class IpdEnvConfig(EnvConfig):
    name: str = "ipd"
    rounds: int = 100
    identity: bool = False
    """Reserve six observation entries for the co-player's identity (see module doc)."""

    def validate(self) -> None:
        if self.rounds < 1:
            raise UserError(f"env.rounds must be >= 1, got {self.rounds}")


def spec(config: IpdEnvConfig) -> EnvSpec:
    dim = OBS_DIM + (IDENTITY_DIM if config.identity else 0)
    moves = Discrete(2, ("C", "D"))
    return EnvSpec(("agent0", "agent1"), (dim, dim), (moves, moves))


class IpdEnv(BatchedEnv):
    agents = ("agent0", "agent1")
    member_seeded = True  # it draws no random numbers at all
    per_env_state = ("round",)

    def __init__(self, config: IpdEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        config.validate()
        self.rounds = config.rounds
        game = spec(config)
        self.obs_dims, self.action_spaces = game.obs_dims, game.action_spaces
        dim = self.obs_dims[0]
        self.payoff = torch.tensor(PAYOFF, device=self.device)
        self.round = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        start = torch.zeros(num_envs, dim, device=self.device)
        start[:, 0] = 1.0  # start token
        start[:, 5] = 1.0  # no previous action
        self._start = start

    def reset(self) -> list[torch.Tensor]:
        self.round.zero_()
        return [self._start.clone(), self._start.clone()]

    def _observe(self, own: torch.Tensor, other: torch.Tensor, payoff: torch.Tensor):
        obs = torch.zeros_like(self._start)
        rows = torch.arange(self.num_envs, device=self.device)
        obs[rows, state_index(own, other)] = 1.0
        obs[rows, 6 + own] = 1.0
        obs[:, 8] = payoff
        return obs

    def step(self, actions: list[torch.Tensor]) -> Step:
        a0, a1 = (a.long() for a in actions)
        r0, r1 = self.payoff[a0, a1], self.payoff[a1, a0]
        self.round += 1
        done = self.round >= self.rounds
        self.round = torch.where(done, 0, self.round)
        start = done.unsqueeze(-1)  # no branch on done: nothing read back from the device
        obs = [
            torch.where(start, self._start, self._observe(a0, a1, r0)),
            torch.where(start, self._start, self._observe(a1, a0, r1)),
        ]
        info = {
            f"{agent}/cooperation": (a == C).float() / self.rounds
            for agent, a in zip(self.agents, (a0, a1), strict=True)
        }
        return Step(
            obs=obs,
            reward=torch.stack([r0, r1]),
            cost=torch.zeros(2, self.num_envs, device=self.device),
            done=done,
            info=info,
        )

    def state_dict(self) -> dict:
        return super().state_dict() | {"round": self.round.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.round = state["round"].to(self.device)
