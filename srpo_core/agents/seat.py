"""What sits in a seat of an env: anything with ``distribution(obs, mask)`` (a trained
network, an adversary, a scripted or random policy, a zoo partner)."""

from __future__ import annotations

from typing import Protocol

import torch

from srpo_core.distributions import Distribution


class Seat(Protocol):
    """Optionally also ``bind(env, index)``: a seat that acts on the env's internal state
    rather than on its observation (overcooked-ai's scripted agents) is bound to the env
    before it acts there (`srpo_core.rollout.bind_seats`). And optionally
    ``observe(action, utility, done)``: a seat with memory (a recurrent policy) hears after
    every step what it did, what it got and which episodes ended
    (`srpo_core.rollout.observing`)."""

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution: ...
