"""Actor-critic MLPs for discrete (categorical) and continuous (Gaussian) actions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from srpo_core.distributions import Categorical, DiagGaussian, Distribution
from srpo_core.envs.base import ActionSpace, Box, Discrete

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
ACTIVATION_FNS = {"tanh": torch.tanh, "relu": torch.relu}
ACTIVATIONS_INPLACE = {"tanh": torch.tanh_, "relu": torch.relu_}


@dataclass(frozen=True)
class NetSpec:
    """Everything needed to rebuild a network from a checkpoint (stored with each policy)."""

    obs_dim: int
    action_space: ActionSpace
    hidden: tuple[int, ...]
    activation: str
    shared_trunk: bool
    critic: bool
    log_std_init: float = 0.0

    def to_dict(self) -> dict:
        space = self.action_space
        return {
            "obs_dim": self.obs_dim,
            "action_space": {"type": type(space).__name__, **space.__dict__},
            "hidden": list(self.hidden),
            "activation": self.activation,
            "shared_trunk": self.shared_trunk,
            "critic": self.critic,
            "log_std_init": self.log_std_init,
        }

    @classmethod
    def from_dict(cls, data: dict) -> NetSpec:
        space = dict(data["action_space"])
        kind = space.pop("type")
        if kind == "Discrete":
            action_space: ActionSpace = Discrete(space["n"], tuple(space.get("labels", ())))
        else:
            action_space = Box(space["dim"])
        return cls(**{**data, "action_space": action_space, "hidden": tuple(data["hidden"])})


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """pi(a|o) and, unless ``critic=False`` (adversaries), V(o)."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        if spec.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{spec.activation}'")
        self.spec = spec
        hidden = list(spec.hidden)
        width = hidden[-1] if hidden else spec.obs_dim
        space = spec.action_space
        out = space.n if isinstance(space, Discrete) else space.dim
        self.trunk = mlp([spec.obs_dim, *hidden], spec.activation) if spec.shared_trunk else None
        self.actor_body = (
            None if spec.shared_trunk else mlp([spec.obs_dim, *hidden], spec.activation)
        )
        self.actor_head = nn.Linear(width, out)
        self.critic_body = (
            mlp([spec.obs_dim, *hidden], spec.activation)
            if spec.critic and not spec.shared_trunk
            else None
        )
        self.critic_head = nn.Linear(width, 1) if spec.critic else None
        self.log_std = (
            nn.Parameter(torch.full((out,), spec.log_std_init)) if isinstance(space, Box) else None
        )
        self._activation = ACTIVATION_FNS[spec.activation]
        self._activation_ = ACTIVATIONS_INPLACE[spec.activation]
        self._discrete = isinstance(space, Discrete)
        self._cache_layers()

    def _cache_layers(self) -> None:
        """(weight, bias) per layer of the actor and critic, as plain lists for a functional
        forward pass: calling modules, even reading a module's attributes, costs more
        Python time than the maths at the batch sizes of acting. Also detached
        (weight.T, bias) views for acting without gradients: views follow the in-place
        optimiser steps and `load_state_dict`; `_apply` (.to()) builds them anew."""
        self._actor = self._layers(self.trunk or self.actor_body, self.actor_head)
        self._critic = (
            self._layers(self.trunk or self.critic_body, self.critic_head)
            if self.critic_head is not None
            else []
        )
        self._actor_t = [(w.detach().T, b.detach()) for w, b in self._actor]
        self._critic_t = [(w.detach().T, b.detach()) for w, b in self._critic]

    def _apply(self, fn, recurse=True):  # .to(), .cuda(), .double(): parameters may be new
        out = super()._apply(fn, recurse)
        self._cache_layers()
        return out

    @staticmethod
    def _layers(body: nn.Sequential | None, head: nn.Linear) -> list[tuple]:
        hidden = [m for m in body if isinstance(m, nn.Linear)] if body is not None else []
        return [(layer.weight, layer.bias) for layer in (*hidden, head)]

    def _forward(self, layers: list[tuple], x: torch.Tensor, acting: list[tuple]) -> torch.Tensor:
        if x.dim() == 2 and not torch.is_grad_enabled():  # acting: fewest dispatches
            for weight_t, bias in acting[:-1]:
                x = self._activation_(torch.addmm(bias, x, weight_t))
            return torch.addmm(acting[-1][1], x, acting[-1][0])
        for weight, bias in layers[:-1]:
            x = self._activation(F.linear(x, weight, bias))
        return F.linear(x, *layers[-1])

    def reset_parameters(self, generator: torch.Generator, orthogonal: bool = True) -> None:
        """Seeded init (CleanRL style: orthogonal, gain sqrt 2 hidden, 0.01 actor, 1 critic)."""
        for name, module in self.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            gain = 0.01 if name == "actor_head" else 1.0 if name == "critic_head" else math.sqrt(2)
            if orthogonal:
                nn.init.orthogonal_(module.weight, gain, generator=generator)
            else:
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            nn.init.zeros_(module.bias)

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        out = self._forward(self._actor, obs, self._actor_t)
        if self._discrete:
            return Categorical(out, mask)
        return DiagGaussian(out, self.log_std)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if not self._critic:
            raise RuntimeError("this network has no critic")
        return self._forward(self._critic, obs, self._critic_t).squeeze(-1)
