"""Seat any set of policies into a batched env and collect a rollout or evaluation episodes.

A seat holds anything with ``distribution(obs, mask)``: a trained network, an adversary,
a scripted policy, later a zoo partner. The runner keeps an env's current observations and the
running sums of unfinished episodes, so episodes continue across rollouts (and resumes).

In turn-based envs (``Step.acting``) every seat still samples an action at every step (the
env ignores those of seats not acting) and the rollout records who acted and under which
legal-action mask, so the learners can leave the other steps out of their policy losses.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import torch

from srpo_core.agents.seat import Seat
from srpo_core.distributions import Categorical, Distribution
from srpo_core.envs.base import BatchedEnv, Step, stack_info


def bind_seats(env: BatchedEnv, seats: list[Seat]) -> None:
    """Call ``bind(env, index)`` on the seats that have it; collect and play_episodes do so
    on every call (binding again to the same env is cheap)."""
    for index, seat in enumerate(seats):
        bind = getattr(seat, "bind", None)
        if callable(bind):
            bind(env, index)


def observing(seats: list[Seat]) -> list[tuple[int, Callable]]:
    """(index, observe) of the seats with memory, which hear after every step what they
    did, what they got and which episodes ended: ``observe(action, utility, done)``."""
    return [
        (index, seat.observe)
        for index, seat in enumerate(seats)
        if callable(getattr(seat, "observe", None))
    ]


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
    env: torch.Tensor | None = None
    """[E] the env of the batch each episode was played in (None where not tracked)."""

    def select(self, index: torch.Tensor) -> Episodes:
        """The episodes picked by a boolean mask or index tensor."""
        return Episodes(
            reward=self.reward[:, index],
            cost=self.cost[:, index],
            length=self.length[index],
            info={k: v[index] for k, v in self.info.items()},
            env=None if self.env is None else self.env[index],
        )

    def split(self, members: int, num_envs: int) -> list[Episodes]:
        """Per member of a population whose batch of ``num_envs`` envs splits into equal
        consecutive slices, the episodes played in its slice."""
        owner = self.env // (num_envs // members)
        return [self.select(owner == k) for k in range(members)]

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

    The sums live in one [rows, num_envs] float64 tensor (each agent's reward, each agent's
    cost, the length, then the env's info counters). `count` adds any number of
    consecutive steps at once, so a rollout pays for the bookkeeping once, not per step."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.obs = env.reset()
        self.legal, self.acting = env.masks()
        self.info_keys: tuple[str, ...] | None = None
        self.sums: torch.Tensor | None = None

    def advance(self, actions: list[torch.Tensor]) -> Step:
        """Step the env and move on to its new observations; `count` the step later."""
        step = self.env.step(actions)
        self.obs = step.obs
        self.legal, self.acting = step.legal, step.acting
        return step

    def step(self, actions: list[torch.Tensor]) -> tuple[Step, Episodes | None]:
        """Step the env; returns the step and the episodes it completed (None if none)."""
        step = self.advance(actions)
        return step, self.tally([step], *stack_steps([step]))

    def tally(
        self, steps: list[Step], reward: torch.Tensor, cost: torch.Tensor, done: torch.Tensor
    ) -> Episodes | None:
        """Add consecutive steps to the running sums (with their rewards, costs and dones
        stacked by `stack_steps`); the episodes they completed, ordered by the step that
        ended them, then by env (None if none ended)."""
        if self.info_keys is None:
            self.info_keys = tuple(steps[0].info)
        num_envs, device = self.env.num_envs, self.env.device
        parts = [reward, cost, torch.ones(len(steps), 1, num_envs, device=device)]
        if self.info_keys:
            parts.append(torch.stack([stack_info(s.info, self.info_keys) for s in steps]))
        rows = torch.cat(parts, 1).double()  # [T, rows, B]
        if self.sums is None:
            self.sums = torch.zeros(rows.shape[1:], dtype=torch.float64, device=device)
        totals = rows.cumsum(0) + self.sums  # per env, everything since its episode began
        if not bool(done.any()):
            self.sums = totals[-1]
            return None
        # An episode's sums: totals where it ended minus totals where the one before ended
        # in the same env (zero for the first: the carried sums are in the totals already).
        steps_index = torch.arange(len(steps), device=device).unsqueeze(1)
        last_end = torch.where(done, steps_index, -1).cummax(0).values  # [T, B]
        padded = torch.cat([torch.zeros_like(totals[:1]), totals])
        envs = torch.arange(num_envs, device=device)
        t, b = done.nonzero(as_tuple=True)
        before = torch.cat([torch.full_like(last_end[:1], -1), last_end[:-1]])[t, b]
        columns = totals[t, :, b] - padded[before + 1, :, b]  # [E, rows]
        self.sums = totals[-1] - padded[last_end[-1] + 1, :, envs].T
        return self.episodes(columns.T.float(), b)

    def mask(self, agent: int) -> torch.Tensor | None:
        """The action mask ``agent`` samples under now: its legal actions when it acts, every
        action when it does not (the env ignores that action; the distribution stays proper),
        None in envs without masks."""
        if self.legal is None:
            return None
        legal = self.legal[agent]
        return legal if self.acting is None else legal | ~self.acting[agent].unsqueeze(-1)

    def episodes(self, columns: torch.Tensor, env: torch.Tensor) -> Episodes:
        n = self.env.num_agents
        info = {key: columns[2 * n + 1 + j] for j, key in enumerate(self.info_keys or ())}
        return Episodes(columns[:n], columns[n : 2 * n], columns[2 * n], info, env)

    def state_dict(self) -> dict[str, Any]:
        return {
            "env": self.env.state_dict(),
            "obs": self.obs,
            "info_keys": list(self.info_keys) if self.info_keys is not None else None,
            "sums": self.sums,
            "legal": self.legal,
            "acting": self.acting,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state["env"])
        device = self.env.device
        self.obs = [obs.to(device) for obs in state["obs"]]
        keys = state["info_keys"]
        self.info_keys = tuple(keys) if keys is not None else None
        sums = state["sums"]
        self.sums = sums.to(device, torch.float64) if sums is not None else None
        legal, acting = state.get("legal"), state.get("acting")
        self.legal = [m.to(device) for m in legal] if legal is not None else None
        self.acting = acting.to(device) if acting is not None else None


class MemberGenerators:
    """One generator per member of a population: a batch of envs splits into equal
    consecutive slices, and each member's slice draws from its own generator, so a member
    draws the same numbers whichever members share the batch."""

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators

    def _parts(self, dist: Distribution) -> list[Distribution]:
        rows = (dist.raw if isinstance(dist, Categorical) else dist.mean).shape[0]
        width = rows // len(self.generators)
        return [dist[k * width : (k + 1) * width] for k in range(len(self.generators))]

    def noise(self, dist: Distribution, steps: int) -> torch.Tensor:
        parts = zip(self._parts(dist), self.generators, strict=True)
        return torch.cat([part.noise(steps, g) for part, g in parts], 1)

    def sample(self, dist: Distribution) -> torch.Tensor:
        parts = zip(self._parts(dist), self.generators, strict=True)
        return torch.cat([part.sample(g) for part, g in parts])


Rng = torch.Generator | MemberGenerators
"""A run's generator, or a population's generators (one per member)."""


def draw_noise(dist: Distribution, steps: int, rng: Rng) -> torch.Tensor:
    """Sampling noise for ``steps`` draws of ``dist`` (`Distribution.noise`)."""
    if isinstance(rng, MemberGenerators):
        return rng.noise(dist, steps)
    return dist.noise(steps, rng)


def draw_sample(dist: Distribution, rng: Rng) -> torch.Tensor:
    if isinstance(rng, MemberGenerators):
        return rng.sample(dist)
    return dist.sample(rng)


def stack_steps(steps: list[Step]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Consecutive steps' rewards and costs [T, num_agents, B] and dones [T, B]."""
    return (
        torch.stack([s.reward for s in steps]),
        torch.stack([s.cost for s in steps]),
        torch.stack([s.done for s in steps]),
    )


