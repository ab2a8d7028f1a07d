"""Batched PPO terms: [K, N] rows in, one value per member [K] out.

Each member's mean runs over its own rows, or with 0/1 weights over the rows that count
(turn-based envs: a seat's own decisions), so that members with different numbers of such
rows keep tensors of one shape. Nothing reduces across members in one op whose order could
depend on K (`mean_of` adds member tensors one by one).
"""

from __future__ import annotations

import torch

from srpo_core.distributions import Distribution
from srpo_core.population.layout import Batch
from srpo_core.population.stacked import StackedNet

Stats = dict[str, torch.Tensor]
"""Per-member statistics: name -> [K]."""


@torch.no_grad()
def partner_target(net: StackedNet, batch: Batch) -> Distribution:
    """A partner's policy on an adversary's states, under its masks: the KL target."""
    return net.distribution(batch["obs"], batch.get("mask")).frozen()


def mean_of(values: list[torch.Tensor]) -> torch.Tensor:
    """The mean of [K] tensors, added one by one (a reduction over a stacked [S, K] table
    adds in another order with one member than with many)."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total / len(values)


def per_member_metrics(stats: Stats) -> list[dict[str, float]]:
    """[K] tensors -> one metrics dict per member, in one transfer (NaN, where a member
    had nothing to report, is left out of its dict)."""
    keys = list(stats)
    table = torch.stack([stats[k].float().to("cpu") for k in keys]).T.tolist()
    return [{k: v for k, v in zip(keys, row, strict=True) if v == v} for row in table]


def as_weights(rows: torch.Tensor | None) -> torch.Tensor | None:
    """The rows [K, N] that count (bool) as 0/1 weights; None: all of them."""
    return None if rows is None else rows.float()


def mean_over(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Each member's mean over its rows, [K, N, ...] -> [K, ...]; with ``weights`` [K, N],
    over its weighted rows (0 where it has none, as PPO counts a missing stat)."""
    if weights is None:
        return x.mean(1)
    w = weights.reshape(*weights.shape, *[1] * (x.dim() - 2))
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def weighted_var(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Each member's unbiased variance over its (weighted) rows, [K, N] -> [K]."""
    if weights is None:
        return x.var(1)
    deviation = x - mean_over(x, weights).unsqueeze(1)
    return (deviation.square() * weights).sum(1) / (weights.sum(1) - 1)


def normalise(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Advantages normalised per member over its (weighted) rows; fewer than two rows are
    left as they are."""
    if weights is None:
        if x.shape[1] < 2:
            return x
        return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-8)
    mean = mean_over(x, weights).unsqueeze(1)
    std = weighted_var(x, weights).sqrt().unsqueeze(1)
    return torch.where(weights.sum(1, keepdim=True) > 1, (x - mean) / (std + 1e-8), x)


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip: torch.Tensor,
    weights: torch.Tensor | None,
) -> tuple[torch.Tensor, Stats]:
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = mean_over(-torch.min(ratio * advantages, clipped * advantages), weights)
    with torch.no_grad():
        stats = {
            "approx_kl": mean_over((ratio - 1) - log_ratio, weights),
            "clipfrac": mean_over(((ratio - 1).abs() > clip).float(), weights),
        }
    return loss, stats


def value_loss(values, old_values, returns, clip, ppo, weights) -> torch.Tensor:
    loss = (values - returns) ** 2
    if ppo.clip_vloss:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * mean_over(loss, weights)


def explained_variance(
    values: torch.Tensor, returns: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    var = weighted_var(returns, weights)
    out = 1 - weighted_var(returns - values, weights) / var
    return torch.where(var == 0, torch.full_like(out, float("nan")), out)
