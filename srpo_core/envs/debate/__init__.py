"""The LLM debate's game settings (`config`). It has no batched env: its trainer and
cross-play live in `srpo_core.debate` and load (with transformers) only when used. Docs:
docs/envs/debate.md."""

from srpo_core.envs.debate.config import DebateEnvConfig, no_batched_env
from srpo_core.envs.family import EnvFamily

FAMILY = EnvFamily(
    "debate",
    DebateEnvConfig,
    no_batched_env,
    "debate-ippo",
    populations=False,
    trainer="srpo_core.debate.run:own_trainer",
    play_seating="srpo_core.debate.evaluate:crossplay_seating",
)
