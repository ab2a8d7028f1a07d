"""The uniform random policy: the weakest partner a zoo can hold (`random:ENV/uniform`)."""

from __future__ import annotations

import torch

from srpo_core.distributions import Categorical, DiagGaussian, Distribution
from srpo_core.envs.base import ActionSpace, Discrete


class UniformPolicy:
    """Uniform over a discrete action set (legal actions only, under a mask); a standard
    normal per dimension for continuous actions."""

    def __init__(self, space: ActionSpace) -> None:
        self.space = space

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        lead = obs.shape[:-1]
        if isinstance(self.space, Discrete):
            return Categorical(obs.new_zeros(*lead, self.space.n), mask)
        zeros = obs.new_zeros(*lead, self.space.dim)
        return DiagGaussian(zeros, zeros)
