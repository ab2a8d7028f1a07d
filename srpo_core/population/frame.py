"""What every population trainer holds (`trainer.Population`, `recurrent.RecurrentPopulation`):
its members' configs, coefficients and seeds, the game, env batches split by member, and
the roles it publishes, each member's slice of them a policy of its own run."""

from __future__ import annotations

import torch

from srpo_core.config import Config
from srpo_core.envs import env_spec, make_env
from srpo_core.envs.base import BatchedEnv
from srpo_core.population.members import Coefficients, check_population
from srpo_core.population.updates import Role


class PopulationFrame:
    """K runs of one shape (`members.check_population`), before any network exists."""

    def __init__(self, configs: list[Config], device: torch.device) -> None:
        check_population(configs)
        self.configs = configs
        self.config = configs[0]
        self.device = device
        self.members = len(configs)
        self.coef = Coefficients.of(configs, device)
        self.seeds = [c.run.seed for c in configs]
        self.game = env_spec(self.config.env)
        self.agents = self.game.agents

    def env_batch(self, num_envs: int, seeds: list[int], evaluation: bool = False) -> BatchedEnv:
        """``num_envs`` envs per member, each member's slice drawing from its own of
        ``seeds`` (`split`)."""
        env = make_env(self.config.env, num_envs * self.members, self.device, seeds[0], evaluation)
        return self.split(env, seeds)

    def split(self, env: BatchedEnv, seeds: list[int]) -> BatchedEnv:
        """Members' slices of ``env`` (seeded with ``seeds[0]``) drawing from their own
        seeds; one member (a solo run, any backend) draws from the env's own generator."""
        if self.members > 1:
            env.split_generators(seeds)
        return env

    def roles(self) -> dict[str, Role]:
        """Each trained role by the name its policy is published under."""
        raise NotImplementedError

    def learners(self) -> list[Role]:
        """Every optimised role (the published ones, and adversaries where there are)."""
        return list(self.roles().values())

    def set_lr_fraction(self, fraction: float) -> None:
        """Every member's learning rates times ``fraction`` (linear annealing)."""
        for role in self.learners():
            role.optimizer.scale_lr(fraction)

    def policy_states(self) -> list[dict[str, dict[str, torch.Tensor]]]:
        """Per member, each trained role's weights as its own run's policy."""
        return [
            {name: role.net.member_state(k) for name, role in self.roles().items()}
            for k in range(self.members)
        ]
