"""The one batched multi-agent interface every env family implements.

An env holds ``num_envs`` independent games stepped together as torch tensors. Agents
receive their own observation; the reward each agent gets is split into a shared part
(``reward``) and the private cost it paid (``cost``), so utility = reward - cost and
free-riding is measurable. Episodes reset automatically: when ``done[b]`` is set, the
returned observation for env ``b`` is the first of its next episode.

Turn-based envs (Hanabi) also say who acts and what is legal: ``Step.acting`` [A, B] marks
the agents whose action the next step applies (the others' actions are ignored) and
``Step.legal`` gives each agent's [B, num_actions] legal-action mask (all False for an agent
not acting). Both describe the returned observation; ``masks()`` gives them after
``reset()``. Simultaneous-move envs leave them None, and nothing changes for them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Discrete:
    n: int
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Box:
    dim: int


ActionSpace = Discrete | Box


class StackedInfo(Mapping[str, torch.Tensor]):
    """Per-step counters held as the rows of one [len(names), num_envs] tensor: a Mapping
    like any ``Step.info``, which the runner sums without stacking it again."""

    def __init__(self, names: tuple[str, ...], table: torch.Tensor) -> None:
        self.names = names
        self.table = table

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.names:
            raise KeyError(key)
        return self.table[self.names.index(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def stack_info(info: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """One step's counters ``names`` as a [len(names), num_envs] float tensor."""
    if isinstance(info, StackedInfo) and info.names == names:
        return info.table.float()
    return torch.stack([info[name] for name in names]).float()


@dataclass
class Step:
    obs: list[torch.Tensor]
    """Per agent, [num_envs, obs_dim]."""
    reward: torch.Tensor
    """[num_agents, num_envs]: the shared (team) reward each agent receives."""
    cost: torch.Tensor
    """[num_agents, num_envs]: each agent's private cost (subtracted from its utility)."""
    done: torch.Tensor
    """[num_envs] bool: the episode ended with this step (obs is already the next one's)."""
    info: Mapping[str, torch.Tensor] = field(default_factory=dict)
    """Per-step counters, each [num_envs], summed per episode (a dict, or `StackedInfo`)."""
    legal: list[torch.Tensor] | None = None
    """Per agent, [num_envs, num_actions] bool: the legal actions in the returned
    observation (None: every action is always legal)."""
    acting: torch.Tensor | None = None
    """[num_agents, num_envs] bool: whose action the next step applies (None: everyone's)."""


class BatchedEnv(ABC):
    agents: tuple[str, ...]
    obs_dims: tuple[int, ...]
    action_spaces: tuple[ActionSpace, ...]

    def __init__(self, num_envs: int, device: torch.device, seed: int) -> None:
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @abstractmethod
    def reset(self) -> list[torch.Tensor]:
        """Start every env afresh; per-agent observations."""

    def masks(self) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
        """(legal, acting) of the current observations, as in `Step`; the Runner reads
        them after ``reset()``. Simultaneous-move envs without masks keep this default."""
        return None, None

    @abstractmethod
    def step(self, actions: list[torch.Tensor]) -> Step:
        """Apply one action per agent per env (a [num_envs] long tensor for Discrete,
        [num_envs, dim] float for Box)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically after a resume."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
