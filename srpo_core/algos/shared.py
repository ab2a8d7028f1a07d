"""Policy sharing across seats (the paper's Hanabi set-up; ``algo.share_policy = true``).

IPPO: one policy plays every trained seat, and its PPO batch is all those seats' rollouts
side by side (each seat's advantages from its own rewards and observations).

SRPO: one hero and one adversary policy (srpo-notes section 3, "N > 2 with shared
params"). In each rollout every env draws the seat the hero plays; the adversary plays the
other trained seats. The hero learns from its seat (eq. 8), with a critic that also
bootstraps at the adversary's turns; the adversary learns from the other seats (eq. 9),
each of its decisions weighted by the hero's advantage at that step of that env, negated,
with the KL taken to the shared policy on the adversary's states (the partner every seat
would otherwise have). One rollout per iteration, so env steps and hero samples coincide.

Both publish the one policy as the role ``shared`` (``RUN/shared``), which fits any seat.
"""

from __future__ import annotations

from typing import Any

import torch

from srpo_core.agents.distributions import Categorical, DiagGaussian, Distribution
from srpo_core.agents.networks import ActorCritic
from srpo_core.algos.base import Algorithm, Iteration, prefixed
from srpo_core.algos.ippo import IPPO
from srpo_core.algos.ppo import Batch, Learner, hero_update
from srpo_core.algos.srpo import adversary_update, partner_distribution
from srpo_core.errors import UserError
from srpo_core.rollout import Runner, collect
from srpo_core.seeding import sub_seed

SHARED = "shared"
STEP_KEYS = ("obs", "actions", "utility", "dones", "mask", "acting")
"""What `collect` records per seat and step (mask/acting where the env has them)."""


class SharedHeroes:
    """Mixin: one learner in every trained seat, published as the role ``shared``."""

    def make_heroes(self: Algorithm) -> dict[int, Learner]:
        seats = [i for i in range(len(self.specs)) if i not in self.fixed]
        first = self.specs[seats[0]]
        for i in seats:
            spec = self.specs[i]
            if (spec.obs_dim, spec.action_space) != (first.obs_dim, first.action_space):
                raise UserError(
                    "algo.share_policy needs the same observation size and action space in "
                    f"every trained seat ({self.agents[i]} differs from {self.agents[seats[0]]})"
                )
        return dict.fromkeys(seats, Learner(self.build_net(first), self.config.ppo))

    @property
    def shared(self: Algorithm) -> Learner:
        return next(iter(self.heroes.values()))

    @property
    def update_rng(self: Algorithm) -> torch.Generator:
        """The shared learner's update RNG (SRPO: its adversary's too)."""
        return next(iter(self.update_generators.values()))

    def roles(self: Algorithm) -> dict[str, Learner]:
        return {SHARED: self.shared}


@torch.no_grad()
def add_behaviour(
    net: ActorCritic,
    batch: Batch,
    last_obs: torch.Tensor | None,
    value_rows: torch.Tensor | None = None,
) -> Batch:
    """What PPO needs from the policy that acted: log-probs where the seat acted, values at
    ``value_rows`` (default: the acting steps) and after the rollout, for a critic. Steps
    nobody learns from are left at 0 instead of costing forward passes."""
    obs, actions, mask, acting = (
        batch["obs"],
        batch["actions"],
        batch.get("mask"),
        batch.get("acting"),
    )
    rows = (
        torch.ones(obs.shape[:2], dtype=torch.bool, device=obs.device) if acting is None else acting
    )
    dist = net.distribution(obs[rows], None if mask is None else mask[rows])
    batch["logp"] = torch.zeros(obs.shape[:2], device=obs.device)
    batch["logp"][rows] = dist.log_prob(actions[rows])
    if isinstance(dist, Categorical):
        batch["probs"] = dist.probs.mean(0)
    if net.critic_head is not None and last_obs is not None:
        value_rows = rows if value_rows is None else value_rows
        batch["values"] = torch.zeros(obs.shape[:2], device=obs.device)
        batch["values"][value_rows] = net.value(obs[value_rows])
        batch["last_value"] = net.value(last_obs)
    return batch


def pick(cond: torch.Tensor, a: Distribution, b: Distribution) -> Distribution:
    """``a`` where ``cond`` (broadcast over the leading dims), ``b`` elsewhere."""
    c = cond.unsqueeze(-1)
    if isinstance(a, Categorical):
        return Categorical(torch.where(c, a.raw, b.raw))
    return DiagGaussian(torch.where(c, a.mean, b.mean), torch.where(c, a.log_std, b.log_std))


class SharedSeat:
    """Seat ``seat`` of a rollout played by the shared policies: the hero's network, or in
    the envs where ``is_hero`` is False (SRPO) the adversary's.

    In turn-based envs the networks run only on the envs where the seat acts now: the env
    ignores the other actions and nobody learns from them, so there the distribution is
    simply uniform (a quarter of the forward passes with four players)."""

    def __init__(
        self,
        runner: Runner,
        seat: int,
        hero: ActorCritic,
        adversary: ActorCritic | None = None,
        is_hero: torch.Tensor | None = None,
    ) -> None:
        self.runner, self.seat = runner, seat
        self.hero, self.adversary, self.is_hero = hero, adversary, is_hero

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        acting = self.runner.acting
        if acting is None:  # simultaneous moves: every env's action counts
            hero = self.hero.distribution(obs, mask)
            if self.adversary is None:
                return hero
            return pick(self.is_hero, hero, self.adversary.distribution(obs, mask))
        rows = acting[self.seat]
        parts = [(self.hero, rows)]
        if self.adversary is not None:
            parts = [(self.hero, rows & self.is_hero), (self.adversary, rows & ~self.is_hero)]
        raw = torch.zeros(*obs.shape[:-1], self.hero.actor_head.out_features, device=obs.device)
        for net, where in parts:
            if bool(where.any()):
                part = net.distribution(obs[where], None if mask is None else mask[where])
                raw[where] = part.raw
        return Categorical(raw)


