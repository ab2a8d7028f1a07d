"""The update rules of one learner role, for every member at once: eq. (8), PPO's clipped
surrogate with an entropy bonus and the critic's regression (every IPPO agent and SRPO
hero), and eq. (9), an SRPO adversary's surrogate on the hero's negated advantages plus
its KL to the partner's policy over tau; both over PPO's epochs x minibatches, each member's
minibatch order drawn from its own generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from srpo_core.agents.distributions import Distribution
from srpo_core.agents.networks import ActorCritic
from srpo_core.config import Config, PPOSection
from srpo_core.population import layout, terms
from srpo_core.population.layout import Batch
from srpo_core.population.members import Coefficients
from srpo_core.population.optim import MemberAdam
from srpo_core.population.stacked import StackedNet
from srpo_core.population.terms import Stats

LossFn = Callable[[torch.Tensor | slice], tuple[torch.Tensor, Stats]]
"""loss_fn(rows) -> (loss summed over members, per-member stats); ``rows`` [K, m] index
each member's rows (``slice(None)``: all of them)."""


@dataclass
class Role:
    """One learner role of every member: their networks stacked, their Adams."""

    net: StackedNet
    optimizer: MemberAdam

    @classmethod
    def of(cls, nets: list[ActorCritic], coef: Coefficients) -> Role:
        """Member k's network ``nets[k]``, stacked, with an Adam of each member's
        coefficients (the critic's parts at its own rate)."""
        net = StackedNet(nets)
        rates = [coef.critic_lr if name.startswith("critic_") else coef.lr for name in net.names]
        return cls(net, MemberAdam(net.parameters(), rates, coef.adam_eps, coef.max_grad_norm))


def hero_update(
    role: Role, batch: Batch, config: Config, coef: Coefficients, rngs: list[torch.Generator]
) -> Stats:
    """Eq. (8) per member: L_CLIP + eps * entropy, plus the critic's regression. In
    turn-based batches the policy terms weigh the steps where the seat acted and the
    critic its bootstrap steps (``critic``)."""
    ppo, net = config.ppo, role.net
    advantages, returns, mask = batch["advantages"], batch["returns"], batch.get("mask")
    policy_weights, value_weights = (
        terms.as_weights(batch.get("acting")),
        terms.as_weights(batch.get("critic")),
    )
    clip = coef.clip.unsqueeze(1)

    def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
        obs = layout.take_rows(batch["obs"], idx)
        on_policy, on_value = (
            layout.take_rows(policy_weights, idx),
            layout.take_rows(value_weights, idx),
        )
        dist = net.distribution(obs, layout.take_rows(mask, idx))
        adv = layout.take_rows(advantages, idx)
        adv = terms.normalise(adv, on_policy) if ppo.norm_adv else adv
        logp = dist.log_prob(layout.take_rows(batch["actions"], idx))
        pg_loss, stats = terms.clipped_surrogate(
            logp, layout.take_rows(batch["logp"], idx), adv, clip, on_policy
        )
        old_values, target = (
            layout.take_rows(batch["values"], idx),
            layout.take_rows(returns, idx),
        )
        v_loss = terms.value_loss(net.value(obs), old_values, target, clip, ppo, on_value)
        entropy = terms.mean_over(dist.entropy(), on_policy)
        loss = pg_loss + coef.vf_coef * v_loss - coef.eps * entropy
        stats |= {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy}
        return loss.sum(), stats

    stats = optimise(role, advantages.shape[1], loss_fn, ppo, rngs)
    stats["explained_variance"] = terms.explained_variance(batch["values"], returns, value_weights)
    return stats


def adversary_update(
    role: Role,
    batch: Batch,
    partner: Distribution,
    config: Config,
    coef: Coefficients,
    rngs: list[torch.Generator],
) -> Stats:
    """Eq. (9) per member: L_CLIP on -A_hero (the hero's advantages at the batch's
    steps) + (1/tau) * KL - [eps * entropy]; turn-based, over the adversary's own
    decisions (``acting``). ``partner``: the partner's policy on the batch's states (the
    KL target), ``config.algo.kl_direction`` picks KL(phi||theta) (the paper) or
    KL(theta||phi) (the authors' RL code)."""
    ppo, algo, net = config.ppo, config.algo, role.net
    advantages = -batch["advantages"]
    weights, mask = terms.as_weights(batch.get("acting")), batch.get("mask")
    clip = coef.clip.unsqueeze(1)
    ent_coef = coef.eps if algo.adversary_entropy == "eps" else torch.zeros_like(coef.eps)

    def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
        dist = net.distribution(layout.take_rows(batch["obs"], idx), layout.take_rows(mask, idx))
        decided = layout.take_rows(weights, idx)
        adv = layout.take_rows(advantages, idx)
        adv = terms.normalise(adv, decided) if ppo.norm_adv else adv
        logp = dist.log_prob(layout.take_rows(batch["actions"], idx))
        pg_loss, stats = terms.clipped_surrogate(
            logp, layout.take_rows(batch["logp"], idx), adv, clip, decided
        )
        target = layout.take_dist(partner, idx)
        forward = algo.kl_direction == "adversary-partner"
        kl = terms.mean_over(dist.kl(target) if forward else target.kl(dist), decided)
        entropy = terms.mean_over(dist.entropy(), decided)
        loss = pg_loss + kl / coef.tau - ent_coef * entropy
        stats |= {"policy_loss": pg_loss, "kl_partner": kl, "entropy": entropy}
        return loss.sum(), stats

    return optimise(role, advantages.shape[1], loss_fn, ppo, rngs)


def optimise(
    role: Role, size: int, loss_fn: LossFn, ppo: PPOSection, rngs: list[torch.Generator]
) -> Stats:
    """PPO's epochs x minibatches, every member at once; each member's minibatch order
    from its own generator. Mean of each stat over the steps."""
    minibatch = size // ppo.minibatches
    steps: list[Stats] = []
    for _ in range(ppo.epochs):
        if ppo.minibatches == 1:
            parts: list[torch.Tensor | slice] = [slice(None)]
        else:
            orders = [torch.randperm(size, generator=g, device=g.device) for g in rngs]
            order = torch.stack(orders).to(role.net.parameters()[0].device)
            parts = list(order.split(minibatch, dim=1))
        for idx in parts:
            loss, step_stats = loss_fn(idx)
            role.optimizer.zero_grad()
            loss.backward()
            role.optimizer.clip_grads()
            role.optimizer.step()
            steps.append({k: v.detach() for k, v in step_stats.items()})
    return {key: terms.mean_of([s[key] for s in steps]) for key in steps[0]}
