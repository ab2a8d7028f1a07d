"""Env families by name: `srpo train --env NAME` looks them up here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from srpo_core.debate.config import DebateEnvConfig, no_batched_env
from srpo_core.envs.base import BatchedEnv
from srpo_core.envs.gridworld import GridworldEnv, GridworldEnvConfig
from srpo_core.envs.hanabi import HanabiEnv, HanabiEnvConfig
from srpo_core.envs.ipd import IpdEnv, IpdEnvConfig
from srpo_core.envs.matrix import MatrixEnv, MatrixEnvConfig
from srpo_core.envs.overcooked import OvercookedBatchedEnv, OvercookedEnvConfig
from srpo_core.envs.overcooked_torch import OvercookedTorchEnv
from srpo_core.envs.quadratic import QuadraticEnv, QuadraticEnvConfig
from srpo_core.envs.tag import TagEnvConfig, make_tag_env


@dataclass(frozen=True)
class EnvFamily:
    config: type
    make: Callable[..., BatchedEnv]
    """make(env_config, num_envs, device, seed) -> BatchedEnv"""
    default_preset: str
    play_seating: Callable[..., dict] | None = None
    """Cross-play for a family without a batched env: play_seating(registry, seating,
    setup) -> metrics, as `srpo_core.crossplay.play_seating` returns them."""
    evaluated: Callable[[Any], Any] | None = None
    """evaluated(env_config) -> the config evaluations play, where it differs from
    training's (training schedules such as reward shaping run to their end)."""


def make_overcooked_env(
    env_config: OvercookedEnvConfig, num_envs: int, device, seed: int
) -> BatchedEnv:
    """The overcooked env of ``env_config.backend``: the package's games or torch's."""
    env_config.validate()
    backend = OvercookedTorchEnv if env_config.backend == "torch" else OvercookedBatchedEnv
    return backend(env_config, num_envs, device, seed)


def _debate_seating(registry, seating, setup) -> dict:
    from srpo_core.debate.evaluate import crossplay_seating  # transformers only when needed

    return crossplay_seating(registry, seating, setup)


ENVS: dict[str, EnvFamily] = {
    "matrix": EnvFamily(MatrixEnvConfig, MatrixEnv, "matrix"),
    "quadratic": EnvFamily(QuadraticEnvConfig, QuadraticEnv, "quadratic"),
    "gridworld": EnvFamily(GridworldEnvConfig, GridworldEnv, "gridworld-ippo"),
    "tag": EnvFamily(TagEnvConfig, make_tag_env, "tag-ippo"),
    # LLM debate: its own training loop (srpo_core/debate/run.py), not a BatchedEnv.
    "debate": EnvFamily(DebateEnvConfig, no_batched_env, "debate-ippo", _debate_seating),
    "hanabi": EnvFamily(HanabiEnvConfig, HanabiEnv, "hanabi"),
    "overcooked": EnvFamily(
        OvercookedEnvConfig,
        make_overcooked_env,
        "overcooked-ippo",
        evaluated=OvercookedEnvConfig.evaluated,
    ),
    "ipd": EnvFamily(IpdEnvConfig, IpdEnv, "ipd-mixed"),
}


def make_env(env_config, num_envs: int, device, seed: int, evaluation: bool = False) -> BatchedEnv:
    """The env of ``env_config``; ``evaluation``: the game evaluations play (the family's
    `EnvFamily.evaluated` config)."""
    family = ENVS[env_config.name]
    if evaluation and family.evaluated is not None:
        env_config = family.evaluated(env_config)
    return family.make(env_config, num_envs, device, seed)
