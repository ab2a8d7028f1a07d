"""Throughput benchmarks: env-only steps/s and full training steps/s per batch size.

Numbers, not assertions: `srpo bench` prints them as a table and writes JSON, so speed
targets are checked by reading a benchmark, never by timed tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from srpo_core.config import Config, with_seed
from srpo_core.devices import resolve_device
from srpo_core.distributions import Categorical
from srpo_core.envs import make_env
from srpo_core.envs.base import Box, Discrete
from srpo_core.seeding import make_generator
from srpo_core.train import build_population


@dataclass(frozen=True)
class BenchRow:
    kind: str
    """env (random actions, no learning) or train (rollouts + updates)."""
    num_envs: int
    num_steps: int
    env_steps: int
    seconds: float
    members: int = 1
    """Runs trained together (population rows)."""

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.seconds

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "num_envs": self.num_envs,
            "num_steps": self.num_steps,
            "env_steps": self.env_steps,
            "seconds": round(self.seconds, 4),
            "steps_per_second": round(self.steps_per_second, 1),
            "members": self.members,
            "steps_per_second_per_member": round(self.steps_per_second / self.members, 1),
        }


def bench_env(config: Config, num_envs: int, seconds: float) -> BenchRow:
    """Step the env with uniformly random actions (legal ones, where the env has action
    masks) for about ``seconds``."""
    device = resolve_device(config.run.device)
    torch.set_num_threads(config.run.threads)
    env = make_env(config.env, num_envs, device, seed=0)
    generator = make_generator(device, 0)
    env.reset()
    masks = env.masks()

    def random_actions() -> list[torch.Tensor]:
        out = []
        legal, acting = masks
        for i, space in enumerate(env.action_spaces):
            if legal is not None:  # turn-based: seats not acting may pick anything
                mask = legal[i] if acting is None else legal[i] | ~acting[i].unsqueeze(-1)
                out.append(
                    Categorical(torch.zeros(mask.shape, device=device), mask).sample(generator)
                )
            elif isinstance(space, Discrete):
                out.append(torch.randint(space.n, (num_envs,), generator=generator, device=device))
            else:
                assert isinstance(space, Box)
                out.append(torch.randn(num_envs, space.dim, generator=generator, device=device))
        return out

    def step() -> None:
        nonlocal masks
        result = env.step(random_actions())
        masks = result.legal, result.acting

    for _ in range(3):  # warm-up
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        steps += 10
    _sync(device)
    elapsed = time.perf_counter() - start
    env.close()
    return BenchRow("env", num_envs, 1, steps * num_envs, elapsed)


def bench_train(config: Config, seconds: float) -> BenchRow:
    """Whole training iterations of one run (rollouts, SRPO adversaries, updates) for
    ``seconds``: a population of one."""
    population = build_population([config])
    device, iterate = population.device, lambda: population.iterate()[0].env_steps
    iterate()  # warm-up
    env_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env_steps += iterate()
    _sync(device)
    ppo = config.ppo
    return BenchRow("train", ppo.num_envs, ppo.num_steps, env_steps, time.perf_counter() - start)


def bench_population(config: Config, members: int, seconds: float) -> BenchRow:
    """Whole iterations of a population of ``members`` runs of ``config`` (seeds 0..K-1)
    for ``seconds``; env steps summed over the members."""
    population = build_population([with_seed(config, seed) for seed in range(members)])
    population.iterate()  # warm-up
    env_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env_steps += sum(it.env_steps for it in population.iterate())
    _sync(population.device)
    ppo, elapsed = config.ppo, time.perf_counter() - start
    return BenchRow("population", ppo.num_envs, ppo.num_steps, env_steps, elapsed, members)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
