"""A continuous two-player quadratic game with a closed-form RQE mean (`env.rqe_mean`). Docs:
docs/envs/quadratic.md."""

from srpo_core.envs.family import EnvFamily
from srpo_core.envs.quadratic.env import QuadraticEnv, QuadraticEnvConfig, spec

FAMILY = EnvFamily("quadratic", QuadraticEnvConfig, QuadraticEnv, "quadratic", spec)
