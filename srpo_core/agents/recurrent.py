"""A recurrent actor-critic: embeddings of observation, previous action and previous
reward into a GRU (Weis et al.: GRU 128, 32-d embeddings), with policy and value heads.

Env-agnostic (any obs size, any Discrete action space). The memory is reset at episode
starts. This module is how a policy is stored and how it acts outside training (cross-play,
a zoo partner: `RecurrentSeat`); training runs the same equations for every member at
once (`srpo_core.population.stacked_recurrent`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srpo_core.distributions import Categorical


@dataclass(frozen=True)
class RecurrentSpec:
    """Everything needed to rebuild the network from a checkpoint."""

    obs_dim: int
    num_actions: int
    hidden: int = 128
    embed: int = 32

    def to_dict(self) -> dict:
        return {"kind": "gru", **self.__dict__}

    @classmethod
    def from_dict(cls, data: dict) -> RecurrentSpec:
        return cls(**{k: v for k, v in data.items() if k != "kind"})


class RecurrentActorCritic(nn.Module):
    """pi(a_t | h_t), V(h_t) with h_t = GRU(h_{t-1}, [e(o_t), e(a_{t-1}), e(r_{t-1})])."""

    def __init__(self, spec: RecurrentSpec) -> None:
        super().__init__()
        self.spec = spec
        self.obs_embed = nn.Linear(spec.obs_dim, spec.embed)
        # Index num_actions stands for "no previous action" (an episode's first step).
        self.action_embed = nn.Embedding(spec.num_actions + 1, spec.embed)
        self.reward_embed = nn.Linear(1, spec.embed)
        self.gru = nn.GRUCell(3 * spec.embed, spec.hidden)
        self.actor_head = nn.Linear(spec.hidden, spec.num_actions)
        self.critic_head = nn.Linear(spec.hidden, 1)

    @property
    def no_action(self) -> int:
        return self.spec.num_actions

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Seeded init: orthogonal weights (gain 1; 0.01 for the policy head, so the first
        policy is near uniform), zero biases."""
        for name, param in self.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("bias"):  # incl. the GRU's bias_ih, bias_hh
                nn.init.zeros_(param)
            elif param.dim() >= 2:
                gain = 0.01 if name.startswith("actor_head") else 1.0
                nn.init.orthogonal_(param, gain, generator=generator)

    def initial_state(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch, self.spec.hidden, device=device)

    def step(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        hidden: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for a [B] batch: (logits [B, A], value [B], next hidden [B, H])."""
        x = torch.cat(
            [
                self.obs_embed(obs),
                self.action_embed(prev_action),
                self.reward_embed(prev_reward.unsqueeze(-1)),
            ],
            -1,
        )
        hidden = self.gru(torch.relu(x), hidden)
        return self.actor_head(hidden), self.critic_head(hidden).squeeze(-1), hidden


class RecurrentSeat:
    """A trained recurrent policy acting outside its training loop (cross-play, a zoo
    partner): it carries one memory per env of the batch it plays, advanced by
    `distribution` and completed by `observe` (the seat's action and utility, and which
    episodes ended, where the memory starts afresh). Binding it to another env, or
    acting on a batch of another size, starts every memory afresh."""

    def __init__(self, net: RecurrentActorCritic) -> None:
        self.net = net
        self.env: object | None = None
        self.hidden: torch.Tensor | None = None
        self.pending: torch.Tensor | None = None
        self.prev_action = torch.zeros(0, dtype=torch.long)
        self.prev_reward = torch.zeros(0)

    def bind(self, env: object, index: int) -> None:
        if env is not self.env:
            self.env, self.hidden = env, None

    def _fresh(self, batch: int, device: torch.device) -> None:
        self.hidden = self.net.initial_state(batch, device)
        self.prev_action = torch.full((batch,), self.net.no_action, device=device)
        self.prev_reward = torch.zeros(batch, device=device)

    @torch.no_grad()
    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        if self.hidden is None or self.hidden.shape[0] != obs.shape[0]:
            self._fresh(obs.shape[0], obs.device)
        assert self.hidden is not None
        logits, _, self.pending = self.net.step(
            obs, self.prev_action, self.prev_reward, self.hidden
        )
        return Categorical(logits, mask)

    def observe(self, action: torch.Tensor, utility: torch.Tensor, done: torch.Tensor) -> None:
        if self.pending is None:
            raise RuntimeError("observe() before distribution()")
        self.hidden = self.pending * ~done.unsqueeze(-1)
        self.prev_action = action.long().masked_fill(done, self.net.no_action)
        self.prev_reward = utility.masked_fill(done, 0.0)
        self.pending = None

    def memory_state(self) -> dict[str, torch.Tensor | None]:
        """What it remembers between steps (saved with a training run's partner pool)."""
        return {"hidden": self.hidden, "action": self.prev_action, "reward": self.prev_reward}

    def load_memory_state(self, state: dict[str, torch.Tensor | None]) -> None:
        self.hidden = state["hidden"]
        self.prev_action, self.prev_reward = state["action"], state["reward"]
