"""The IPD's pool of co-players (``train.partners``), whom recurrent learners meet.

Per env and episode, kind 0 seats both learners, kind 1 a pool partner in seat 1, kind 2
one in seat 0. A pool partner is a tabular memory-one agent with fresh U(0, 1)^5
cooperation probabilities, or with ``zoo:NAME`` a member of the zoo drawn uniformly among
those that fit the seat. ``mixed`` draws the kinds uniformly, so each learner meets the
other learner in half of its episodes and a tabular agent in the other half;
``tabular-only`` and ``zoo:NAME`` draw kinds 1 and 2 only.
"""

from __future__ import annotations

from typing import Any

import torch

from srpo_core.agents.seat import Seat
from srpo_core.envs.base import Step
from srpo_core.envs.ipd.memory_one import memory_one_distribution

KIND_WEIGHTS = {
    "learners-only": (1.0, 0.0, 0.0),
    "mixed": (1.0, 1.0, 1.0),
    "tabular-only": (0.0, 1.0, 1.0),
    "zoo": (0.0, 1.0, 1.0),
}


class PartnerPool:
    """Who sits in each seat of each env for its current episode (see module doc)."""

    def __init__(
        self,
        weights: tuple[float, ...],
        num_envs: int,
        device: torch.device,
        generator: torch.Generator,
        params: torch.Tensor | None = None,
        members: list[list[Seat]] | None = None,
    ) -> None:
        self.weights = torch.tensor(weights, device=device)
        self.generator = generator
        self.fixed_params = params
        """Tabular probabilities for every episode (evaluation against a probe); None:
        fresh U(0, 1)^5 per episode."""
        self.members = members
        """Zoo members per seat (``train.partners=zoo:NAME``) instead of tabular agents."""
        self.kind = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.params = torch.zeros(num_envs, 5, device=device)
        self.draw = torch.zeros(num_envs, device=device)
        """Per env, a uniform number picking the episode's zoo member in either seat."""

    @property
    def label(self) -> str:
        """What the pool partners are called in metrics: tabular agents or zoo members."""
        return "tabular" if self.members is None else "zoo"

    def begin(self, starts: torch.Tensor) -> None:
        """New episodes in the envs ``starts``: draw their kinds and tabular agents (drawn
        for every env, kept where an episode starts: fixed shapes, fixed RNG use)."""
        n = starts.shape[0]
        kind = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        if self.members is not None:
            draw = torch.rand(n, generator=self.generator, device=starts.device)
            self.kind = torch.where(starts, kind, self.kind)
            self.draw = torch.where(starts, draw, self.draw)
            return
        if self.fixed_params is None:
            params = torch.rand(n, 5, generator=self.generator, device=starts.device)
        else:
            params = self.fixed_params.to(starts.device).expand(n, 5)
        self.kind = torch.where(starts, kind, self.kind)
        self.params = torch.where(starts.unsqueeze(-1), params, self.params)

    def partner_in(self, seat: int) -> torch.Tensor:
        """[B] bool: a pool partner plays ``seat`` (kind 1: seat 1; kind 2: seat 0)."""
        return self.kind == 2 - seat

    def act(self, seat: int, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[B] actions of the pool partners in ``seat`` (computed for every env; used where
        `partner_in` says a partner sits there). Every zoo member acts on the whole batch, so
        members with memory see every step of their envs."""
        if self.members is None:
            return memory_one_distribution(self.params, obs).sample(generator)
        members = self.members[seat]
        actions = torch.stack([m.distribution(obs).sample(generator) for m in members])
        pick = (self.draw * len(members)).long().clamp_max(len(members) - 1)
        return actions.gather(0, pick.unsqueeze(0)).squeeze(0)

    def observe(self, seat: int, action: torch.Tensor, step: Step) -> None:
        """After a step: the zoo members of ``seat`` hear their action, utility and ends."""
        if self.members is None:
            return
        utility = step.reward[seat] - step.cost[seat]
        for member in self.members[seat]:
            if hasattr(member, "observe"):
                member.observe(action, utility, step.done)

    def identity(self, seat: int) -> torch.Tensor:
        """[B, 6]: what ``seat`` is told about its co-player: [is tabular, its probabilities]
        (zeros for a learner)."""
        other = self.partner_in(1 - seat).float().unsqueeze(-1)
        return torch.cat([other, self.params * other], -1)

    def state_dict(self) -> dict[str, Any]:
        state = {"kind": self.kind, "params": self.params, "generator": self.generator.get_state()}
        if self.members is not None:  # what the members remember, so resumes are exact
            state["draw"] = self.draw
            state["members"] = [
                [m.memory_state() if hasattr(m, "memory_state") else None for m in seat]
                for seat in self.members
            ]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kind = state["kind"].to(self.kind.device)
        self.params = state["params"].to(self.params.device)
        self.generator.set_state(state["generator"])
        if self.members is not None:
            self.draw = state["draw"].to(self.draw.device)
            for seat, saved in zip(self.members, state["members"], strict=True):
                for member, memory in zip(seat, saved, strict=True):
                    if memory is not None:
                        member.load_memory_state(memory)
