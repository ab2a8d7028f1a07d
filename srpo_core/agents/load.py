"""Rebuild a registered policy (trained network or scripted heuristic) to seat it anywhere."""

from __future__ import annotations

from typing import Any

import torch

from srpo_core import checkpoints
from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.agents.scripted import CATALOGUE
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.rollout import Seat


def load_policy(
    registry: Registry, ref: str, *, step: int | None = None, device: str = "cpu"
) -> ActorCritic:
    """A trained policy (`RUN/role`) at its latest checkpoint, or at ``step``."""
    info = registry.get_policy(ref)
    if info.kind != "trained":
        raise UserError(f"policy {ref} is {info.kind}, not a trained network")
    saved = registry.checkpoints(info.run_id)
    if step is not None:
        saved = [c for c in saved if c.step == step]
    if not saved:
        at = f" at step {step}" if step is not None else ""
        raise UserError(f"run {info.run_id} has no checkpoint{at}")
    state = checkpoints.from_bytes(registry.read_checkpoint(saved[-1]))
    net = ActorCritic(NetSpec.from_dict(info.spec["net"]))
    net.load_state_dict(state["policies"][info.role])
    return net.to(torch.device(device)).eval().requires_grad_(False)


def load_seat(
    registry: Registry | None,
    ref: str,
    *,
    env_config: Any,
    seat: str,
    obs_dim: int,
    device: torch.device,
) -> Seat:
    """The policy ``ref`` for ``seat`` of an env, checked to fit it: same env family and the
    seat's observation size. Built-in scripted policies are registered on first use (when
    there is a registry)."""
    if ref.startswith("scripted:"):
        name = ref.removeprefix("scripted:")
        item = CATALOGUE.get(name)
        if item is None:
            known = ", ".join(f"scripted:{k}" for k in CATALOGUE)
            raise UserError(f"unknown scripted policy '{ref}' (known: {known})")
        if item.env != env_config.name or not seat.startswith(item.seat):
            raise UserError(f"{ref} plays the {item.env} {item.seat}, not the {seat} seat")
        policy = item.build(env_config)
        if registry is not None:
            spec = {"name": name, "seat": item.seat, "params": item.params}
            registry.register_policy(
                run_id=None, role=name.split("/", 1)[1], env=item.env, kind="scripted", spec=spec
            )
        return policy
    if registry is None:
        raise UserError(f"loading {ref} needs a registry")
    info = registry.get_policy(ref)
    if info.env != env_config.name:
        raise UserError(f"policy {ref} was trained on {info.env}, not {env_config.name}")
    net = load_policy(registry, ref, device=str(device))
    if net.spec.obs_dim != obs_dim:
        raise UserError(
            f"policy {ref} expects {net.spec.obs_dim} observations; seat {seat} gives {obs_dim}"
        )
    return net
