"""What every trainer reports per iteration (`Iteration`), the env factory it is given,
and `Algorithm`, the frame of a trainer with one `ppo.Learner` per seat (the recurrent
learners'; feed-forward runs train in `srpo_core.population`): seeded components,
learners updating side by side, state."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

from srpo_core.agents.networks import ActorCritic
from srpo_core.agents.seat import Seat
from srpo_core.algos.ppo import Learner
from srpo_core.config import Config
from srpo_core.envs import env_spec
from srpo_core.envs.base import BatchedEnv
from srpo_core.seeding import make_generator, sub_seed
from srpo_core.side_by_side import SideBySide


class EnvFactory(Protocol):
    """The run's envs by size and seed; ``evaluation``: the game evaluations play
    (`srpo_core.envs.make_env`)."""

    def __call__(self, num_envs: int, seed: int, evaluation: bool = False) -> BatchedEnv: ...


T = TypeVar("T")


@dataclass
class Iteration:
    metrics: dict[str, float]
    env_steps: int
    hero_samples: int
    """Samples each hero learned from in this iteration."""


class Algorithm:
    """Trains one hero per role (`make_heroes`), except the seats given as ``frozen``
    (frozen policies), which play along but never learn."""

    name = ""

    def __init__(
        self,
        config: Config,
        make_env: EnvFactory,
        device: torch.device,
        frozen: dict[int, Seat] | None = None,
        pool_members: list[list[Seat]] | None = None,
    ) -> None:
        self.config = config
        self.make_env = make_env
        self.device = device
        self.frozen = dict(frozen or {})
        self.pool_members = pool_members
        """Per seat, the zoo members learners may meet (``train.partners=zoo:NAME``)."""
        seed = config.run.seed
        game = env_spec(config.env)
        self.agents = game.agents
        self.obs_dims = game.obs_dims
        self.action_spaces = game.action_spaces
        self.init_generator = make_generator(torch.device("cpu"), sub_seed(seed, "init"))
        self.heroes = self.make_heroes()
        self.generator = make_generator(device, sub_seed(seed, "sample"))
        learners = {id(hero): i for i, hero in reversed(self.heroes.items())}  # first seat
        self.update_generators = {
            i: make_generator(device, sub_seed(seed, f"update/{self.agents[i]}"))
            for i in sorted(learners.values())
        }
        """Per learner (keyed by its first seat), the RNG of its update and its adversaries':
        heroes update side by side (`per_hero`) and draw the same numbers in any order."""
        self.side_by_side = SideBySide(config.run.parallel_updates, config.run.threads)
        self.setup()

    def make_heroes(self) -> dict[int, Learner]:
        """The learner of each trained seat (by seat index)."""
        raise NotImplementedError

    def setup(self) -> None:
        """Subclasses build their runners (and SRPO its adversaries) here."""

    def roles(self) -> dict[str, Learner]:
        """Each trained role's learner, by the name its policy is published under."""
        return {self.agents[i]: hero for i, hero in self.heroes.items()}

    def policies(self) -> dict[str, ActorCritic]:
        """The trained policy of each trained role: what checkpoints publish as partners."""
        return {role: hero.net for role, hero in self.roles().items()}

    def policy_states(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each trained role's weights, as checkpoints store them."""
        return {role: net.state_dict() for role, net in self.policies().items()}

    def iterate(self) -> Iteration:
        raise NotImplementedError

    def evaluate(self, episodes: int, seed: int, final: bool = False) -> dict[str, float]:
        """The trained agents playing, with a seed of its own (the training RNG untouched);
        ``final``: the run's last evaluation."""
        raise NotImplementedError

    def per_hero(self, job: Callable[[int], T]) -> dict[int, T]:
        """``job(i)`` for every learner (by its first seat i), side by side in threads with
        ``run.parallel_updates`` (`SideBySide`). A job touches only its hero's learners and
        RNG, so the results are the same either way. Evaluation envs may fork workers
        later: these threads are idle then, holding no lock."""
        heroes = list(self.update_generators)
        results = self.side_by_side.run([functools.partial(job, i) for i in heroes])
        return dict(zip(heroes, results, strict=True))

    def learners(self) -> list[Learner]:
        """Every optimised network (SRPO adds its adversaries)."""
        return list(self.roles().values())

    def set_learning_rate(self, lr: float) -> None:
        """Set the actor's learning rate; a separate critic rate (ppo.critic_lr) keeps its
        ratio to it."""
        for learner in self.learners():
            for group in learner.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)

    def state_dict(self) -> dict[str, Any]:
        """Optimiser, RNG and env state (hero weights travel as `policies`)."""
        return {
            "optimizers": {
                role: hero.optimizer.state_dict() for role, hero in self.roles().items()
            },
            "generator": self.generator.get_state(),
            "init_generator": self.init_generator.get_state(),
            "update_generators": {i: g.get_state() for i, g in self.update_generators.items()},
        }

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None:
        for role, hero in self.roles().items():
            hero.net.load_state_dict(policies[role])
            hero.optimizer.load_state_dict(state["optimizers"][role])
        self.generator.set_state(state["generator"])
        self.init_generator.set_state(state["init_generator"])
        for i, rng_state in state.get("update_generators", {}).items():
            self.update_generators[i].set_state(rng_state)


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{key}": value for key, value in metrics.items()}
