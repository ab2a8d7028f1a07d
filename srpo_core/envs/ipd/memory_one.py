"""Memory-one IPD agents: a cooperation probability per state (start, CC, CD, DC, DD).

The state is read from the first five entries of the IPD observation (own action first),
so these sit in any IPD seat like any policy. They are the tabular co-players of Weis et
al.'s pool and the scripted probes (always cooperate, always defect, tit-for-tat, random).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from srpo_core.distributions import Categorical
from srpo_core.envs.family import Scripted

PROBES: dict[str, tuple[float, ...] | None] = {
    "always-cooperate": (1.0, 1.0, 1.0, 1.0, 1.0),
    "always-defect": (0.0, 0.0, 0.0, 0.0, 0.0),
    # Cooperate first, then copy the co-player's last action: after CC and DC (other C).
    "tit-for-tat": (1.0, 1.0, 0.0, 1.0, 0.0),
    "random-memory1": None,  # fresh U(0, 1) probabilities each episode
}


def memory_one_distribution(
    params: torch.Tensor, obs: torch.Tensor, mask: torch.Tensor | None = None
) -> Categorical:
    """pi(C | state) = params[..., state] for obs [..., obs_dim] and params [5] or
    [..., 5] (one row per env). Probabilities of exactly 0 or 1 stay exact (masked)."""
    state = obs[..., :5].argmax(-1)
    table = params.expand(*obs.shape[:-1], 5)
    p = table.gather(-1, state.unsqueeze(-1)).squeeze(-1)
    probs = torch.stack([p, 1.0 - p], -1)
    logits = probs.log().masked_fill(probs <= 0, torch.finfo(probs.dtype).min)
    return Categorical(logits, mask)


class MemoryOne:
    """A fixed memory-one strategy (one row of probabilities for every env)."""

    def __init__(self, params: tuple[float, ...] | torch.Tensor) -> None:
        self.params = torch.as_tensor(params, dtype=torch.float32)

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        return memory_one_distribution(self.params.to(obs.device), obs, mask)


class RandomMemoryOne:
    """A fresh U(0, 1)^5 memory-one strategy per env and episode, drawn from its own seeded
    generator whenever an env's observation is the start token. Stateful: it expects one
    call per step on a [num_envs, obs_dim] batch, as play and cross-play make."""

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.params: torch.Tensor | None = None

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        starts = obs[:, 0] > 0.5
        if self.params is None or self.params.shape[0] != obs.shape[0]:
            self.params = torch.rand(obs.shape[0], 5, generator=self.generator)
        fresh = torch.rand(obs.shape[0], 5, generator=self.generator)
        self.params = torch.where(starts.cpu().unsqueeze(-1), fresh, self.params)
        return memory_one_distribution(self.params.to(obs.device), obs, mask)

    def memory_state(self) -> dict[str, torch.Tensor | None]:
        """Its generator and current probabilities (saved with a training run's pool)."""
        return {"generator": self.generator.get_state(), "params": self.params}

    def load_memory_state(self, state: dict[str, torch.Tensor | None]) -> None:
        generator = state["generator"]
        assert generator is not None
        self.generator.set_state(generator)
        self.params = state["params"]


def probe(name: str) -> MemoryOne | RandomMemoryOne:
    params = PROBES[name]
    return RandomMemoryOne() if params is None else MemoryOne(params)


def _probe(name: str) -> Callable[[Any], MemoryOne | RandomMemoryOne]:
    def build(env_config: Any) -> MemoryOne | RandomMemoryOne:
        return probe(name)

    return build


SCRIPTED: dict[str, Scripted] = {
    name: Scripted("ipd", "agent", _probe(name), {"p_cooperate": list(p) if p else "U(0,1)"})
    for name, p in PROBES.items()
}
