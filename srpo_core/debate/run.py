"""What a debate run needs from `srpo_core.train` (which runs its lifecycle for
`--env debate`): the trainer, built before the run row exists so that a bad model or data
path fails first, and the policies it publishes (`RUN/agent0`, `RUN/agent1`: base model +
adapter; the weights are in the run's checkpoints). One env step is one debated problem.
"""

from __future__ import annotations

from pathlib import Path

import torch

from srpo_core.config import Config
from srpo_core.debate.evaluate import POLICY_KIND
from srpo_core.debate.trainer import AGENTS, DebateTrainer
from srpo_core.devices import resolve_device


def own_trainer(config: Config) -> tuple[DebateTrainer, dict[str, dict]]:
    """The debate family's `EnvFamily.trainer` hook: the trainer and its policies' specs."""
    return build_trainer(config), policy_specs(config)


def build_trainer(config: Config) -> DebateTrainer:
    device = resolve_device(config.run.device)
    torch.set_num_threads(config.run.threads)
    return DebateTrainer(config, device)


def policy_specs(config: Config) -> dict[str, dict]:
    """Per agent what `evaluate.load_debate_policy` needs to rebuild it: its base model
    (absolute path) and the LoRA shape."""
    env = config.env
    specs = {}
    for index, role in enumerate(AGENTS):
        model_dir = env.model_dir if index == 0 else (env.partner_model_dir or env.model_dir)
        specs[role] = {
            "kind": POLICY_KIND,
            "model_dir": str(Path(model_dir).resolve()),
            "lora": {"rank": env.lora_rank, "alpha": env.lora_alpha, "targets": env.lora_targets},
            "rounds": env.rounds,
            "max_new_tokens": env.max_new_tokens,
            "dtype": env.dtype,
        }
    return specs
