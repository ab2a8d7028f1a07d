"""K members' networks of one spec as stacked tensors, run by batched matmuls.

Each Linear layer of `ActorCritic` becomes a weight [K, in, out] (transposed, as
``torch.baddbmm`` takes it) and a bias [K, 1, out]; a Gaussian policy's log-std becomes
[K, 1, out]. Inputs are [K, N, in]: member k's rows only ever meet member k's weights, so
each member computes what its own network would. Members are built as ordinary
`ActorCritic` networks (same init, from each member's own generator) and can be taken
out again as one (`member_state`), which is what checkpoints and the registry store.
A convolutional torso (``NetSpec.conv``) keeps its weights [K, out, in, 3, 3] and biases
[K, out] and runs member by member (each member's convolutions the ops a population of
one would run), before the stacked MLP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from srpo_core.agents.networks import ActorCritic, NetSpec, torso_forward
from srpo_core.distributions import Categorical, DiagGaussian, Distribution

SIGMOID_TANH_FROM = 4096
"""Per-member activations from which tanh is computed as 2 sigmoid(2x) - 1: torch's CPU
tanh kernel is several times slower than its sigmoid on large tensors (measured: 6-7 ms
against under 1 ms on a [30, 1024, 64] batch, where the activations were a third of an
update's time), while on a step's few rows the formula's four ops cost more than one tanh.
The choice reads one member's size, never K, so a member computes the same formula in any
population (the two agree within a few float32 ulps)."""


def _tanh(x: torch.Tensor) -> torch.Tensor:
    if x[0].numel() < SIGMOID_TANH_FROM:
        return torch.tanh(x)
    return torch.sigmoid(x * 2).mul(2).sub(1)


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    if x[0].numel() < SIGMOID_TANH_FROM:
        return x.tanh_()
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


ACTIVATION_FNS = {"tanh": _tanh, "relu": torch.relu}
ACTIVATIONS_INPLACE = {"tanh": _tanh_, "relu": torch.relu_}


class StackedParameters:
    """K modules' parameters of one shape stacked along a member axis, each in the layout
    `to_stacked` gives it (`from_stacked` undoes it): what every stacked network shares,
    its optimiser's parameters and a member's weights taken out and put back."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        self.members = len(nets)
        self.names = [name for name, _ in nets[0].named_parameters()]
        per_member = [dict(net.named_parameters()) for net in nets]
        self.params: dict[str, torch.Tensor] = {
            name: self.to_stacked(name, torch.stack([p[name].detach() for p in per_member]))
            .contiguous()
            .requires_grad_()
            for name in self.names
        }

    @staticmethod
    def to_stacked(name: str, value: torch.Tensor) -> torch.Tensor:
        """[K, *module shape] -> the stacked layout."""
        raise NotImplementedError

    @staticmethod
    def from_stacked(name: str, value: torch.Tensor) -> torch.Tensor:
        """One member's slice of the stacked layout -> its module shape."""
        raise NotImplementedError

    def parameters(self) -> list[torch.Tensor]:
        return [self.params[name] for name in self.names]

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as its own module's state_dict."""
        return {
            name: self.from_stacked(name, self.params[name][k]).detach().clone()
            for name in self.names
        }

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        for name in self.names:
            self.params[name][k].copy_(self.to_stacked(name, state[name].unsqueeze(0))[0])


class StackedNet(StackedParameters):
    def __init__(self, nets: list[ActorCritic]) -> None:
        super().__init__(nets)
        first = nets[0]
        self.spec: NetSpec = first.spec
        names = {id(p): name for name, p in first.named_parameters()}

        def stacked(layers: list[tuple]) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [(self.params[names[id(w)]], self.params[names[id(b)]]) for w, b in layers]

        self.actor = stacked(first._actor)
        self.critic = stacked(first._critic)
        self.actor_conv = stacked(first._actor_conv)
        self.critic_conv = stacked(first._critic_conv)
        self.log_std = self.params.get("log_std")
        self.discrete = self.log_std is None
        self._activation = ACTIVATION_FNS[self.spec.activation]
        self._activation_ = ACTIVATIONS_INPLACE[self.spec.activation]

    @property
    def has_critic(self) -> bool:
        return bool(self.critic)

    def _forward(self, layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor):
        grad = torch.is_grad_enabled()
        for weight, bias in layers[:-1]:
            x = torch.baddbmm(bias, x, weight)
            x = self._activation(x) if grad else self._activation_(x)
        weight, bias = layers[-1]
        if weight.shape[-1] == 1:
            # A one-output layer (the critic's head) as a product and a sum: a batched
            # matmul with one member would go to a matrix-vector kernel that rounds
            # differently, and a member's numbers must not depend on the population size.
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        return torch.baddbmm(bias, x, weight)

    def _torso(self, layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor):
        """[K, N, obs_dim] -> [K, N, features] through each member's own convolutions."""
        if not layers:
            return x
        grid = self.spec.grid
        return torch.stack(
            [
                torso_forward([(w[k], b[k]) for w, b in layers], grid, x[k])
                for k in range(self.members)
            ]
        )

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        """obs [K, N, obs_dim] -> a distribution over [K, N] actions."""
        out = self._forward(self.actor, self._torso(self.actor_conv, obs))
        if self.discrete:
            return Categorical(out, mask)
        return DiagGaussian(out, self.log_std.expand_as(out))

    def member_distribution(
        self, k: int, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Distribution:
        """Member k's policy on rows of its own, obs [N, obs_dim] -> a distribution over
        [1, N] actions: the ops a population of one would run on them, whoever else is
        stacked (turn-based updates select each member's decisions this way)."""
        layers = [(weight[k : k + 1], bias[k : k + 1]) for weight, bias in self.actor]
        torso = [(weight[k], bias[k]) for weight, bias in self.actor_conv]
        obs = torso_forward(torso, self.spec.grid, obs)
        out = self._forward(layers, obs.unsqueeze(0))
        if self.discrete:
            return Categorical(out, None if mask is None else mask.unsqueeze(0))
        return DiagGaussian(out, self.log_std[k : k + 1].expand_as(out))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [K, N, obs_dim] -> V [K, N]."""
        return self._forward(self.critic, self._torso(self.critic_conv, obs)).squeeze(-1)

    @staticmethod
    def to_stacked(name: str, value: torch.Tensor) -> torch.Tensor:
        if "_conv." in name:  # a convolution's weight or bias: as the module holds it
            return value
        if name.endswith("weight"):
            return value.transpose(1, 2)
        return value.unsqueeze(1)  # bias, log_std: [K, 1, out]

    @staticmethod
    def from_stacked(name: str, value: torch.Tensor) -> torch.Tensor:
        if "_conv." in name:
            return value
        return value.T if name.endswith("weight") else value.squeeze(0)


class StackedSeat:
    """A seat of a population's env batch (K x n envs, member-major) played by a stacked
    net: what `rollout.collect` and `play_episodes` see as one policy. Inputs are
    [..., K * n, dim] (a step, or a whole rollout [T, K * n, dim])."""

    def __init__(self, net: StackedNet) -> None:
        self.net = net
        self.critic_head = True if net.has_critic else None

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        members = self.net.members
        stacked = None if mask is None else to_members(mask, members)
        dist = self.net.distribution(to_members(obs, members), stacked)
        if isinstance(dist, Categorical):
            return Categorical(from_members(dist.raw, obs.shape[:-1]))
        lead = obs.shape[:-1]
        return DiagGaussian(from_members(dist.mean, lead), from_members(dist.log_std, lead))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        values = self.net.value(to_members(obs, self.net.members))
        return from_members(values.unsqueeze(-1), obs.shape[:-1]).squeeze(-1)


def to_members(x: torch.Tensor, members: int) -> torch.Tensor:
    """[..., K * n, d] (envs member-major) -> [K, prod(...) * n, d], each member's rows in
    the order its own flattened batch would have them."""
    *lead, rows, width = x.shape
    if not lead or members == 1:  # a step's rows, or one member's: a view
        return x.reshape(members, -1, width)
    x = x.reshape(*lead, members, rows // members, width)
    return x.movedim(len(lead), 0).reshape(members, -1, width)


def from_members(x: torch.Tensor, lead: torch.Size) -> torch.Tensor:
    """The inverse of `to_members`: [K, prod(lead[:-1]) * n, d] -> [*lead, d]."""
    members, _, width = x.shape
    *outer, rows = lead
    if not outer or members == 1:
        return x.reshape(*lead, width)
    x = x.reshape(members, *outer, rows // members, width)
    return x.movedim(0, len(outer)).reshape(*lead, width)
