"""PPO core, IPPO and SRPO. Each module reads like the equations it implements."""

from srpo_core.algos.ippo import IPPO
from srpo_core.algos.srpo import SRPO

ALGORITHMS = {"ippo": IPPO, "srpo": SRPO}
