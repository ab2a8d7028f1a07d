"""The `env` section of a debate run (`srpo train --env debate`).

Kept free of transformers/peft imports: the config layer loads it for every command.
Settings that PPO shares with the RL envs (lr, clip, epochs, minibatches, gamma over
rounds, norm_adv, max_grad_norm, adam_eps, anneal_lr) stay in the `ppo` section; IPPO/SRPO
options in `algo`. ppo.num_envs, ppo.num_steps, ppo.gae_lambda and the `net` section are
not used by debate runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from srpo_core.envs.family import EnvConfig
from srpo_core.errors import UserError

GENERATED = "generated"
DTYPES = ("auto", "float32", "bfloat16")
TEAM_REWARDS = ("mean", "both")
ADVANTAGES = ("baseline", "value")
KL_PLACEMENTS = ("reward", "loss")


@dataclass
class DebateEnvConfig(EnvConfig):
    SEATS: ClassVar[tuple[str, ...]] = ("agent0", "agent1")
    """The debaters, for cross-play (there is no batched env to ask)."""
    NON_GAME_KEYS: ClassVar[tuple[str, ...]] = (
        "model_dir",
        "partner_model_dir",
        "generated_size",
        "temperature",
        "batch_size",
        "forward_batch",
        "lora_rank",
        "lora_alpha",
        "lora_targets",
        "dtype",
        "team_reward",
        "round_shaping",
        "advantage",
        "value_lr",
        "kl_placement",
    )
    """Who debates and how they were trained, not what the debate is: agents trained on
    different base models (the paper's cross-play) still face the same game."""

    name: str = "debate"
    model_dir: str = ""
    """Local transformers causal-LM directory of agent 0 (required; never a hub name)."""
    partner_model_dir: str = ""
    """Agent 1's model directory; empty = the same base model as agent 0."""
    data_dir: str = GENERATED
    """A folder with GSM8K-style train.jsonl / test.jsonl, or `generated` (arithmetic
    word problems made from the run seed)."""
    generated_max: int = 20
    """Generated problems: operands are drawn from 1..generated_max."""
    generated_size: int = 2000
    """Generated problems: size of the training pool (the eval pool is separate)."""
    rounds: int = 3
    """Round 1 each agent answers alone; later rounds see both previous answers."""
    max_new_tokens: int = 256
    temperature: float = 1.0
    """Sampling temperature while training; evaluation is greedy."""
    batch_size: int = 256
    """Problems debated per iteration (per hero with SRPO)."""
    forward_batch: int = 16
    """Rows per forward pass when scoring and training (gradients accumulate over them):
    bounds the memory of vocabulary-sized logits; no effect on the numbers beyond rounding."""
    lora_rank: int = 32
    lora_alpha: float = 64.0
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])
    """peft target_modules; ["all-linear"] = every linear layer but the output head."""
    dtype: str = "auto"
    """auto = bfloat16 on CUDA, float32 on CPU."""
    team_reward: str = "mean"
    """Team outcome of a round: mean of the two agents' correctness, or both (1 only if
    both are right)."""
    round_shaping: float = 0.5
    """Weight of the team outcome of each non-final round; the final round weighs 1."""
    advantage: str = "baseline"
    """baseline: return minus the batch mean per role and round; value: minus a learned
    value head on the prompt's last hidden state."""
    value_lr: float = 1e-3
    """Learning rate of the value heads (env.advantage = "value"); adapters use ppo.lr."""
    kl_placement: str = "reward"
    """SRPO adversary KL to the partner: per-token reward penalty (authors' LLM code) or
    a loss term (RL envs)."""

    def uses_generated_data(self) -> bool:
        return self.data_dir == GENERATED

    def validate(self) -> None:
        if not self.model_dir:
            raise UserError(
                "env.model_dir is required: --set env.model_dir=PATH (a local transformers "
                "model directory)"
            )
        for where, path in (
            ("model_dir", self.model_dir),
            ("partner_model_dir", self.partner_model_dir),
        ):
            if path and not Path(path).is_dir():
                raise UserError(f"env.{where}: no model directory {path}")
        if not self.uses_generated_data() and not Path(self.data_dir).is_dir():
            raise UserError(f"env.data_dir: no directory {self.data_dir} (or use 'generated')")
        for where, value in (
            ("env.rounds", self.rounds),
            ("env.max_new_tokens", self.max_new_tokens),
            ("env.batch_size", self.batch_size),
            ("env.forward_batch", self.forward_batch),
            ("env.lora_rank", self.lora_rank),
            ("env.generated_max", self.generated_max),
            ("env.generated_size", self.generated_size),
        ):
            if value < 1:
                raise UserError(f"{where} must be >= 1, got {value}")
        if self.temperature <= 0 or self.lora_alpha <= 0 or self.value_lr <= 0:
            raise UserError("env.temperature, env.lora_alpha and env.value_lr must be > 0")
        if self.round_shaping < 0:
            raise UserError(f"env.round_shaping must be >= 0, got {self.round_shaping}")
        if not self.lora_targets:
            raise UserError("env.lora_targets must name at least one module")
        for where, value, options in (
            ("env.dtype", self.dtype, DTYPES),
            ("env.team_reward", self.team_reward, TEAM_REWARDS),
            ("env.advantage", self.advantage, ADVANTAGES),
            ("env.kl_placement", self.kl_placement, KL_PLACEMENTS),
        ):
            if value not in options:
                raise UserError(f"{where} must be one of {', '.join(options)}, got '{value}'")


def no_batched_env(*args: object, **kwargs: object) -> None:
    """Debate is not a BatchedEnv: `srpo train --env debate` runs its own loop
    (srpo_core/debate/run.py), and batched-env commands refuse it here."""
    raise UserError("env 'debate' is not a batched env; train it with srpo train --env debate")
