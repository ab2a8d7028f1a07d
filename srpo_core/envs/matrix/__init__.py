"""Two-player matrix games (srpo-notes Example 4.2 and the stag hunt) and their closed-form
equilibria (`equilibria`: Nash, QRE, RQE). Docs:
docs/envs/matrix.md."""

from srpo_core.envs.family import EnvFamily
from srpo_core.envs.matrix.env import MatrixEnv, MatrixEnvConfig, spec

FAMILY = EnvFamily("matrix", MatrixEnvConfig, MatrixEnv, "matrix", spec)
