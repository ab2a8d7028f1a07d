"""Rebuild a registered policy (trained network, scripted heuristic or uniform random) to seat
it anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from srpo_core import checkpoints
from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.agents.random_policy import UniformPolicy
from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSeat, RecurrentSpec
from srpo_core.agents.scripted import CATALOGUE
from srpo_core.agents.seat import Seat
from srpo_core.envs.base import ActionSpace, BatchedEnv
from srpo_core.envs.family import Scripted
from srpo_core.errors import UserError
from srpo_core.registry import CheckpointInfo, PolicyInfo, Registry


def load_policy(
    registry: Registry, ref: str, *, step: int | None = None, device: str = "cpu"
) -> ActorCritic | RecurrentActorCritic:
    """A trained network (`RUN/role`) at its latest checkpoint, or at ``step``; refused
    (UserError) when the checkpoint's weights do not fit the network of its spec."""
    info = registry.get_policy(ref)
    if info.kind != "trained":
        raise UserError(f"policy {ref} is {info.kind}, not a trained network")
    if "net" not in info.spec:
        raise UserError(f"policy {ref} is not a network policy (env {info.env})")
    checkpoint = _checkpoint(registry, info, step)
    state = checkpoints.from_bytes(registry.read_checkpoint(checkpoint))
    label = f"checkpoint of run {info.run_id} at step {checkpoint.step}"
    checkpoints.check_policy_state(state, info.spec, info.role, label)
    spec = info.spec["net"]
    if spec.get("kind") == "gru":
        net: ActorCritic | RecurrentActorCritic = RecurrentActorCritic(
            RecurrentSpec.from_dict(spec)
        )
    else:
        net = ActorCritic(NetSpec.from_dict(spec))
    net.load_state_dict(state["policies"][info.role])
    return net.to(torch.device(device)).eval().requires_grad_(False)


def checkpoint_state(registry: Registry, info: PolicyInfo, step: int | None) -> dict[str, Any]:
    """The checkpoint of a policy's run at ``step`` (its latest when None), verified and
    unpickled without code."""
    return checkpoints.from_bytes(registry.read_checkpoint(_checkpoint(registry, info, step)))


def _checkpoint(registry: Registry, info: PolicyInfo, step: int | None) -> CheckpointInfo:
    saved = registry.checkpoints(info.run_id)
    if step is not None:
        saved = [c for c in saved if c.step == step]
    if not saved:
        at = f" at step {step}" if step is not None else ""
        raise UserError(f"run {info.run_id} has no checkpoint{at}")
    return saved[-1]


def register_builtin(registry: Registry, ref: str, env: str) -> str:
    """Record a built-in policy (``scripted:ENV/NAME`` or ``random:ENV/uniform``) so zoos
    and results can point to it; returns its ref."""
    kind, _, name = ref.partition(":")
    family, _, role = name.partition("/")
    if kind == "random":
        if family != env or role != "uniform":
            raise UserError(f"unknown random policy '{ref}' (known: random:{env}/uniform)")
        spec = {"seat": "*"}
    elif kind == "scripted":
        item = _scripted(ref)
        if item.env != env:
            raise UserError(f"{ref} plays {item.env}, not {env}")
        spec = {"name": name, "seat": item.seat, "params": item.params}
    else:
        raise UserError(
            f"'{ref}' is not a built-in policy (scripted:ENV/NAME or random:ENV/uniform)"
        )
    return registry.register_policy(run_id=None, role=role, env=env, kind=kind, spec=spec)


def playable_seats(info: PolicyInfo, agents: tuple[str, ...]) -> tuple[str, ...]:
    """The seats of an env a registered policy can sit in: a trained one in the role it
    learned (or the seats its spec lists, for a policy shared across seats), a scripted one
    in the seats its heuristic is written for, a random one anywhere."""
    if info.kind == "trained":
        seats = info.spec.get("seats") or [info.role]
        return tuple(a for a in agents if a in seats)
    seat = info.spec.get("seat", "*")
    return tuple(a for a in agents if seat == "*" or a.startswith(seat))


def load_seats(
    registry: Registry | None,
    env: BatchedEnv,
    env_config: Any,
    refs: Mapping[str, tuple[str, int | None]],
    device: torch.device,
) -> list[Seat]:
    """Every seat of ``env``, in its order, with the policy ``refs[seat] = (ref, step)``
    (step None: the latest checkpoint), each checked to fit its seat (`load_seat`)."""
    for name in env.agents:
        if name not in refs:
            raise UserError(f"seat {name} has no policy")
    return [
        load_seat(
            registry,
            refs[name][0],
            env_config=env_config,
            seat=name,
            obs_dim=env.obs_dims[index],
            device=device,
            step=refs[name][1],
            action_space=env.action_spaces[index],
        )
        for index, name in enumerate(env.agents)
    ]


def load_seat(
    registry: Registry | None,
    ref: str,
    *,
    env_config: Any,
    seat: str,
    obs_dim: int,
    device: torch.device,
    step: int | None = None,
    action_space: ActionSpace | None = None,
) -> Seat:
    """The policy ``ref`` (at checkpoint ``step``, else its latest) for ``seat`` of an env,
    checked to fit it: same env family and the seat's observation size. Built-in scripted
    and random policies are registered on first use (when there is a registry)."""
    if ref.startswith("random:"):
        if registry is not None:
            register_builtin(registry, ref, env_config.name)
        elif ref != f"random:{env_config.name}/uniform":
            raise UserError(f"unknown random policy '{ref}'")
        if action_space is None:
            raise UserError(f"{ref} needs the seat's action space")
        return UniformPolicy(action_space)
    if ref.startswith("scripted:"):
        item = _scripted(ref)
        if item.env != env_config.name or not seat.startswith(item.seat):
            raise UserError(f"{ref} plays the {item.env} {item.seat}, not the {seat} seat")
        policy = item.build(env_config)
        if registry is not None:
            register_builtin(registry, ref, env_config.name)
        return policy
    if registry is None:
        raise UserError(f"loading {ref} needs a registry")
    info = registry.get_policy(ref)
    if info.env != env_config.name:
        raise UserError(f"policy {ref} was trained on {info.env}, not {env_config.name}")
    net = load_policy(registry, ref, step=step, device=str(device))
    if net.spec.obs_dim != obs_dim:
        raise UserError(
            f"policy {ref} expects {net.spec.obs_dim} observations; seat {seat} gives {obs_dim}"
        )
    return RecurrentSeat(net) if isinstance(net, RecurrentActorCritic) else net


def _scripted(ref: str) -> Scripted:
    item = CATALOGUE.get(ref.removeprefix("scripted:"))
    if item is None:
        known = ", ".join(f"scripted:{k}" for k in CATALOGUE)
        raise UserError(f"unknown scripted policy '{ref}' (known: {known})")
    return item
