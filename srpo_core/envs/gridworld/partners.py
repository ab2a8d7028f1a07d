"""Scripted partners for the paper's 5x5 gridworld (`srpo_core.envs.gridworld.env`), held-out
co-players of known behaviour: ``scripted:gridworld/worker``, ``/half-worker``, ``/noisy``.

The work is split by seat: agent ``i`` fetches onion ``i`` (agent0 the onion at (3, 4),
agent1 the one at (4, 3)) and carries it into the pot, over and over. It walks a shortest
path around the pot and around the other agent's current cell, never steps into the other
agent's cell, and breaks ties between shortest paths so that the two workers keep to
separate lanes (agent0 prefers right, up, left, down: (2, 3)-(2, 4)-(3, 4); agent1 down,
left, up, right: (3, 2)-(4, 2)-(4, 3)); they can still bump when both step into the same
free cell in one step (at the unswapped start, (1, 1)),
and while its onion is missing it waits, for free, next to the onion's cell. It reads only
the shared observation; as both seats see the same vector, `bind(env, index)` (which the
rollout calls on every seat before it acts) tells it which agent it is.

The deterministic choice is wrapped in a Categorical, so the randomness of the half-worker
and the noisy worker is the rollout's own sampling (its generator): the same seed gives the
same episodes.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from srpo_core.distributions import Categorical
from srpo_core.envs.family import Scripted
from srpo_core.envs.gridworld.env import DELTAS, ONIONS, POT, SIZE, STAY, GridworldEnv

NUM_ACTIONS = len(DELTAS)
TARGETS = (*ONIONS, POT)
"""Plan targets: onion 0, onion 1, the pot (index 2)."""
UP, DOWN, LEFT, RIGHT = range(4)
PREFERENCE = ((RIGHT, UP, LEFT, DOWN), (DOWN, LEFT, UP, RIGHT))
"""Per agent, the order in which ties between shortest paths are broken (its lane)."""


def _cell(row: int, col: int) -> int:
    return row * SIZE + col


@functools.lru_cache(maxsize=1)
def _plans() -> tuple[torch.Tensor, torch.Tensor]:
    """(go, wait), both [2 agents, 25 own cells, 25 other cells, 3 targets] long actions:
    ``go`` is
    the first step of a shortest path to the target avoiding the pot (unless it is the
    target: moving onto it delivers) and the other agent's cell, STAY when there is none;
    ``wait`` is the same but STAY instead of stepping onto the target (an onion that is
    missing now). Standing on its onion's cell, an agent steps off first (only moving in
    picks up)."""
    pot = _cell(*POT)
    go = torch.full((2, SIZE * SIZE, SIZE * SIZE, len(TARGETS)), STAY, dtype=torch.long)
    wait = go.clone()

    def neighbours(cell: int, order: tuple[int, ...] = (UP, DOWN, LEFT, RIGHT)):
        """(action, next cell) of the in-grid moves, in ``order``."""
        row, col = divmod(cell, SIZE)
        out = []
        for action in order:
            dr, dc = DELTAS[action]
            r, c = row + dr, col + dc
            if 0 <= r < SIZE and 0 <= c < SIZE:
                out.append((action, _cell(r, c)))
        return out

    for t, target in enumerate(TARGETS):
        goal = _cell(*target)
        for other in range(SIZE * SIZE):
            free = [c != pot and c != other for c in range(SIZE * SIZE)]
            dist = {goal: 0}  # BFS back from the goal over free cells
            queue = deque([goal])
            while queue:
                cell = queue.popleft()
                for _, nxt in neighbours(cell):
                    if free[nxt] and nxt not in dist:
                        dist[nxt] = dist[cell] + 1
                        queue.append(nxt)
            for (agent, order), own in itertools.product(enumerate(PREFERENCE), range(SIZE * SIZE)):
                if own == pot or own == other:
                    continue
                if own == goal:  # on the onion's cell: step off (to come back in)
                    steps = [a for a, n in neighbours(own, order) if free[n]]
                    go[agent, own, other, t] = steps[0] if steps else STAY
                    continue
                if own not in dist:
                    continue
                for action, nxt in neighbours(own, order):
                    if nxt in dist and dist[nxt] == dist[own] - 1:
                        go[agent, own, other, t] = action
                        wait[agent, own, other, t] = STAY if nxt == goal else action
                        break
    return go, wait


@functools.lru_cache(maxsize=4)
def _plans_on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    go, wait = _plans()
    return go.to(device), wait.to(device)


def worker_actions(obs: torch.Tensor, index: int, normalized: bool = False) -> torch.Tensor:
    """The worker's action for agent ``index`` from gridworld observations [..., 8]."""
    scale = 4.0 if normalized else 1.0
    grid = (obs[..., [0, 1, 3, 4]] * scale).round().long().clamp(0, SIZE - 1)
    cells = grid[..., [0, 2]] * SIZE + grid[..., [1, 3]]  # [..., 2] agent0, agent1 cells
    own, other = cells[..., index], cells[..., 1 - index]
    has = obs[..., 2 + 3 * index] > 0.5
    available = obs[..., 6 + index] > 0.5
    target = torch.where(has, len(TARGETS) - 1, index)
    go, wait = _plans_on(obs.device)
    go, wait = go[index], wait[index]
    return torch.where(has | available, go[own, other, target], wait[own, other, target])


