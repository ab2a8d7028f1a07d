"""The paper's two-cook gridworld (srpo-notes section 5.1) and its scripted workers
(`partners`). Docs:
docs/envs/gridworld.md."""

from srpo_core.envs.family import EnvFamily
from srpo_core.envs.gridworld.env import GridworldEnv, GridworldEnvConfig, spec
from srpo_core.envs.gridworld.partners import SCRIPTED

FAMILY = EnvFamily("gridworld", GridworldEnvConfig, GridworldEnv, "gridworld-ippo", spec, SCRIPTED)
