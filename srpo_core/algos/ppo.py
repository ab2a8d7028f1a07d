"""The PPO core of one network: GAE (also for turn-based seats) and the clipped
surrogate, which the population trainers and the LLM debate use (the populations' batched
terms, one value per member, are `srpo_core.population.terms`).

Turn-based envs: every player receives the shared reward at every step, and a seat's
critic bootstraps only at its decision steps (`turn_gae`), so the rewards of the other
players' turns accumulate into the return of the seat's latest decision before them.
"""

from __future__ import annotations

import torch


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
    # one fused op per step: the loop is the rollout's serial part, so its overhead counts
    decay = (gamma * lam * not_done).unbind(0)
    running = torch.zeros_like(last_value)
    advantages = []
    for delta, keep in zip(reversed(deltas.unbind(0)), reversed(decay), strict=True):
        running = torch.addcmul(delta, keep, running)
        advantages.append(running)
    advantages = torch.stack(advantages[::-1])
    return advantages, advantages + values


def turn_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    bootstrap: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE for a seat that decides only at some steps (``bootstrap`` [T, B] bool).

    As lambda-returns: G_t = r_t + gamma * (1 - done_t) * X_{t+1}, where X_{t+1} is
    (1 - lam) V_{t+1} + lam G_{t+1} when t + 1 is a decision step (plain GAE) and G_{t+1}
    when it is not, so the value of a step where the seat does not decide is never used
    and the rewards of those steps flow, discounted per env step, into the return of the
    seat's previous decision. X_T is ``last_value`` (the critic on the seat's observation
    after the rollout). With every step a decision step this is `gae`. Returns
    (advantages, returns); only the decision steps' entries are meaningful.
    """
    not_done = 1.0 - dones.float()
    returns = torch.zeros_like(rewards)
    following = last_value
    for t in reversed(range(rewards.shape[0])):
        returns[t] = rewards[t] + gamma * not_done[t] * following
        blended = values[t] + lam * (returns[t] - values[t])
        following = torch.where(bootstrap[t], blended, returns[t])
    return returns - values, returns


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


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    var = returns.var()
    return float("nan") if var == 0 else float(1 - (returns - values).var() / var)
