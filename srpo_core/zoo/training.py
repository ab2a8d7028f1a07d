"""What training needs from zoos: co-players drawn from one, and the rule that a held-out
zoo's policies are never training partners."""

from __future__ import annotations

from typing import Any

import torch

from srpo_core.agents.seat import Seat
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_seat, playable_seats
from srpo_core.registry import (
    NotFoundError,
    Registry,
)
from srpo_core.zoo.games import config_hash, env_values
from srpo_core.zoo.pinning import Pinned, check_pinned


def refuse_held_out(registry: Registry, ref: str, use: str) -> None:
    """Training must never meet a held-out partner: that would leak the test set."""
    try:
        resolved = registry.get_policy(ref).id
    except NotFoundError:
        return  # not registered yet, so in no zoo
    zoos = registry.held_out_zoos(resolved)
    if zoos:
        raise UserError(
            f"policy {resolved} is in held-out zoo {zoos[0]!r}; it cannot be used as {use}"
        )


def partner_seats(
    registry: Registry, name: str, env_config: Any, env: Any, device: torch.device
) -> list[list[Seat]]:
    """Every member of zoo ``name`` loaded into each seat of ``env`` it can sit in, one
    list per seat: the co-players of ``train.partners=zoo:NAME``. Refuses a held-out zoo,
    a zoo of another env configuration and a seat no member can fill."""
    zoo = registry.get_zoo(name)
    if zoo.held_out:
        raise UserError(f"zoo {name!r} is held out; training against it would leak the test set")
    if zoo.env_config_hash != config_hash(env_values(env_config)):
        raise UserError(f"zoo {name!r} was built for another {zoo.env} configuration")
    seats: list[list[Seat]] = []
    for index, seat in enumerate(env.agents):
        members = []
        for member in zoo.members:
            if seat not in playable_seats(registry.get_policy(member.policy_ref), env.agents):
                continue
            pinned = Pinned(member.policy_ref, member.step, member.sha256)
            check_pinned(registry, pinned)
            members.append(
                load_seat(
                    registry,
                    member.policy_ref,
                    env_config=env_config,
                    seat=seat,
                    obs_dim=env.obs_dims[index],
                    device=device,
                    step=member.step,
                    action_space=env.action_spaces[index],
                )
            )
        if not members:
            raise UserError(f"no member of zoo {name!r} can sit in seat {seat}")
        seats.append(members)
    return seats
