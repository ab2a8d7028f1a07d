"""Seat any set of policies into a batched env and collect a rollout or evaluation episodes.

A seat holds anything with ``distribution(obs, mask)``: a trained network, an adversary,
later a scripted or zoo partner. The runner keeps an env's current observations and the
running sums of unfinished episodes, so episodes continue across rollouts (and resumes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from srpo_core.agents.distributions import Categorical, Distribution
from srpo_core.envs.base import BatchedEnv


class Seat(Protocol):
    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution: ...


@dataclass
class Episodes:
    """Sums over completed episodes: one column per episode."""

    reward: torch.Tensor
    """[num_agents, E] shared reward per agent."""
    cost: torch.Tensor
    """[num_agents, E] private cost per agent."""
    length: torch.Tensor
    """[E] steps."""
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    def select(self, index: torch.Tensor) -> Episodes:
        """The episodes picked by a boolean mask or index tensor."""
        return Episodes(
            reward=self.reward[:, index],
            cost=self.cost[:, index],
            length=self.length[index],
            info={k: v[index] for k, v in self.info.items()},
        )

    @property
    def count(self) -> int:
        return int(self.length.numel())

    def summary(self, agents: tuple[str, ...]) -> dict[str, float]:
        """Mean per-episode figures: each agent's return (reward - cost) and cost, the team
        reward, and for two agents the free-riding degree |E[c_0] - E[c_1]|."""
        if self.count == 0:
            return {}
        out = {
            "team_reward": float(self.reward[0].mean()),
            "length": float(self.length.float().mean()),
        }
        utility = self.reward - self.cost
        out["return"] = float(utility.mean())
        for i, name in enumerate(agents):
            out[f"{name}/return"] = float(utility[i].mean())
            out[f"{name}/cost"] = float(self.cost[i].mean())
        if len(agents) == 2:
            out["free_riding"] = abs(float(self.cost[0].mean() - self.cost[1].mean()))
        for key, value in self.info.items():
            out[key] = float(value.float().mean())
        return out


class Runner:
    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.obs = env.reset()
        shape = (env.num_agents, env.num_envs)
        self.ep_reward = torch.zeros(shape, device=env.device)
        self.ep_cost = torch.zeros(shape, device=env.device)
        self.ep_length = torch.zeros(env.num_envs, dtype=torch.long, device=env.device)
        self.ep_info: dict[str, torch.Tensor] = {}

    def step(self, actions: list[torch.Tensor]) -> tuple[Any, Episodes]:
        """Step the env; returns the step and the episodes it completed."""
        step = self.env.step(actions)
        self.ep_reward += step.reward
        self.ep_cost += step.cost
        self.ep_length += 1
        for key, value in step.info.items():
            self.ep_info[key] = (
                self.ep_info.get(key, torch.zeros_like(value, dtype=torch.float32)) + value
            )
        done = step.done
        running = Episodes(self.ep_reward, self.ep_cost, self.ep_length, self.ep_info)
        finished = running.select(done)
        keep = (~done).float()
        self.ep_reward = self.ep_reward * keep
        self.ep_cost = self.ep_cost * keep
        self.ep_length = self.ep_length * (~done).long()
        self.ep_info = {k: v * keep for k, v in self.ep_info.items()}
        self.obs = step.obs
        return step, finished

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "obs": self.obs,
            "ep_reward": self.ep_reward,
            "ep_cost": self.ep_cost,
            "ep_length": self.ep_length,
            "ep_info": self.ep_info,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        self.obs = state["obs"]
        self.ep_reward, self.ep_cost = state["ep_reward"], state["ep_cost"]
        self.ep_length, self.ep_info = state["ep_length"], state["ep_info"]


def concat(episodes: list[Episodes]) -> Episodes:
    keys = episodes[0].info.keys() if episodes else ()
    return Episodes(
        reward=torch.cat([e.reward for e in episodes], 1),
        cost=torch.cat([e.cost for e in episodes], 1),
        length=torch.cat([e.length for e in episodes]),
        info={k: torch.cat([e.info[k] for e in episodes]) for k in keys},
    )


@torch.no_grad()
def collect(
    runner: Runner, seats: list[Seat], num_steps: int, generator: torch.Generator
) -> tuple[list[dict[str, torch.Tensor]], Episodes]:
    """Play ``num_steps`` steps; per seat a dict of [T, B, ...] tensors (obs, actions, logp,
    utility, dones, values and last_value where the seat has a critic, mean action probs)."""
    records: list[dict[str, list[torch.Tensor]]] = [dict() for _ in seats]
    finished = []
    for _ in range(num_steps):
        actions = []
        for seat, obs, rec in zip(seats, runner.obs, records, strict=True):
            dist = seat.distribution(obs)
            action = dist.sample(generator)
            actions.append(action)
            rec.setdefault("obs", []).append(obs)
            rec.setdefault("actions", []).append(action)
            rec.setdefault("logp", []).append(dist.log_prob(action))
            if isinstance(dist, Categorical):
                rec.setdefault("probs", []).append(dist.probs.mean(0))
            if getattr(seat, "critic_head", None) is not None:
                rec.setdefault("values", []).append(seat.value(obs))
        step, done_episodes = runner.step(actions)
        finished.append(done_episodes)
        for i, rec in enumerate(records):
            rec.setdefault("utility", []).append(step.reward[i] - step.cost[i])
            rec.setdefault("dones", []).append(step.done)
    batches = []
    for seat, obs, rec in zip(seats, runner.obs, records, strict=True):
        batch = {k: torch.stack(v) for k, v in rec.items()}
        if "probs" in batch:
            batch["probs"] = batch["probs"].mean(0)
        if "values" in batch:
            batch["last_value"] = seat.value(obs)
        batches.append(batch)
    return batches, concat(finished)


@torch.no_grad()
def play_episodes(
    env: BatchedEnv, seats: list[Seat], generator: torch.Generator, max_steps: int = 100_000
) -> Episodes:
    """The first episode of every env in the batch (one episode per env), with sampled
    actions; the evaluation primitive behind training evals and, later, cross-play."""
    runner = Runner(env)
    seen = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    parts: list[Episodes] = []
    order: list[torch.Tensor] = []
    for _ in range(max_steps):
        actions = [
            seat.distribution(obs).sample(generator)
            for seat, obs in zip(seats, runner.obs, strict=True)
        ]
        done_before = seen.clone()
        step, finished = runner.step(actions)
        first = step.done & ~done_before
        if bool(first.any()):
            parts.append(finished.select(first[step.done]))
            order.append(torch.nonzero(first).squeeze(-1))
        seen |= step.done
        if bool(seen.all()):
            break
    return concat(parts).select(torch.argsort(torch.cat(order)))
