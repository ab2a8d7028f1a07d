"""Action distributions with explicit-generator sampling and exact KL.

torch.distributions samples from the global RNG; these sample from a passed
``torch.Generator`` so every run is reproducible from its seed, and give the KL between
two policies in closed form (SRPO's adversary penalty is computed exactly, not sampled).
"""

from __future__ import annotations

import functools
import math

import torch


class Categorical:
    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        self.raw = logits
        """Unnormalised logits: enough for sampling, which is the per-step hot path."""

    @functools.cached_property
    def logits(self) -> torch.Tensor:
        """Normalised: log-probabilities."""
        return self.raw - self.raw.logsumexp(-1, keepdim=True)

    def __getitem__(self, index: torch.Tensor | slice) -> Categorical:
        return Categorical(self.raw[index])

    def frozen(self) -> Categorical:
        """A copy that no later parameter update can change (a KL target)."""
        return Categorical(self.raw.detach().clone())

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        return self.sample_with(self.noise(1, generator)[0])

    def noise(self, steps: int, generator: torch.Generator) -> torch.Tensor:
        """Gumbel noise for ``steps`` draws shaped like this distribution, drawn at once."""
        uniform = torch.rand((steps, *self.raw.shape), generator=generator, device=self.raw.device)
        return -(-uniform.clamp_min(1e-20).log()).log()

    def sample_with(self, noise: torch.Tensor) -> torch.Tensor:
        """Gumbel-max: argmax(logits + Gumbel noise) is an exact sample of softmax(logits)."""
        return (self.raw + noise).argmax(-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        """KL(self || other), summed over actions."""
        p = self.probs
        return (p * (self.logits - other.logits)).where(p > 0, 0.0).sum(-1)


class DiagGaussian:
    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)

    def __getitem__(self, index: torch.Tensor | slice) -> DiagGaussian:
        return DiagGaussian(self.mean[index], self.log_std[index])

    def frozen(self) -> DiagGaussian:
        """A copy that no later parameter update can change (a KL target)."""
        return DiagGaussian(self.mean.detach().clone(), self.log_std.detach().clone())

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.log_std.exp() * noise

    def noise(self, steps: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise for ``steps`` draws shaped like this distribution."""
        return torch.randn(
            (steps, *self.mean.shape),
            generator=generator,
            device=self.mean.device,
            dtype=self.mean.dtype,
        )

    def sample_with(self, noise: torch.Tensor) -> torch.Tensor:
        return self.mean + self.log_std.exp() * noise

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def kl(self, other: DiagGaussian) -> torch.Tensor:
        """KL(self || other) between diagonal Gaussians, closed form."""
        var, other_var = (2 * self.log_std).exp(), (2 * other.log_std).exp()
        per_dim = (
            other.log_std
            - self.log_std
            + (var + (self.mean - other.mean) ** 2) / (2 * other_var)
            - 0.5
        )
        return per_dim.sum(-1)


Distribution = Categorical | DiagGaussian
