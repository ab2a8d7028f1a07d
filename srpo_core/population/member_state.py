"""A member's slice of a population's state, and a population's state from its members'.

Checkpoints store each member's own part (its weights, Adam moments, generators and its
envs), so a member's checkpoint is its run's; a population is rebuilt from all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from srpo_core.rollout import Runner

if TYPE_CHECKING:
    from srpo_core.population.trainer import Role


def role_state(role: Role, k: int) -> dict[str, Any]:
    """Member k's network and optimiser of a role no policy publishes (an adversary)."""
    return {"net": role.net.member_state(k), "optimizer": role.optimizer.member_state(k)}


def load_role_state(role: Role, k: int, state: dict[str, Any]) -> None:
    role.net.load_member_state(k, state["net"])
    role.optimizer.load_member_state(k, state["optimizer"])


def member_runner_state(runner: Runner, k: int, members: int) -> dict[str, Any]:
    """Member k's slice of a population runner's state (`Runner.state_dict`); a
    population of one (a solo run, whose env may be a package's) keeps it whole."""
    state = runner.state_dict()
    if members == 1:
        return state
    width = runner.env.num_envs // members
    rows = slice(k * width, (k + 1) * width)
    return {
        "env": runner.env.member_state(state["env"], k, members),
        "obs": [obs[rows].clone() for obs in state["obs"]],
        "info_keys": state["info_keys"],
        "sums": None if state["sums"] is None else state["sums"][:, rows].clone(),
    }


def load_runner_states(runner: Runner, states: list[dict[str, Any]]) -> None:
    """A population runner from its members' slices (`member_runner_state`)."""
    first = states[0]
    if len(states) == 1:
        runner.load_state_dict(first)
        return
    sums = None if first["sums"] is None else torch.cat([s["sums"] for s in states], 1)
    obs = [torch.cat([s["obs"][i] for s in states]) for i in range(len(first["obs"]))]
    env = runner.env.join_member_states([s["env"] for s in states])
    runner.load_state_dict({"env": env, "obs": obs, "info_keys": first["info_keys"], "sums": sums})
    runner.legal, runner.acting = runner.env.masks()  # turn-based: of the games as loaded
