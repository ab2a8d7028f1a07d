"""The IPD's pool of co-players (``train.partners``), whom recurrent learners meet.

Per env and episode, kind 0 seats both learners, kind 1 a pool partner in seat 1, kind 2
one in seat 0. A pool partner is a tabular memory-one agent with fresh U(0, 1)^5
cooperation probabilities, or with ``zoo:NAME`` a member of the zoo drawn uniformly among
those that fit the seat. ``mixed`` draws the kinds uniformly, so each learner meets the
other learner in half of its episodes and a tabular agent in the other half;
``tabular-only`` and ``zoo:NAME`` draw kinds 1 and 2 only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from srpo_core.envs.base import Step
from srpo_core.envs.ipd.memory_one import memory_one_distribution

if TYPE_CHECKING:
    from srpo_core.agents.seat import Seat
    from srpo_core.rollout import MemberGenerators

KIND_WEIGHTS = {
    "learners-only": (1.0, 0.0, 0.0),
    "mixed": (1.0, 1.0, 1.0),
    "tabular-only": (0.0, 1.0, 1.0),
    "zoo": (0.0, 1.0, 1.0),
}


class PartnerPool:
    """Who sits in each seat of each env for its current episode (see module doc). The
    batch splits into equal consecutive slices, one per generator (a population's
    members): each slice's draws come from its own generator, so a member meets the same
    partners whichever members share the batch."""

    def __init__(
        self,
        weights: tuple[float, ...],
        num_envs: int,
        device: torch.device,
        generators: list[torch.Generator],
        params: torch.Tensor | None = None,
        members: list[list[list[Seat]]] | None = None,
    ) -> None:
        self.weights = torch.tensor(weights, device=device)
        self.generators = generators
        self.width = num_envs // len(generators)
        """Envs per generator."""
        self.fixed_params = params
        """Tabular probabilities for every episode (evaluation against a probe); None:
        fresh U(0, 1)^5 per episode."""
        self.members = members
        """Zoo members (``train.partners=zoo:NAME``) instead of tabular agents: per slice,
        per seat, a copy of its own (seats with memory or generators keep them per slice)."""
        self.kind = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.params = torch.zeros(num_envs, 5, device=device)
        self.draw = torch.zeros(num_envs, device=device)
        """Per env, a uniform number picking the episode's zoo member in either seat."""
        self._kinds: torch.Tensor | None = None
        self._draws: torch.Tensor | None = None
        self._params: torch.Tensor | None = None
        """The rollout's draws [steps, B, ...] (`draw_ahead`)."""

    @property
    def label(self) -> str:
        """What the pool partners are called in metrics: tabular agents or zoo members."""
        return "tabular" if self.members is None else "zoo"

    def draw_ahead(self, steps: int) -> None:
        """Draw who would sit where in an episode starting at any of the next ``steps``
        steps, for every env (fixed shapes, fixed RNG use): each slice from its own
        generator, a few calls per rollout, nothing read back from the device. `begin`
        keeps step t's draws where an episode starts."""
        device, width = self.kind.device, self.width
        kinds, draws, params = [], [], []
        for generator in self.generators:
            kind = torch.multinomial(
                self.weights, steps * width, replacement=True, generator=generator
            )
            kinds.append(kind.view(steps, width))
            if self.members is not None:
                draws.append(torch.rand(steps, width, generator=generator, device=device))
            elif self.fixed_params is None:
                params.append(torch.rand(steps, width, 5, generator=generator, device=device))
        self._kinds = torch.cat(kinds, 1)
        self._draws = torch.cat(draws, 1) if draws else None
        self._params = torch.cat(params, 1) if params else None

    def begin(self, starts: torch.Tensor, t: int) -> None:
        """Step t of the rollout drawn ahead (`draw_ahead`): new episodes in the envs
        ``starts`` take that step's kinds and partners."""
        if self._kinds is None:
            raise RuntimeError("begin() before draw_ahead()")
        self.kind = torch.where(starts, self._kinds[t], self.kind)
        if self._draws is not None:
            self.draw = torch.where(starts, self._draws[t], self.draw)
        elif self.members is None:
            fresh = self._params[t] if self._params is not None else self.fixed_params
            fresh = fresh.to(self.params.device).expand_as(self.params)
            self.params = torch.where(starts.unsqueeze(-1), fresh, self.params)

    def partner_in(self, seat: int) -> torch.Tensor:
        """[B] bool: a pool partner plays ``seat`` (kind 1: seat 1; kind 2: seat 0)."""
        return self.kind == 2 - seat

    def _slices(self) -> list[slice]:
        return [slice(k * self.width, (k + 1) * self.width) for k in range(len(self.generators))]

    def act(self, seat: int, obs: torch.Tensor, rng: MemberGenerators) -> torch.Tensor:
        """[B] actions of the pool partners in ``seat`` (computed for every env; used where
        `partner_in` says a partner sits there), each slice's drawn from its own generator
        of ``rng``. Every zoo member acts on its slice's whole batch, so members with memory
        see every step of their envs."""
        if self.members is None:
            return rng.sample(memory_one_distribution(self.params, obs))
        out = []
        slices = zip(self._slices(), rng.generators, strict=True)
        for k, (rows, generator) in enumerate(slices):
            members = self.members[k][seat]
            actions = torch.stack([m.distribution(obs[rows]).sample(generator) for m in members])
            pick = (self.draw[rows] * len(members)).long().clamp_max(len(members) - 1)
            out.append(actions.gather(0, pick.unsqueeze(0)).squeeze(0))
        return torch.cat(out)

    def observe(self, seat: int, action: torch.Tensor, step: Step) -> None:
        """After a step: the zoo members of ``seat`` hear their action, utility and ends."""
        if self.members is None:
            return
        utility = step.reward[seat] - step.cost[seat]
        for k, rows in enumerate(self._slices()):
            for member in self.members[k][seat]:
                if hasattr(member, "observe"):
                    member.observe(action[rows], utility[rows], step.done[rows])

    def identity(self, seat: int) -> torch.Tensor:
        """[B, 6]: what ``seat`` is told about its co-player: [is tabular, its probabilities]
        (zeros for a learner)."""
        other = self.partner_in(1 - seat).float().unsqueeze(-1)
        return torch.cat([other, self.params * other], -1)

    def member_state(self, k: int) -> dict[str, Any]:
        """Slice k's part of the pool (its envs' seats and partners, its generator, and
        what its zoo members remember), as a checkpoint stores it."""
        rows = self._slices()[k]
        state = {
            "kind": self.kind[rows].clone(),
            "params": self.params[rows].clone(),
            "generator": self.generators[k].get_state(),
        }
        if self.members is not None:  # so that resumes are exact
            state["draw"] = self.draw[rows].clone()
            state["members"] = [
                [m.memory_state() if hasattr(m, "memory_state") else None for m in seat]
                for seat in self.members[k]
            ]
        return state

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """The whole pool from its slices' states (`member_state`)."""
        if len(states) != len(self.generators):
            raise ValueError("the pool's state has another number of members")
        self.kind = torch.cat([s["kind"] for s in states]).to(self.kind.device)
        self.params = torch.cat([s["params"] for s in states]).to(self.params.device)
        for generator, state in zip(self.generators, states, strict=True):
            generator.set_state(state["generator"])
        if self.members is None:
            return
        self.draw = torch.cat([s["draw"] for s in states]).to(self.draw.device)
        for seats, state in zip(self.members, states, strict=True):
            for seat, saved in zip(seats, state["members"], strict=True):
                for member, memory in zip(seat, saved, strict=True):
                    if memory is not None:
                        member.load_memory_state(memory)
