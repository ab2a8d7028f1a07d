"""SRPO (srpo-notes section 3): PPO where each agent trains against its own adversary.

Per iteration, for each agent i:
1. roll out hero theta_i with adversary phi_i in every partner seat -> D_i;
2. hero advantages from its own critic on D_i;
3. hero:      maximise L_CLIP(theta_i; D_i) + eps * H(theta_i)                      (eq. 8)
   adversary: maximise -L_CLIP(hero advantages, phi_i's own ratio)
                       - (1/tau) * KL(phi_i || theta_-i) on the states of D_i        (eq. 9)
   with theta_-i the partner's *current* policy (evaluated before this iteration's
   updates), the KL exact from logits. Heroes never play each other during training.

In turn-based envs an adversary learns from its own turns: its action at step t gets the
hero's advantage at t (the hero's critic bootstraps at the adversaries' turns too, so that
advantage exists), negated, and the KL is taken on the states where it decided.
"""

from __future__ import annotations

from typing import Any

import torch

from srpo_core.agents.distributions import Distribution
from srpo_core.agents.networks import ActorCritic
from srpo_core.algos.base import Algorithm, Iteration, prefixed
from srpo_core.algos.ppo import (
    Batch,
    Learner,
    clipped_surrogate,
    flatten,
    hero_update,
    normalise,
    own_decisions,
)
from srpo_core.config import AlgoSection
from srpo_core.rollout import Runner, collect
from srpo_core.seeding import sub_seed


def adversary_update(
    learner: Learner,
    batch: Batch,
    hero_advantages: torch.Tensor,
    partner: Distribution,
    algo: AlgoSection,
    generator: torch.Generator,
) -> dict[str, float]:
    """Eq. (9) as a loss to minimise: L_CLIP on -A_hero + (1/tau) * KL - [eps * entropy].

    ``partner`` is the partner policy's distribution on the adversary seat's observations
    where it decided (flattened like the batch, as `partner_distribution`);
    ``algo.kl_direction`` picks KL(phi||theta) (paper) or KL(theta||phi) (the authors' RL
    code).
    """
    ppo, net = learner.ppo, learner.net
    flat = own_decisions(flatten(batch) | {"advantages": -hero_advantages.reshape(-1)})
    advantages = flat["advantages"]
    ent_coef = algo.eps if algo.adversary_entropy == "eps" else 0.0
    mask = flat.get("mask")

    def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dist = net.distribution(flat["obs"][idx], None if mask is None else mask[idx])
        adv = normalise(advantages[idx]) if ppo.norm_adv else advantages[idx]
        logp = dist.log_prob(flat["actions"][idx])
        pg_loss, stats = clipped_surrogate(logp, flat["logp"][idx], adv, ppo.clip)
        target = partner[idx]
        kl = dist.kl(target) if algo.kl_direction == "adversary-partner" else target.kl(dist)
        kl = kl.mean()
        entropy = dist.entropy().mean()
        loss = pg_loss + kl / algo.tau - ent_coef * entropy
        stats |= {"policy_loss": pg_loss, "kl_partner": kl, "entropy": entropy}
        return loss, {k: v.detach() for k, v in stats.items()}

    return learner.optimise(advantages.numel(), loss_fn, generator)


@torch.no_grad()
def partner_distribution(partner: ActorCritic, batch: Batch) -> Distribution:
    """The partner policy on an adversary seat's states (where it decided): the KL target."""
    flat = own_decisions(flatten(batch))
    return partner.distribution(flat["obs"], flat.get("mask")).frozen()


def decision_steps(batches: list[Batch]) -> torch.Tensor | None:
    """Turn-based: the [T, B] steps where one of these seats (a hero and its adversaries)
    acted; None in simultaneous-move envs."""
    if "acting" not in batches[0]:
        return None
    return torch.stack([batch["acting"] for batch in batches]).any(0)


