"""K members' recurrent actor-critics (`RecurrentActorCritic`) as stacked tensors.

As `stacked.StackedNet` does for the MLPs: each Linear and GRU weight becomes [K, in, out]
(transposed, for ``torch.baddbmm``), each bias [K, 1, out], the action embedding a
[K, A + 1, E] table; inputs are [K, B, ...], so member k's rows only ever meet member
k's weights. The GRU cell is written out (PyTorch's ``GRUCell`` equations: reset gate r,
update gate z, candidate n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) n +
z h), so the same ops run for one member as for many. Members are built as ordinary
`RecurrentActorCritic` networks and taken out again as one (`member_state`): what
checkpoints and the registry store, and what cross-play loads.
"""

from __future__ import annotations

import torch

from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSpec
from srpo_core.population.stacked import StackedParameters

EMBEDDING = "action_embed.weight"
"""The one weight kept in its module's layout (a lookup table, not a matmul)."""


class StackedRecurrentNet(StackedParameters):
    def __init__(self, nets: list[RecurrentActorCritic]) -> None:
        super().__init__(nets)
        self.spec: RecurrentSpec = nets[0].spec
        self.members_index = torch.arange(self.members, device=self.params[EMBEDDING].device)

    @property
    def no_action(self) -> int:
        """The previous-action index of an episode's first step."""
        return self.spec.num_actions

    def initial_state(self, batch: int, device: torch.device) -> torch.Tensor:
        """Every member's memory of ``batch`` envs before their first step: [K, B, H]."""
        return torch.zeros(self.members, batch, self.spec.hidden, device=device)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.params[f"{name}.bias"], x, self.params[f"{name}.weight"])

    def step(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        hidden: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of [K, B] envs: (logits [K, B, A], value [K, B], next hidden [K, B, H])."""
        p = self.params
        action = p[EMBEDDING][self.members_index.unsqueeze(1), prev_action]
        # a one-input layer as a product and a sum: no matmul kernel whose rounding could
        # depend on the batch's shape
        reward = prev_reward.unsqueeze(-1) * p["reward_embed.weight"] + p["reward_embed.bias"]
        x = torch.relu(torch.cat([self._linear("obs_embed", obs), action, reward], -1))
        gates_x = torch.baddbmm(p["gru.bias_ih"], x, p["gru.weight_ih"])
        gates_h = torch.baddbmm(p["gru.bias_hh"], hidden, p["gru.weight_hh"])
        r_x, z_x, n_x = gates_x.chunk(3, -1)
        r_h, z_h, n_h = gates_h.chunk(3, -1)
        reset = torch.sigmoid(r_x + r_h)
        update = torch.sigmoid(z_x + z_h)
        candidate = torch.tanh(n_x + reset * n_h)
        hidden = candidate + update * (hidden - candidate)
        logits = self._linear("actor_head", hidden)
        # the one-output critic head as a product and a sum (as `stacked.StackedNet`'s)
        critic = p["critic_head.weight"].transpose(1, 2)  # [K, 1, H]
        value = (hidden * critic).sum(-1) + p["critic_head.bias"].squeeze(-1)
        return logits, value, hidden

    def unroll(
        self,
        obs: torch.Tensor,
        prev_action: torch.Tensor,
        prev_reward: torch.Tensor,
        hidden: torch.Tensor,
        starts: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Over [T, K, B] sequences from ``hidden`` [K, B, H] (the memory before step 0),
        zeroed where ``starts[t]`` (obs t opens an episode), as when acting.
        Returns (logits [T, K, B, A], values [T, K, B])."""
        logits, values = [], []
        for t in range(obs.shape[0]):
            hidden = hidden * ~starts[t].unsqueeze(-1)
            out, value, hidden = self.step(obs[t], prev_action[t], prev_reward[t], hidden)
            logits.append(out)
            values.append(value)
        return torch.stack(logits), torch.stack(values)

    @staticmethod
    def to_stacked(name: str, value: torch.Tensor) -> torch.Tensor:
        if name == EMBEDDING:
            return value
        if _is_weight(name):  # [K, out, in]
            return value.transpose(1, 2)
        return value.unsqueeze(1)  # a bias: [K, 1, out]

    @staticmethod
    def from_stacked(name: str, value: torch.Tensor) -> torch.Tensor:
        if name == EMBEDDING:
            return value
        return value.T if _is_weight(name) else value.squeeze(0)


def _is_weight(name: str) -> bool:
    """A Linear's or the GRU's weight (``weight``, ``weight_ih``, ``weight_hh``)."""
    return name.rsplit(".", 1)[-1].startswith("weight")
