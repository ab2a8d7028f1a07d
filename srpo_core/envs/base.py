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
from collections.abc import Iterator, Mapping, Sequence
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


@dataclass(frozen=True)
class EnvSpec:
    """The seats of a game, each seat's observation size and action space: what networks and
    seatings are built from, known from the config (`EnvFamily.spec`)."""

    agents: tuple[str, ...]
    obs_dims: tuple[int, ...]
    action_spaces: tuple[ActionSpace, ...]
    grids: tuple[tuple[int, int, int] | None, ...] = ()
    """Per seat, where its observation is a grid flattened from (width, height, channels)
    (C order, channels last): the shape a convolutional torso (``net.conv``) reads; () or
    None: not a grid."""

    def grid(self, seat: int) -> tuple[int, int, int] | None:
        return self.grids[seat] if self.grids else None


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
    member_seeded = False
    """True for envs that draw every random number through `rand` or `randint`, so that the
    members of a population can share one env batch (`split_generators`)."""
    per_env_state: tuple[str, ...] = ()
    """The `state_dict` keys that hold one entry per env (a tensor's rows or a list), which
    `member_state` slices; the generator is split by member, the rest is shared."""

    def __init__(self, num_envs: int, device: torch.device, seed: int) -> None:
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.generators = [self.generator]
        """One per member of a population, each drawing for its own equal slice of the
        batch (one for a plain env)."""

    def split_generators(self, seeds: list[int]) -> None:
        """Give each of ``len(seeds)`` consecutive, equal slices of the batch (a population's
        members) a generator of its own seed, so a member's envs draw the same numbers
        whichever members share the batch. Only for `member_seeded` envs."""
        if not self.member_seeded:
            raise TypeError(f"{type(self).__name__} cannot split its random numbers by member")
        if self.num_envs % len(seeds):
            raise ValueError("the batch must split into equal slices, one per member")
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        self.generator = self.generators[0]

    def rand(self, *lead: int) -> torch.Tensor:
        """Uniform numbers [*lead, num_envs], each member's slice from its own generator."""
        if len(self.generators) == 1:
            return torch.rand(*lead, self.num_envs, generator=self.generator, device=self.device)
        width = self.num_envs // len(self.generators)
        parts = [torch.rand(*lead, width, generator=g, device=self.device) for g in self.generators]
        return torch.cat(parts, -1)

    def randint(self, high: int, index: Sequence[int]) -> torch.Tensor:
        """One integer in [0, high) for each env of ``index`` (ascending), each member's
        from its own generator, in env order."""
        if len(self.generators) == 1:
            size = (len(index),)
            return torch.randint(0, high, size, generator=self.generator, device=self.device)
        width = self.num_envs // len(self.generators)
        counts = [0] * len(self.generators)
        for env in index:
            counts[int(env) // width] += 1
        parts = [
            torch.randint(0, high, (count,), generator=g, device=self.device)
            for g, count in zip(self.generators, counts, strict=True)
            if count
        ]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=self.device)

    def member_state(self, state: dict[str, Any], k: int, members: int) -> dict[str, Any]:
        """Member k's part of ``state`` (this env's `state_dict`, its batch split into
        ``members`` equal slices): its generator and its envs' entries."""
        width = self.num_envs // members
        rows = slice(k * width, (k + 1) * width)
        out = dict(state)
        generators = state["generator"]
        out["generator"] = generators[k] if isinstance(generators, list) else generators
        for key in self.per_env_state:
            value = state[key]
            out[key] = value[rows].clone() if isinstance(value, torch.Tensor) else value[rows]
        return out

    def join_member_states(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        """The inverse of `member_state`: one state of the whole batch."""
        out = dict(states[0])
        out["generator"] = [state["generator"] for state in states]
        for key in self.per_env_state:
            values = [state[key] for state in states]
            if isinstance(values[0], torch.Tensor):
                out[key] = torch.cat(values)
            else:
                out[key] = [item for value in values for item in value]
        return out

    def rng_state(self) -> torch.Tensor | list[torch.Tensor]:
        """The generator's state; with members, a list of theirs."""
        if len(self.generators) == 1:
            return self.generator.get_state()
        return [g.get_state() for g in self.generators]

    def load_rng_state(self, states: torch.Tensor | list[torch.Tensor]) -> None:
        states = [states] if isinstance(states, torch.Tensor) else states
        if len(states) != len(self.generators):
            raise ValueError("the state has another number of members than this env")
        for generator, state in zip(self.generators, states, strict=True):
            generator.set_state(state.cpu())

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

    def close(self) -> None:  # noqa: B027 (optional: most envs run nothing outside)
        """Stop whatever the env runs outside this process (worker processes); nothing by
        default."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically after a resume."""
        return {"generator": self.rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_rng_state(state["generator"])
