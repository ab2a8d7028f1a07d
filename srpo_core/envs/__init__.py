"""Env families by name: `srpo train --env NAME` looks them up here.

The built-in families are the packages beside this module; a user's own family registers
through the ``srpo.envs`` entry point group (its value: the module holding the family's
`EnvFamily` record, ``"my_package.my_env:FAMILY"``), the way pytest and gymnasium plugins
register."""

from __future__ import annotations

from importlib.metadata import entry_points

import torch

from srpo_core.envs import debate, gridworld, hanabi, ipd, matrix, overcooked, quadratic, tag
from srpo_core.envs.base import BatchedEnv, EnvSpec
from srpo_core.envs.family import EnvFamily
from srpo_core.errors import UserError

BUILT_IN = (matrix, quadratic, gridworld, tag, debate, hanabi, overcooked, ipd)
ENTRY_POINTS = "srpo.envs"


def _families() -> dict[str, EnvFamily]:
    families = {package.FAMILY.name: package.FAMILY for package in BUILT_IN}
    for point in entry_points(group=ENTRY_POINTS):
        where = f"entry point {point.name} = {point.value} ({ENTRY_POINTS})"
        try:
            family = point.load()
        except Exception as exc:  # a user's package: whatever its import raises
            raise UserError(f"{where} cannot be loaded: {type(exc).__name__}") from None
        if not isinstance(family, EnvFamily):
            raise UserError(f"{where} is not an EnvFamily")
        if family.name in families:
            raise UserError(f"{where}: an env family named {family.name} exists already")
        families[family.name] = family
    return families


ENVS: dict[str, EnvFamily] = _families()


def env_spec(env_config) -> EnvSpec:
    """The seats, observation sizes and action spaces of ``env_config``'s game: the family's
    `EnvFamily.spec`, else those of a one-env instance on the CPU."""
    family = ENVS[env_config.name]
    if family.spec is not None:
        return family.spec(env_config)
    env = family.make(env_config, 1, torch.device("cpu"), 0)
    try:
        return EnvSpec(env.agents, env.obs_dims, env.action_spaces)
    finally:
        env.close()


def make_env(env_config, num_envs: int, device, seed: int, evaluation: bool = False) -> BatchedEnv:
    """The env of ``env_config``; ``evaluation``: the game evaluations play (the config's
    `EnvConfig.evaluated`)."""
    if evaluation:
        env_config = env_config.evaluated()
    return ENVS[env_config.name].make(env_config, num_envs, device, seed)