def concat(episodes: list[Episodes], num_agents: int) -> Episodes:
    """Episodes side by side; zero columns when the list is empty."""
    if not episodes:
        empty = torch.zeros(num_agents, 0)
        return Episodes(empty, empty, torch.zeros(0), env=torch.zeros(0, dtype=torch.long))
    keys = episodes[0].info.keys()
    envs = [e.env for e in episodes]
    return Episodes(
        reward=torch.cat([e.reward for e in episodes], 1),
        cost=torch.cat([e.cost for e in episodes], 1),
        length=torch.cat([e.length for e in episodes]),
        info={k: torch.cat([e.info[k] for e in episodes]) for k in keys},
        env=None if any(env is None for env in envs) else torch.cat(envs),
    )


@torch.no_grad()
def collect(
    runner: Runner,
    seats: list[Seat],
    num_steps: int,
    generator: Rng,
    frozen: Collection[int] = (),
) -> tuple[list[dict[str, torch.Tensor]], Episodes]:
    """Play ``num_steps`` steps; per seat a dict of [T, B, ...] tensors (obs, actions, logp,
    utility, dones, values and last_value where the seat has a critic, mean action probs;
    in envs with masks also ``mask``, the action mask sampled under, and in turn-based envs
    ``acting``, whether the seat's action was applied).

    Only the acting forward pass runs per step, with sampling noise drawn for the whole
    rollout up front; log-probs, values and probabilities are computed once over the
    rollout afterwards (the policies do not change within a rollout, so the numbers are
    the same and the per-step overhead is much lower). ``frozen`` seats learn nothing from
    the rollout, so they get no log-probs or values.
    """
    bind_seats(runner.env, seats)
    observers = observing(seats)
    obs: list[list[torch.Tensor]] = [[] for _ in seats]
    actions: list[list[torch.Tensor]] = [[] for _ in seats]
    masks: list[list[torch.Tensor]] = [[] for _ in seats]
    noise: list[tuple[torch.Tensor, ...]] = []
    steps: list[Step] = []
    acting = []
    for t in range(num_steps):
        joint = []
        if runner.acting is not None:
            acting.append(runner.acting)
        for i, seat in enumerate(seats):
            mask = runner.mask(i)
            dist = seat.distribution(runner.obs[i], mask)
            if t == 0:  # the whole rollout's sampling noise in one draw per seat
                noise.append(draw_noise(dist, num_steps, generator).unbind(0))
            action = dist.sample_with(noise[i][t])
            obs[i].append(runner.obs[i])
            actions[i].append(action)
            if mask is not None:
                masks[i].append(mask)
            joint.append(action)
        step = runner.advance(joint)
        for i, observe in observers:
            observe(joint[i], step.reward[i] - step.cost[i], step.done)
        steps.append(step)
    reward, cost, all_dones = stack_steps(steps)
    finished = runner.tally(steps, reward, cost, all_dones)
    all_utility = reward - cost
    all_acting = torch.stack(acting) if acting else None
    batches = []
    for i, seat in enumerate(seats):
        batch = {
            "obs": torch.stack(obs[i]),
            "actions": torch.stack(actions[i]),
            "utility": all_utility[:, i],
            "dones": all_dones,
        }
        if masks[i]:
            batch["mask"] = torch.stack(masks[i])
        if all_acting is not None:
            batch["acting"] = all_acting[:, i]
        if i in frozen:
            batches.append(batch)
            continue
        dist = seat.distribution(batch["obs"], batch.get("mask"))
        batch["logp"] = dist.log_prob(batch["actions"])
        if isinstance(dist, Categorical):
            probs = dist.probs.reshape(-1, dist.probs.shape[-1])
            if "acting" in batch:  # the seat's own decisions only
                probs = probs[batch["acting"].reshape(-1)]
            batch["probs"] = probs.mean(0)
        if getattr(seat, "critic_head", None) is not None:
            batch["values"] = seat.value(batch["obs"])
            batch["last_value"] = seat.value(runner.obs[i])
        batches.append(batch)
    return batches, finished if finished is not None else concat([], len(seats))


@torch.no_grad()
def play_episodes(
    env: BatchedEnv, seats: list[Seat], generator: Rng, max_steps: int = 100_000
) -> Episodes:
    """The first episode of every env in the batch (one episode per env), with sampled
    actions; the evaluation primitive behind training evals and, later, cross-play."""
    runner = Runner(env)
    bind_seats(env, seats)
    observers = observing(seats)
    seen = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    parts: list[Episodes] = []
    order: list[torch.Tensor] = []
    for _ in range(max_steps):
        actions = [
            draw_sample(seat.distribution(obs, runner.mask(i)), generator)
            for i, (seat, obs) in enumerate(zip(seats, runner.obs, strict=True))
        ]
        step, finished = runner.step(actions)
        for i, observe in observers:
            observe(actions[i], step.reward[i] - step.cost[i], step.done)
        if finished is None:
            continue
        first = step.done & ~seen
        parts.append(finished.select(first[step.done]))
        order.append(torch.nonzero(first).squeeze(-1))
        seen |= step.done
        if bool(seen.all()):
            break
    return concat(parts, len(seats)).select(torch.argsort(torch.cat(order)))
