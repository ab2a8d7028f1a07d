"""IPPO: every agent learns by PPO from play with its real partners (SRPO at tau = 0)."""

from __future__ import annotations

from typing import Any

from srpo_core.algos.base import Algorithm, Iteration, prefixed
from srpo_core.algos.ppo import hero_update
from srpo_core.rollout import Runner, collect
from srpo_core.seeding import sub_seed


class IPPO(Algorithm):
    name = "ippo"

    def setup(self) -> None:
        config = self.config
        self.runner = Runner(self.make_env(config.ppo.num_envs, sub_seed(config.run.seed, "env0")))

    def iterate(self) -> Iteration:
        ppo = self.config.ppo
        batches, episodes = collect(
            self.runner, self.seats(), ppo.num_steps, self.generator, frozen=self.fixed
        )
        metrics = prefixed("train/", episodes.summary(self.agents, list(self.heroes)))
        eps, rngs = self.config.algo.eps, self.update_generators
        updates = self.per_hero(lambda i: hero_update(self.heroes[i], batches[i], eps, rngs[i]))
        for i, (update, _) in updates.items():
            metrics |= prefixed(f"{self.agents[i]}/", update)
            metrics |= self.action_metrics(i, batches[i], f"{self.agents[i]}/")
        samples = ppo.num_envs * ppo.num_steps
        return Iteration(metrics, env_steps=samples, hero_samples=samples)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"runners": [self.runner.state_dict()]}

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None:
        super().load_state_dict(policies, state)
        self.runner.load_state_dict(state["runners"][0])
