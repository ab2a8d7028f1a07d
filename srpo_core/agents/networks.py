"""Actor-critic MLPs for discrete (categorical) and continuous (Gaussian) actions, each
optionally behind a small convolutional torso for grid observations (``NetSpec.conv``)."""

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
    conv: tuple[int, ...] = ()
    """Channels of the 3x3 convolutions (padding 1, ReLU) before the actor's and the
    critic's MLP, each its own torso; () for none."""
    grid: tuple[int, int, int] | None = None
    """(width, height, channels) of the observation a torso reads (``EnvSpec.grids``)."""

    def __post_init__(self) -> None:
        """A torso's spec must describe a grid the observation is (stored specs are input:
        a wrong one is a ValueError here, not a failure at the first step)."""
        if not self.conv:
            return
        if self.shared_trunk:
            raise ValueError("a convolutional torso needs separate actor and critic")
        grid = self.grid
        if grid is None or len(grid) != 3 or not all(isinstance(v, int) and v > 0 for v in grid):
            raise ValueError(
                f"a convolutional torso needs a grid (width, height, channels), got {grid}"
            )
        if grid[0] * grid[1] * grid[2] != self.obs_dim:
            raise ValueError(f"grid {grid} does not hold obs_dim {self.obs_dim} values")
        if not all(isinstance(c, int) and c > 0 for c in self.conv):
            raise ValueError(f"convolution channels must be positive integers, got {self.conv}")

    @property
    def features(self) -> int:
        """What the MLPs read: the observation, or the last convolution's maps."""
        if not self.conv:
            return self.obs_dim
        assert self.grid is not None
        width, height, _ = self.grid
        return self.conv[-1] * width * height

    def to_dict(self) -> dict:
        space = self.action_space
        torso = {"conv": list(self.conv), "grid": list(self.grid)} if self.conv else {}
        return {
            "obs_dim": self.obs_dim,
            "action_space": {"type": type(space).__name__, **space.__dict__},
            "hidden": list(self.hidden),
            "activation": self.activation,
            "shared_trunk": self.shared_trunk,
            "critic": self.critic,
            "log_std_init": self.log_std_init,
            **torso,
        }

    @classmethod
    def from_dict(cls, data: dict) -> NetSpec:
        space = dict(data["action_space"])
        kind = space.pop("type")
        if kind == "Discrete":
            action_space: ActionSpace = Discrete(space["n"], tuple(space.get("labels", ())))
        else:
            action_space = Box(space["dim"])
        torso = {}
        if data.get("conv"):
            torso = {"conv": tuple(data["conv"]), "grid": tuple(data["grid"])}
        return cls(
            **{**data, "action_space": action_space, "hidden": tuple(data["hidden"]), **torso}
        )


def conv_torso(channels: int, conv: tuple[int, ...]) -> nn.ModuleList:
    """3x3 convolutions, stride 1, padding 1 (the grid keeps its size)."""
    sizes = [channels, *conv]
    pairs = zip(sizes[:-1], sizes[1:], strict=True)
    return nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in pairs)


def torso_forward(
    layers: list[tuple[torch.Tensor, torch.Tensor]],
    grid: tuple[int, int, int] | None,
    x: torch.Tensor,
) -> torch.Tensor:
    """[..., W * H * C] grid observations (channels last) -> [..., features] through the
    convolutions ``layers`` ((weight, bias) each, ReLU after each); no layers: ``x``."""
    if not layers:
        return x
    assert grid is not None
    width, height, channels = grid
    lead = x.shape[:-1]
    y = x.reshape(-1, width, height, channels).permute(0, 3, 1, 2)
    for weight, bias in layers:
        y = torch.relu(F.conv2d(y, weight, bias, padding=1))
    return y.reshape(*lead, -1)


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
        inputs = spec.features
        width = hidden[-1] if hidden else inputs
        space = spec.action_space
        out = space.n if isinstance(space, Discrete) else space.dim
        self.trunk = mlp([inputs, *hidden], spec.activation) if spec.shared_trunk else None
        self.actor_body = None if spec.shared_trunk else mlp([inputs, *hidden], spec.activation)
        self.actor_head = nn.Linear(width, out)
        self.critic_body = (
            mlp([inputs, *hidden], spec.activation)
            if spec.critic and not spec.shared_trunk
            else None
        )
        self.critic_head = nn.Linear(width, 1) if spec.critic else None
        self.log_std = (
            nn.Parameter(torch.full((out,), spec.log_std_init)) if isinstance(space, Box) else None
        )
        channels = spec.grid[2] if spec.grid else 0
        self.actor_conv = conv_torso(channels, spec.conv) if spec.conv else None
        self.critic_conv = conv_torso(channels, spec.conv) if spec.conv and spec.critic else None
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
        self._actor_conv = [(c.weight, c.bias) for c in self.actor_conv or ()]
        self._critic_conv = [(c.weight, c.bias) for c in self.critic_conv or ()]

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
            if not isinstance(module, nn.Linear | nn.Conv2d):
                continue
            gain = 0.01 if name == "actor_head" else 1.0 if name == "critic_head" else math.sqrt(2)
            if orthogonal:
                nn.init.orthogonal_(module.weight, gain, generator=generator)
            else:
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            nn.init.zeros_(module.bias)

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        obs = torso_forward(self._actor_conv, self.spec.grid, obs)
        out = self._forward(self._actor, obs, self._actor_t)
        if self._discrete:
            return Categorical(out, mask)
        return DiagGaussian(out, self.log_std)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        if not self._critic:
            raise RuntimeError("this network has no critic")
        obs = torso_forward(self._critic_conv, self.spec.grid, obs)
        return self._forward(self._critic, obs, self._critic_t).squeeze(-1)
