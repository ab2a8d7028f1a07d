"""Which game an env config poses: its hash without the keys that do not define the game,
and the typed config of a stored dict."""

from __future__ import annotations

import dataclasses
from typing import Any

from srpo_core.canonical import canonical_json
from srpo_core.config import build_config, env_config_class
from srpo_core.envs.family import EnvConfig
from srpo_core.registry.artifacts import sha256_hex


def game_config(env_values: dict[str, Any]) -> dict[str, Any]:
    """The game an env config poses to any pair of policies: the config evaluations play
    (`EnvConfig.evaluated`: training schedules such as reward shaping run to their end)
    without the keys that do not define the game (`EnvConfig.NON_GAME_KEYS`: workers and
    backends, or a debate's models and training settings). The values are read as given
    unless the family's evaluations play another config (then typed and validated)."""
    config_class = env_config_class(env_values["name"])
    if config_class.evaluated is not EnvConfig.evaluated:
        env_values = dataclasses.asdict(env_config_from(env_values).evaluated())
    return {k: v for k, v in env_values.items() if k not in config_class.NON_GAME_KEYS}


def config_hash(env_values: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(game_config(env_values)).encode())


def env_values(env_config: Any) -> dict[str, Any]:
    return dataclasses.asdict(env_config)


def env_config_from(values: dict[str, Any]) -> Any:
    """The typed, validated env config of a stored dict."""
    return build_config({"env": values}).env
