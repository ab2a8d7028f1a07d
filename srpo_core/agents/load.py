"""Rebuild a registered policy from its spec and a checkpoint, to seat it anywhere."""

from __future__ import annotations

import torch

from srpo_core import checkpoints
from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.errors import UserError
from srpo_core.registry import Registry


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
    state = checkpoints.from_bytes(registry.read_checkpoint(saved[-1]), device)
    net = ActorCritic(NetSpec.from_dict(info.spec["net"]))
    net.load_state_dict(state["policies"][info.role])
    return net.to(torch.device(device)).eval().requires_grad_(False)
