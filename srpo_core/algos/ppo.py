"""The PPO core: GAE, the clipped surrogate, the value loss and the minibatch loop.

Shared by IPPO agents, SRPO heroes and SRPO adversaries; what differs between them is only
the loss handed to `Learner.optimise`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from torch import nn

from srpo_core.agents.networks import ActorCritic
from srpo_core.config import PPOSection

Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over [T, B] tensors.

    ``dones[t]`` marks that step t ended its episode, so nothing is bootstrapped across it:
    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t),
    A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}.  Returns (advantages, returns).
    """
    not_done = 1.0 - dones.float()
    next_values = torch.cat([values[1:], last_value.unsqueeze(0)])
    deltas = rewards + gamma * next_values * not_done - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's loss -E[min(r A, clip(r, 1-c, 1+c) A)], r = pi/pi_old; plus approx KL and
    clip fraction (CleanRL's estimators) as diagnostics."""
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    loss = -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
    with torch.no_grad():
        stats = {
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clipfrac": ((ratio - 1).abs() > clip).float().mean(),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
    clip_vloss: bool,
) -> torch.Tensor:
    loss = (values - returns) ** 2
    if clip_vloss:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss.mean()


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    var = returns.var()
    return float("nan") if var == 0 else float(1 - (returns - values).var() / var)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if x.numel() > 1 else x


class Learner:
    """A network, its Adam optimiser and PPO's epochs x minibatches loop."""

    def __init__(self, net: ActorCritic, ppo: PPOSection) -> None:
        self.net = net
        self.ppo = ppo
        self.optimizer = torch.optim.Adam(net.parameters(), lr=ppo.lr, eps=ppo.adam_eps, fused=True)

    def optimise(self, size: int, loss_fn: LossFn, generator: torch.Generator) -> dict[str, float]:
        """Run the loss over shuffled minibatch indices; mean of each reported stat."""
        ppo, device = self.ppo, next(self.net.parameters()).device
        minibatch = size // ppo.minibatches
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for _ in range(ppo.epochs):
            order = torch.randperm(size, generator=generator, device=generator.device).to(device)
            for start in range(0, size, minibatch):
                loss, stats = loss_fn(order[start : start + minibatch])
                self.optimizer.zero_grad()
                loss.backward()
                if ppo.max_grad_norm > 0:
                    nn.utils.clip_grad_norm_(self.net.parameters(), ppo.max_grad_norm)
                self.optimizer.step()
                for key, value in stats.items():
                    sums[key] += float(value)
                count += 1
        return {key: value / count for key, value in sums.items()}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def hero_update(
    learner: Learner, batch: Batch, ent_coef: float, generator: torch.Generator
) -> tuple[dict[str, float], torch.Tensor]:
    """Eq. (8): maximise L_CLIP + eps * entropy, plus the critic's regression.

    Returns the metrics and the [T, B] advantages, which SRPO's adversary reuses negated.
    """
    ppo, net = learner.ppo, learner.net
    advantages, returns = gae(
        batch["utility"],
        batch["values"],
        batch["dones"],
        batch["last_value"],
        ppo.gamma,
        ppo.gae_lambda,
    )
    flat = flatten(batch)
    flat_adv, flat_ret = advantages.reshape(-1), returns.reshape(-1)
    mask = flat.get("mask")

    def loss_fn(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs = flat["obs"][idx]
        dist = net.distribution(obs, None if mask is None else mask[idx])
        adv = normalise(flat_adv[idx]) if ppo.norm_adv else flat_adv[idx]
        logp = dist.log_prob(flat["actions"][idx])
        pg_loss, stats = clipped_surrogate(logp, flat["logp"][idx], adv, ppo.clip)
        v_loss = value_loss(
            net.value(obs), flat["values"][idx], flat_ret[idx], ppo.clip, ppo.clip_vloss
        )
        entropy = dist.entropy().mean()
        loss = pg_loss + ppo.vf_coef * v_loss - ent_coef * entropy
        stats |= {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy}
        return loss, {k: v.detach() for k, v in stats.items()}

    metrics = learner.optimise(flat_adv.numel(), loss_fn, generator)
    metrics["explained_variance"] = explained_variance(flat["values"], flat_ret)
    return metrics, advantages


def flatten(batch: Batch) -> Batch:
    """[T, B, ...] rollout tensors -> [T * B, ...]; per-rollout summaries are dropped."""
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in batch.items() if k not in PER_ROLLOUT}


PER_ROLLOUT = ("last_value", "probs")
