"""A population's tensors in their two layouts, and rows taken per member.

Env layout: [T, K * n, ...], as envs and `rollout.collect` produce them (member-major
envs). Member layout: [K, T * n, ...], each member's rows in the order its own flattened
batch would have them (`stacked.to_members`), as the batched updates take them.
"""

from __future__ import annotations

import torch

from srpo_core.distributions import Categorical, DiagGaussian, Distribution
from srpo_core.population.stacked import to_members

Batch = dict[str, torch.Tensor]
"""Rollout tensors by name: per seat [T, K * n, ...] (env layout), per learner [K, T * n,
...] (member layout)."""
STEP_KEYS = ("obs", "actions", "utility", "dones", "mask", "acting")
"""What `rollout.collect` records per seat and step (mask/acting where the env has them)."""


def member_rows(x: torch.Tensor, members: int) -> torch.Tensor:
    """[T, K * n] -> [K, T * n] (member layout; see `to_members`)."""
    return to_members(x.unsqueeze(-1), members).squeeze(-1)


def env_layout(x: torch.Tensor, members: int, steps: int) -> torch.Tensor:
    """[K, T * n] -> [T, K * n]."""
    return x.reshape(members, steps, -1).transpose(0, 1).reshape(steps, -1)


def side_by_side(parts: list[torch.Tensor], members: int) -> torch.Tensor:
    """Seats' [T, K * n, ...] side by side: [T, K * S * n, ...], each member's envs seat by
    seat (a shared policy's rows where every seat acts at every step)."""
    split = [part.unflatten(1, (members, -1)) for part in parts]
    return torch.stack(split, 2).flatten(1, 3)


def turn_rows(seats: list[Batch]) -> Batch:
    """Turn-based seats' [T, B, ...] -> at each step and env the row of the seat that acted
    (``acting``: whether one did): a shared policy's rows, T * B rather than S * T * B of
    which all but one in S would weigh 0."""
    acting = torch.stack([seat["acting"] for seat in seats])  # [S, T, B]
    if bool((acting.sum(0) > 1).any()):
        raise ValueError("two seats of one policy acted at once; populations need turns")
    index = torch.arange(len(seats), device=acting.device).view(-1, 1, 1)
    turn = (acting.long() * index).sum(0, keepdim=True)  # [1, T, B]
    out = {}
    for key in seats[0]:
        stacked = torch.stack([seat[key] for seat in seats])
        at = turn.view(*turn.shape, *[1] * (stacked.dim() - 3)).expand(1, *stacked.shape[1:])
        out[key] = stacked.gather(0, at).squeeze(0)
    out["acting"] = acting.any(0)
    return out


def take_rows(x: torch.Tensor | None, idx: torch.Tensor | slice) -> torch.Tensor | None:
    """Rows ``idx`` [K, m] of each member from [K, N, ...] (a slice: all of them)."""
    if x is None or isinstance(idx, slice):
        return x
    if x.dim() == 2:
        return x.gather(1, idx)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def member_dist(dist: Distribution, k: int, rows: torch.Tensor) -> Distribution:
    """Member k's ``rows`` (bool [m]) of a [K, m] distribution, as a [1, count] one."""
    if isinstance(dist, Categorical):
        return Categorical(dist.raw[k][rows].unsqueeze(0))
    return DiagGaussian(dist.mean[k][rows].unsqueeze(0), dist.log_std[k][rows].unsqueeze(0))


def take_dist(dist: Distribution, idx: torch.Tensor | slice) -> Distribution:
    if isinstance(dist, Categorical):
        return Categorical(take_rows(dist.raw, idx))
    return DiagGaussian(take_rows(dist.mean, idx), take_rows(dist.log_std, idx))


def decision_steps(batches: list[Batch]) -> torch.Tensor | None:
    """Turn-based: the [T, B] steps where one of these seats (a hero and its adversaries)
    acted; None in simultaneous-move envs."""
    if "acting" not in batches[0]:
        return None
    return torch.stack([batch["acting"] for batch in batches]).any(0)


def split_roles(batches: list[Batch], hero_seat: torch.Tensor) -> tuple[Batch, Batch, torch.Tensor]:
    """Per-seat [T, B] records -> the hero's batch [T, B] (env b's column from seat
    ``hero_seat[b]``, an index into ``batches``), the adversary's [T, B * (S - 1)] (the
    other seats, env by env) and the env of each adversary column."""
    keys = [k for k in STEP_KEYS if k in batches[0]]
    stacked = {k: torch.stack([batch[k] for batch in batches], 2) for k in keys}  # [T, B, S]
    envs = torch.arange(hero_seat.shape[0], device=hero_seat.device)
    hero = {k: v[:, envs, hero_seat] for k, v in stacked.items()}
    others = torch.arange(len(batches), device=hero_seat.device) != hero_seat.unsqueeze(1)
    adversary = {k: v[:, others] for k, v in stacked.items()}
    return hero, adversary, envs.repeat_interleave(len(batches) - 1)


def pick(cond: torch.Tensor, a: Distribution, b: Distribution) -> Distribution:
    """``a`` where ``cond`` (broadcast over the leading dims), ``b`` elsewhere."""
    c = cond.unsqueeze(-1)
    if isinstance(a, Categorical):
        return Categorical(torch.where(c, a.raw, b.raw))
    return DiagGaussian(torch.where(c, a.mean, b.mean), torch.where(c, a.log_std, b.log_std))