class GridworldPartner:
    """The worker heuristic in a gridworld seat, with probability ``noise`` of a uniformly
    random action instead and, otherwise, probability ``activity`` of doing the worker's
    step (else STAY: idle)."""

    def __init__(self, name: str, env_config: Any, noise: float, activity: float) -> None:
        self.name = name
        self.normalized = bool(getattr(env_config, "normalize_obs", False))
        self.noise, self.activity = noise, activity
        self.index: int | None = None

    def bind(self, env: Any, index: int) -> None:
        """Play as agent ``index`` (rollout calls this on every seat before it acts)."""
        if not isinstance(env, GridworldEnv):
            raise TypeError(f"scripted:gridworld/{self.name} plays only the gridworld")
        self.index = index
        self.normalized = env.config.normalize_obs

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        if self.index is None:
            raise RuntimeError(
                f"scripted:gridworld/{self.name} is not bound to a seat: call bind(env, index) "
                "first (rollout.collect and rollout.play_episodes do)"
            )
        action = worker_actions(obs, self.index, self.normalized)
        probs = torch.full((*action.shape, NUM_ACTIONS), self.noise / NUM_ACTIONS)
        probs = probs.to(obs.device)
        probs[..., STAY] += (1 - self.noise) * (1 - self.activity)
        probs.scatter_add_(
            -1,
            action.unsqueeze(-1),
            torch.full_like(probs[..., :1], (1 - self.noise) * self.activity),
        )
        logits = probs.log().clamp_min(torch.finfo(probs.dtype).min)
        return Categorical(logits, mask)


PARTNERS: dict[str, dict[str, float]] = {
    # fetches its own onion and carries it into the pot, every time (deterministic)
    "worker": {"noise": 0.0, "activity": 1.0},
    # the worker's step with probability 1/2 per decision, else stays put
    "half-worker": {"noise": 0.0, "activity": 0.5},
    # the worker with a uniformly random action (of 5) with probability 0.3 per decision
    "noisy": {"noise": 0.3, "activity": 1.0},
}


def partner(name: str, env_config: Any) -> GridworldPartner:
    return GridworldPartner(name, env_config, **PARTNERS[name])


def _partner(name: str) -> Callable[[Any], GridworldPartner]:
    def build(env_config: Any) -> GridworldPartner:
        return partner(name, env_config)

    return build


SCRIPTED: dict[str, Scripted] = {
    name: Scripted("gridworld", "agent", _partner(name), dict(params))
    for name, params in PARTNERS.items()
}
