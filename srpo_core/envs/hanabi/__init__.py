"""Hanabi through the hanabi-learning-environment package (`env`), its observation layout
(`layout`) and a rule-based partner (`rules`). Docs:
docs/envs/hanabi.md."""

from srpo_core.envs.family import EnvFamily
from srpo_core.envs.hanabi.env import HanabiEnv, HanabiEnvConfig, spec
from srpo_core.envs.hanabi.rules import SCRIPTED

FAMILY = EnvFamily("hanabi", HanabiEnvConfig, HanabiEnv, "hanabi", spec, SCRIPTED)
