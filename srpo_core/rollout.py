"""Seat any set of policies into a batched env and collect a rollout or evaluation episodes.

A seat holds anything with ``distribution(obs, mask)``: a trained network, an adversary,
a scripted policy, later a zoo partner. The runner keeps an env's current observations and the
running sums of unfinished episodes, so episodes continue across rollouts (and resumes).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from srpo_core.agents.distributions import Categorical, Distribution
from srpo_core.envs.base import BatchedEnv, Step


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

    def summary(self, agents: tuple[str, ...], team: list[int] | None = None) -> dict[str, float]:
        """Mean per-episode figures: each agent's return (reward - cost) and cost; for the
        ``team`` (the learning seats; all by default) the shared reward and mean return; for
        two agents the free-riding degree |E[c_0] - E[c_1]|."""
        if self.count == 0:
            return {}
        team = list(range(len(agents))) if team is None else team
        utility = self.reward - self.cost
        out = {
            "team_reward": float(self.reward[team[0]].mean()),
            "length": float(self.length.float().mean()),
            "return": float(utility[team].mean()),
        }
        for i, name in enumerate(agents):
            out[f"{name}/return"] = float(utility[i].mean())
            out[f"{name}/cost"] = float(self.cost[i].mean())
        if len(agents) == 2:
            out["free_riding"] = abs(float(self.cost[0].mean() - self.cost[1].mean()))
        for key, value in self.info.items():
            out[key] = float(value.float().mean())
        return out


class Runner:
    """An env, its current observations and the running sums of its unfinished episodes.

    The sums live in one [rows, num_envs] tensor (each agent's reward, each agent's cost,
    the length, then the env's info counters), so a step adds one tensor, however many
    counters the env reports."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.obs = env.reset()
        self.info_keys: tuple[str, ...] | None = None
        self.sums: torch.Tensor | None = None
        self.ones = torch.ones(1, env.num_envs, device=env.device)

    def step(self, actions: list[torch.Tensor]) -> tuple[Step, Episodes | None]:
        """Step the env; returns the step and the episodes it completed (None if none)."""
        step = self.env.step(actions)
        if self.info_keys is None:
            self.info_keys = tuple(step.info)
            rows = 2 * self.env.num_agents + 1 + len(self.info_keys)
            self.sums = torch.zeros(rows, self.env.num_envs, device=self.env.device)
        parts = [step.reward, step.cost, self.ones]
        if self.info_keys:
            parts.append(torch.stack([step.info[k] for k in self.info_keys]).float())
        self.sums += torch.cat(parts)
        finished = None
        if bool(step.done.any()):
            finished = self.episodes(self.sums[:, step.done])
            self.sums *= ~step.done
        self.obs = step.obs
        return step, finished

    def episodes(self, columns: torch.Tensor) -> Episodes:
        n = self.env.num_agents
        info = {key: columns[2 * n + 1 + j] for j, key in enumerate(self.info_keys or ())}
        return Episodes(columns[:n], columns[n : 2 * n], columns[2 * n], info)

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "obs": self.obs,
            "info_keys": list(self.info_keys) if self.info_keys is not None else None,
            "sums": self.sums,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        device = self.env.device
        self.obs = [obs.to(device) for obs in state["obs"]]
        keys = state["info_keys"]
        self.info_keys = tuple(keys) if keys is not None else None
        self.sums = state["sums"].to(device) if state["sums"] is not None else None


def concat(episodes: list[Episodes], num_agents: int) -> Episodes:
    """Episodes side by side; zero columns when the list is empty."""
    if not episodes:
        return Episodes(torch.zeros(num_agents, 0), torch.zeros(num_agents, 0), torch.zeros(0))
    keys = episodes[0].info.keys()
    return Episodes(
        reward=torch.cat([e.reward for e in episodes], 1),
        cost=torch.cat([e.cost for e in episodes], 1),
        length=torch.cat([e.length for e in episodes]),
        info={k: torch.cat([e.info[k] for e in episodes]) for k in keys},
    )


@torch.no_grad()
def collect(
    runner: Runner,
    seats: list[Seat],
    num_steps: int,
    generator: torch.Generator,
    frozen: Collection[int] = (),
) -> tuple[list[dict[str, torch.Tensor]], Episodes]:
    """Play ``num_steps`` steps; per seat a dict of [T, B, ...] tensors (obs, actions, logp,
    utility, dones, values and last_value where the seat has a critic, mean action probs).

    Only the acting forward pass runs per step, with sampling noise drawn for the whole
    rollout up front; log-probs, values and probabilities are computed once over the
    rollout afterwards (the policies do not change within a rollout, so the numbers are
    the same and the per-step overhead is much lower). ``frozen`` seats learn nothing from
    the rollout, so they get no log-probs or values.
    """
    obs: list[list[torch.Tensor]] = [[] for _ in seats]
    actions: list[list[torch.Tensor]] = [[] for _ in seats]
    noise: list[torch.Tensor] = []
    utility, dones, finished = [], [], []
    for t in range(num_steps):
        joint = []
        for i, seat in enumerate(seats):
            dist = seat.distribution(runner.obs[i])
            if t == 0:  # the whole rollout's sampling noise in one draw per seat
                noise.append(dist.noise(num_steps, generator))
            action = dist.sample_with(noise[i][t])
            obs[i].append(runner.obs[i])
            actions[i].append(action)
            joint.append(action)
        step, done_episodes = runner.step(joint)
        if done_episodes is not None:
            finished.append(done_episodes)
        utility.append(step.reward - step.cost)
        dones.append(step.done)
    all_utility, all_dones = torch.stack(utility), torch.stack(dones)
    batches = []
    for i, seat in enumerate(seats):
        batch = {
            "obs": torch.stack(obs[i]),
            "actions": torch.stack(actions[i]),
            "utility": all_utility[:, i],
            "dones": all_dones,
        }
        if i in frozen:
            batches.append(batch)
            continue
        dist = seat.distribution(batch["obs"])
        batch["logp"] = dist.log_prob(batch["actions"])
        if isinstance(dist, Categorical):
            batch["probs"] = dist.probs.reshape(-1, dist.probs.shape[-1]).mean(0)
        if getattr(seat, "critic_head", None) is not None:
            batch["values"] = seat.value(batch["obs"])
            batch["last_value"] = seat.value(runner.obs[i])
        batches.append(batch)
    return batches, concat(finished, len(seats))


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
        step, finished = runner.step(actions)
        if finished is None:
            continue
        first = step.done & ~seen
        parts.append(finished.select(first[step.done]))
        order.append(torch.nonzero(first).squeeze(-1))
        seen |= step.done
        if bool(seen.all()):
            break
    return concat(parts, len(seats)).select(torch.argsort(torch.cat(order)))
