"""What the members of a population share (shapes, the loop) and what each may set alone.

A member may differ from the others in any scalar that changes no tensor's shape and not
the training loop's length: its seed and the coefficients in `PER_MEMBER`. Everything
else (env, networks, batch sizes, algorithm, budget and cadences) must be equal, so the
members' tensors stack and their iterations line up.
"""

from __future__ import annotations

import dataclasses

import torch

from srpo_core.config import Config, flatten_config
from srpo_core.envs import ENVS
from srpo_core.errors import UserError

PER_MEMBER = (
    "run.seed",
    "algo.tau",
    "algo.eps",
    "ppo.lr",
    "ppo.critic_lr",
    "ppo.gamma",
    "ppo.gae_lambda",
    "ppo.clip",
    "ppo.vf_coef",
    "ppo.max_grad_norm",
    "ppo.adam_eps",
)


def shared_key(config: Config) -> dict:
    """The part of a config every member of a population must have in common."""
    flat = flatten_config(config.to_dict())
    return {key: value for key, value in flat.items() if key not in PER_MEMBER}


def check_population(configs: list[Config]) -> None:
    """Refuse (one line) configs that cannot train as one population. One config (a solo
    run) trains with any backend: only members sharing an env batch need envs that split
    their random numbers by member."""
    if not configs:
        raise UserError("a population needs at least one member")
    first = configs[0]
    family = ENVS[first.env.name]
    if family.trainer is not None:
        raise UserError(
            f"env {first.env.name} has a trainer of its own; train its seeds one run each"
        )
    if len(configs) > 1:
        _check_member_seeded(first)
    base = shared_key(first)
    for config in configs[1:]:
        other = shared_key(config)
        for key in sorted(base.keys() | other.keys()):
            if base.get(key) != other.get(key):
                raise UserError(
                    f"members of a population must share {key} "
                    f"({base.get(key)!r} vs {other.get(key)!r}); only "
                    f"{', '.join(PER_MEMBER)} may differ"
                )
    if len({_member_key(c) for c in configs}) != len(configs):
        raise UserError("two members of the population have the same config and seed")


def _check_member_seeded(first: Config) -> None:
    family = ENVS[first.env.name]
    needed = family.population_backend
    if needed is not None and first.env.backend != needed:
        raise UserError(
            f"{first.env.name}'s {first.env.backend} backend cannot train as a population: use "
            f"--set env.backend={needed} (the same env, bit for bit)"
        )
    if not family.populations:
        can = [name for name, other in ENVS.items() if other.populations]
        raise UserError(
            f"env {first.env.name} cannot train as a population yet (families that can: "
            f"{', '.join(can)}); train its seeds one run each"
        )


def _member_key(config: Config) -> tuple:
    flat = flatten_config(config.to_dict())
    return tuple(flat[key] for key in PER_MEMBER)


@dataclasses.dataclass(frozen=True)
class Coefficients:
    """Each member's scalars as [K] tensors on the population's device."""

    tau: torch.Tensor
    eps: torch.Tensor
    lr: torch.Tensor
    critic_lr: torch.Tensor
    """The critic's rate: ppo.critic_lr where set, else ppo.lr."""
    gamma: torch.Tensor
    gae_lambda: torch.Tensor
    clip: torch.Tensor
    vf_coef: torch.Tensor
    max_grad_norm: torch.Tensor
    adam_eps: torch.Tensor

    @classmethod
    def of(cls, configs: list[Config], device: torch.device) -> Coefficients:
        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)

        return cls(
            tau=column([c.algo.tau for c in configs]),
            eps=column([c.algo.eps for c in configs]),
            lr=column([c.ppo.lr for c in configs]),
            critic_lr=column([c.ppo.critic_lr or c.ppo.lr for c in configs]),
            gamma=column([c.ppo.gamma for c in configs]),
            gae_lambda=column([c.ppo.gae_lambda for c in configs]),
            clip=column([c.ppo.clip for c in configs]),
            vf_coef=column([c.ppo.vf_coef for c in configs]),
            max_grad_norm=column([c.ppo.max_grad_norm for c in configs]),
            adam_eps=column([c.ppo.adam_eps for c in configs]),
        )
