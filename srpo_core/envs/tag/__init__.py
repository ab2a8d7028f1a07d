"""MPE Tag: chasers against a runner. Two backends of one game: ``vectorized`` (torch,
`torch_env`) and ``mpe2`` (the package, `env`); scripted runners in `runners`. Docs:
docs/envs/tag.md."""

from __future__ import annotations

from srpo_core.envs.base import BatchedEnv
from srpo_core.envs.family import EnvFamily
from srpo_core.envs.tag.env import TagEnv, TagEnvConfig, spec
from srpo_core.envs.tag.runners import SCRIPTED
from srpo_core.envs.tag.torch_env import TagBatchedEnv


def make_tag_env(config: TagEnvConfig, num_envs: int, device, seed: int) -> BatchedEnv:
    """The Tag env of ``config.backend``."""
    config.validate()
    backend = TagBatchedEnv if config.backend == "vectorized" else TagEnv
    return backend(config, num_envs, device, seed)


FAMILY = EnvFamily(
    "tag", TagEnvConfig, make_tag_env, "tag-ippo", spec, SCRIPTED, population_backend="vectorized"
)