def split_roles(batches: list[Batch], hero_seat: torch.Tensor) -> tuple[Batch, Batch, torch.Tensor]:
    """Per-seat [T, B] records -> the hero's batch [T, B] (env b's column from seat
    ``hero_seat[b]``), the adversary's [T, B * (S - 1)] (the other seats, env by env) and
    the env of each adversary column."""
    keys = [k for k in STEP_KEYS if k in batches[0]]
    stacked = {k: torch.stack([batch[k] for batch in batches], 2) for k in keys}  # [T, B, S]
    envs = torch.arange(hero_seat.shape[0], device=hero_seat.device)
    hero = {k: v[:, envs, hero_seat] for k, v in stacked.items()}
    others = torch.arange(len(batches), device=hero_seat.device) != hero_seat.unsqueeze(1)
    adversary = {k: v[:, others] for k, v in stacked.items()}
    return hero, adversary, envs.repeat_interleave(len(batches) - 1)


class SharedIPPO(SharedHeroes, IPPO):
    """IPPO with one policy in every trained seat."""

    def iterate(self) -> Iteration:
        ppo, seats = self.config.ppo, list(self.heroes)
        # collect only records; the behaviour terms are computed below on what is learned
        players = [
            self.fixed[i] if i in self.fixed else SharedSeat(self.runner, i, self.shared.net)
            for i in range(len(self.agents))
        ]
        batches, episodes = collect(
            self.runner, players, ppo.num_steps, self.generator, frozen=range(len(self.agents))
        )
        batch = {
            k: torch.cat([batches[i][k] for i in seats], 1)
            for k in STEP_KEYS
            if k in batches[seats[0]]
        }
        last_obs = torch.cat([self.runner.obs[i] for i in seats])
        add_behaviour(self.shared.net, batch, last_obs)
        update, _ = hero_update(self.shared, batch, self.config.algo.eps, self.update_rng)
        metrics = prefixed("train/", episodes.summary(self.agents, seats))
        metrics |= prefixed(f"{SHARED}/", update)
        metrics |= self.action_metrics(seats[0], batch, f"{SHARED}/")
        samples = ppo.num_envs * ppo.num_steps
        return Iteration(metrics, env_steps=samples, hero_samples=samples)


class SharedSRPO(SharedHeroes, Algorithm):
    """SRPO with one shared hero and one shared adversary."""

    name = "srpo"

    def setup(self) -> None:
        config = self.config
        if len(self.heroes) < 2:
            raise UserError("shared SRPO needs at least two trained seats (hero and adversary)")
        self.runner = Runner(self.make_env(config.ppo.num_envs, sub_seed(config.run.seed, "env0")))
        spec = self.shared.net.spec
        net = self.build_net(self.net_spec(spec.obs_dim, spec.action_space, critic=False))
        if config.algo.adversary_init == "partner":
            source = self.shared.net.state_dict()
            net.load_state_dict({k: v for k, v in source.items() if k in net.state_dict()})
        self.adversary = Learner(net, config.ppo)

    def learners(self) -> list[Learner]:
        return [self.shared, self.adversary]

    def iterate(self) -> Iteration:
        ppo, algo, device = self.config.ppo, self.config.algo, self.device
        seats, envs = list(self.heroes), ppo.num_envs
        draw = torch.randint(len(seats), (envs,), generator=self.generator, device=device)
        seat_ids = torch.tensor(seats, device=device)
        hero_seat = seat_ids[draw]  # [B]: the seat the hero plays in each env
        players = [
            self.fixed[i]
            if i in self.fixed
            else SharedSeat(self.runner, i, self.shared.net, self.adversary.net, hero_seat == i)
            for i in range(len(self.agents))
        ]
        batches, episodes = collect(
            self.runner, players, ppo.num_steps, self.generator, frozen=range(len(self.agents))
        )
        hero, adversary, adversary_env = split_roles([batches[i] for i in seats], draw)
        # turn-based: the hero's critic bootstraps wherever the hero or the adversary acted
        acting = [batches[i]["acting"] for i in seats if "acting" in batches[i]]
        decisions = torch.stack(acting).any(0) if acting else None
        envs_idx = torch.arange(envs, device=device)
        last_obs = torch.stack([self.runner.obs[i] for i in seats], 1)[envs_idx, draw]
        add_behaviour(self.shared.net, hero, last_obs, decisions)
        add_behaviour(self.adversary.net, adversary, None)
        partner = partner_distribution(self.shared.net, adversary)  # before any update

        metrics = prefixed(f"{SHARED}/vs_adversary/", episodes.summary(self.agents, seats))
        update, advantages = hero_update(self.shared, hero, algo.eps, self.update_rng, decisions)
        metrics |= prefixed(f"{SHARED}/", update)
        adv_update = adversary_update(
            self.adversary, adversary, advantages[:, adversary_env], partner, algo, self.update_rng
        )
        metrics |= prefixed(f"{SHARED}/adversary/", adv_update)
        metrics |= self.action_metrics(seats[0], hero, f"{SHARED}/")
        samples = ppo.num_envs * ppo.num_steps
        return Iteration(metrics, env_steps=samples, hero_samples=samples)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "adversary": self.adversary.state_dict(),
            "runners": [self.runner.state_dict()],
        }

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None:
        super().load_state_dict(policies, state)
        self.adversary.load_state_dict(state["adversary"])
        self.runner.load_state_dict(state["runners"][0])
