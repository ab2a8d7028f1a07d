"""overcooked-ai kitchens. Two backends of one game: ``torch`` (every kitchen as tensors:
`kitchen`, `obs`, `torch_env`) and ``package`` (the package's own games in worker
processes, `env`); `compat` imports the package, `scripted` seats its own agents. Docs:
docs/envs/overcooked.md."""

from __future__ import annotations

from srpo_core.envs.base import BatchedEnv
from srpo_core.envs.family import EnvFamily
from srpo_core.envs.overcooked.env import OvercookedBatchedEnv, OvercookedEnvConfig, spec
from srpo_core.envs.overcooked.scripted import SCRIPTED
from srpo_core.envs.overcooked.torch_env import OvercookedTorchEnv


def make_overcooked_env(
    env_config: OvercookedEnvConfig, num_envs: int, device, seed: int
) -> BatchedEnv:
    """The overcooked env of ``env_config.backend``."""
    env_config.validate()
    backend = OvercookedTorchEnv if env_config.backend == "torch" else OvercookedBatchedEnv
    return backend(env_config, num_envs, device, seed)


FAMILY = EnvFamily(
    "overcooked",
    OvercookedEnvConfig,
    make_overcooked_env,
    "overcooked-ippo",
    spec,
    SCRIPTED,
    population_backend="torch",
)
