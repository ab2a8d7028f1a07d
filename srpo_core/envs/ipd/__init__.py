"""The iterated prisoner's dilemma (`env`) and its memory-one co-players (`memory_one`). Docs:
docs/envs/ipd.md."""

from srpo_core.envs.family import EnvFamily
from srpo_core.envs.ipd.env import IpdEnv, IpdEnvConfig, spec
from srpo_core.envs.ipd.memory_one import SCRIPTED

FAMILY = EnvFamily("ipd", IpdEnvConfig, IpdEnv, "ipd-mixed", spec, SCRIPTED)
