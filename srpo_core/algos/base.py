"""What every trainer reports per iteration (`Iteration`) and how its metrics are named
(`prefixed`). The trainers: `srpo_core.population` (feed-forward and recurrent policies)
and a family's own (the LLM debate's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Iteration:
    metrics: dict[str, float]
    env_steps: int
    hero_samples: int
    """Samples each hero learned from in this iteration."""


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{key}": value for key, value in metrics.items()}
