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

from srpo_core.agents.networks import ActorCritic
from srpo_core.config import Config, PPOSection
from srpo_core.distributions import Distribution
from srpo_core.population import layout, terms
from srpo_core.population.layout import Batch
from srpo_core.population.members import Coefficients
from srpo_core.population.optim import MemberAdam
from srpo_core.population.stacked import StackedNet
from srpo_core.population.stacked_recurrent import StackedRecurrentNet
from srpo_core.population.terms import Stats

LossFn = Callable[[torch.Tensor | slice], tuple[torch.Tensor, Stats]]
"""loss_fn(rows) -> (loss summed over members, per-member stats); ``rows`` [K, m] index
each member's rows (``slice(None)``: all of them)."""


@dataclass
class Role:
    """One learner role of every member: their networks stacked, their Adams."""

    net: StackedNet | StackedRecurrentNet
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
    turn-based batches the policy terms take the steps where the seat acted
    (`policy_terms`) and the critic weighs its bootstrap steps (``critic``)."""
    ppo, net = config.ppo, role.net
    advantages, returns = batch["advantages"], batch["returns"]
    value_weights = terms.as_weights(batch.get("critic"))
    clip = coef.clip.unsqueeze(1)

    def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
        obs = layout.take_rows(batch["obs"], idx)
        rows = {key: layout.take_rows(batch.get(key), idx) for key in POLICY_KEYS}
        decided = layout.take_rows(batch.get("acting"), idx)
        stats = policy_terms(net, rows | {"obs": obs}, decided, coef.clip, ppo.norm_adv)
        old_values, target, on_value = (
            layout.take_rows(batch["values"], idx),
            layout.take_rows(returns, idx),
            layout.take_rows(value_weights, idx),
        )
        v_loss = terms.value_loss(net.value(obs), old_values, target, clip, ppo, on_value)
        stats["value_loss"] = v_loss
        loss = stats["policy_loss"] + coef.vf_coef * v_loss - coef.eps * stats["entropy"]
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
    ent_coef = coef.eps if algo.adversary_entropy == "eps" else torch.zeros_like(coef.eps)
    forward = algo.kl_direction == "adversary-partner"

    def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
        rows = {key: layout.take_rows(batch.get(key), idx) for key in POLICY_KEYS}
        rows |= {"obs": layout.take_rows(batch["obs"], idx)}
        rows["advantages"] = layout.take_rows(advantages, idx)
        decided = layout.take_rows(batch.get("acting"), idx)
        target = layout.take_dist(partner, idx)
        stats = policy_terms(net, rows, decided, coef.clip, ppo.norm_adv, target, forward)
        loss = stats["policy_loss"] + stats["kl_partner"] / coef.tau - ent_coef * stats["entropy"]
        return loss.sum(), stats

    return optimise(role, advantages.shape[1], loss_fn, ppo, rngs)


POLICY_KEYS = ("actions", "logp", "advantages", "mask")
"""What the policy terms read of a learner's batch, besides its observations."""


def policy_terms(
    net: StackedNet,
    rows: dict[str, torch.Tensor | None],
    decided: torch.Tensor | None,
    clip: torch.Tensor,
    norm_adv: bool,
    partner: Distribution | None = None,
    forward_kl: bool = True,
) -> Stats:
    """A minibatch's policy terms per member, [K] each: the clipped surrogate's loss
    (``policy_loss``, with ``approx_kl`` and ``clipfrac``), the ``entropy`` and, given the
    ``partner``'s distribution on the same rows, ``kl_partner`` (KL(pi || partner) with
    ``forward_kl``, else KL(partner || pi)). ``rows``: obs, actions, logp, advantages
    (and mask) [K, m, ...]; advantages normalised per member with ``norm_adv``.

    Turn-based (``decided`` [K, m]): each member's own decisions only, run through its
    own slice of the stacked network (`StackedNet.member_distribution`), so no forward
    pass is spent on steps where it did not act and nothing it computes has a shape that
    depends on the other members; a member without a decision in the minibatch adds 0."""
    if decided is None:
        dist = net.distribution(rows["obs"], rows["mask"])
        return _terms(dist, rows, clip.unsqueeze(1), norm_adv, partner, forward_kl)
    per_member: list[Stats] = []
    for k in range(net.members):
        own = decided[k]
        mine = {key: _own(value, k, own) for key, value in rows.items()}
        if not mine["actions"].shape[1]:
            per_member.append({})
            continue
        mask = None if mine["mask"] is None else mine["mask"][0]
        dist = net.member_distribution(k, mine["obs"][0], mask)
        target = None if partner is None else layout.member_dist(partner, k, own)
        clip_k = clip[k : k + 1].unsqueeze(1)
        per_member.append(_terms(dist, mine, clip_k, norm_adv, target, forward_kl))
    keys = ["policy_loss", "approx_kl", "clipfrac", "entropy"] + (["kl_partner"] if partner else [])
    zero = torch.zeros(1, device=decided.device)
    return {key: torch.cat([stats.get(key, zero) for stats in per_member]) for key in keys}


def _own(value: torch.Tensor | None, k: int, rows: torch.Tensor) -> torch.Tensor | None:
    """Member k's ``rows`` (bool [m]) of a [K, m, ...] tensor, as [1, count, ...]."""
    return None if value is None else value[k][rows].unsqueeze(0)


def _terms(
    dist: Distribution,
    rows: dict[str, torch.Tensor | None],
    clip: torch.Tensor,
    norm_adv: bool,
    partner: Distribution | None,
    forward_kl: bool,
) -> Stats:
    """`policy_terms` over every row of [K', m] rows (K' members, or one member's own)."""
    adv = rows["advantages"]
    adv = terms.normalise(adv, None) if norm_adv else adv
    logp = dist.log_prob(rows["actions"])
    loss, stats = terms.clipped_surrogate(logp, rows["logp"], adv, clip, None)
    stats |= {"policy_loss": loss, "entropy": terms.mean_over(dist.entropy(), None)}
    if partner is not None:
        kl = dist.kl(partner) if forward_kl else partner.kl(dist)
        stats["kl_partner"] = terms.mean_over(kl, None)
    return stats


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
            if loss.requires_grad:  # not when no member decided anywhere in the minibatch
                loss.backward()
            role.optimizer.fill_missing_grads()
            role.optimizer.clip_grads()
            role.optimizer.step()
            steps.append({k: v.detach() for k, v in step_stats.items()})
    return {key: terms.mean_of([s[key] for s in steps]) for key in steps[0]}