class SRPO(Algorithm):
    name = "srpo"

    def setup(self) -> None:
        config, seed = self.config, self.config.run.seed
        # adversaries[i][j]: hero i's adversary in partner seat j (an actor, no critic).
        # Partners are the other trained seats; fixed seats (opponents) keep their policy.
        self.adversaries = {
            i: {j: self.make_adversary(j) for j in self.heroes if j != i} for i in self.heroes
        }
        self.runners = {
            i: Runner(self.make_env(config.ppo.num_envs, sub_seed(seed, f"env{i}")))
            for i in self.heroes
        }

    def make_adversary(self, partner: int) -> Learner:
        spec = self.specs[partner]
        net = self.build_net(self.net_spec(spec.obs_dim, spec.action_space, critic=False))
        if self.config.algo.adversary_init == "partner":
            source = self.heroes[partner].net.state_dict()
            net.load_state_dict({k: v for k, v in source.items() if k in net.state_dict()})
        return Learner(net, self.config.ppo)

    def learners(self) -> list[Learner]:
        adversaries = [a for advs in self.adversaries.values() for a in advs.values()]
        return [*self.heroes.values(), *adversaries]

    @torch.no_grad()
    def partner_target(self, partner: int, batch: Batch) -> Distribution:
        """Partner ``partner``'s policy on the adversary seat's states: the KL target."""
        return partner_distribution(self.heroes[partner].net, batch)

    def adversary_prefix(self, hero: int, partner: int) -> str:
        solo = len(self.adversaries[hero]) == 1
        return f"{self.agents[hero]}/adversary/" + ("" if solo else f"{self.agents[partner]}/")

    def iterate(self) -> Iteration:
        ppo, algo = self.config.ppo, self.config.algo
        rollouts = {}
        for i, runner in self.runners.items():
            seats = self.seats({j: adversary.net for j, adversary in self.adversaries[i].items()})
            rollouts[i] = collect(runner, seats, ppo.num_steps, self.generator, self.fixed)
        partners = {  # the partners' current policies, before anyone updates
            i: {j: self.partner_target(j, rollouts[i][0][j]) for j in advs}
            for i, advs in self.adversaries.items()
        }

        def update(i: int) -> dict[str, float]:
            """Hero i and its adversaries learn from rollout i (its own RNG throughout)."""
            agent, (batches, episodes) = self.agents[i], rollouts[i]
            rng = self.update_generators[i]
            out = prefixed(f"{agent}/vs_adversary/", episodes.summary(self.agents, [i]))
            bootstrap = decision_steps([batches[j] for j in (i, *self.adversaries[i])])
            hero = self.heroes[i]
            metrics, advantages = hero_update(hero, batches[i], algo.eps, rng, bootstrap)
            out |= prefixed(f"{agent}/", metrics)
            out |= self.action_metrics(i, batches[i], f"{agent}/")
            for j, adversary in self.adversaries[i].items():
                adv_update = adversary_update(
                    adversary, batches[j], advantages, partners[i][j], algo, rng
                )
                prefix = self.adversary_prefix(i, j)
                out |= prefixed(prefix, adv_update)
                out |= self.action_metrics(j, batches[j], prefix)
            return out

        metrics: dict[str, float] = {}
        for out in self.per_hero(update).values():
            metrics |= out
        samples = ppo.num_envs * ppo.num_steps
        return Iteration(metrics, env_steps=samples * len(self.heroes), hero_samples=samples)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "adversaries": {
                i: {j: learner.state_dict() for j, learner in advs.items()}
                for i, advs in self.adversaries.items()
            },
            "runners": {i: runner.state_dict() for i, runner in self.runners.items()},
        }

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None:
        super().load_state_dict(policies, state)
        for i, advs in self.adversaries.items():
            for j, learner in advs.items():
                learner.load_state_dict(state["adversaries"][i][j])
        for i, runner in self.runners.items():
            runner.load_state_dict(state["runners"][i])
