"""The paper's 5x5 collaborative gridworld (arXiv 2602.21515): two cooks, two onions, a pot.

Layout (row, col): pot (2, 2); onions (3, 4) and (4, 3); agents start at (1, 0) and (0, 1),
swapped with probability ``swap_starts_prob`` at each episode start. Actions up, down,
left, right, stay are applied one agent after the other, in a random order drawn per env
per step. Rules:

- Every non-stay action costs ``move_cost`` to the mover, also when it is blocked.
- Moving off the grid: blocked, nothing else happens.
- Moving onto the other agent's cell: blocked, the mover pays ``bump_cost`` on top.
- Moving onto the pot: never entered. Carrying an onion, the agent delivers it
  (``delivery_reward`` to both, hands now empty); empty-handed, it is just a blocked move.
- Entering a cell with an available onion empty-handed picks it up (``onion_reward`` to
  both; capacity one). A carrying agent walks over it and the onion stays. Only a move
  into the cell picks up: standing on a cell where an onion respawns does not.
- Respawn is checked after both moves: each onion that was already missing when the step
  began reappears with probability ``respawn_prob``; one taken during this step is missing
  in the next observation for sure and can respawn from the next step on.
- Episodes last ``horizon`` steps.

Both agents see the same 8-vector [a0 row, a0 col, a0 has, a1 row, a1 col, a1 has,
onion0 available, onion1 available]. Per step ``info`` counts, per agent, ``moves``
(non-stay actions), ``bumps`` (into the other agent), ``onions`` (picked up) and
``deliveries``.

Implementation: the game state fits in one integer code (positions, hands, onions), so the
rules (``_apply_moves``, batched torch ops written once) are run at construction over every
(state, joint action, order) and stored in a table; ``step`` is then a handful of lookups
for any batch size, on CPU or CUDA.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from srpo_core.envs.base import BatchedEnv, Discrete, EnvSpec, StackedInfo, Step
from srpo_core.envs.family import EnvConfig
from srpo_core.errors import UserError

SIZE = 5
CELLS = SIZE * SIZE
POT = (2, 2)
ONIONS = ((3, 4), (4, 3))
STARTS = ((1, 0), (0, 1))
ACTIONS = ("up", "down", "left", "right", "stay")
DELTAS = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))
STAY = 4
COUNTERS = ("moves", "bumps", "onions", "deliveries")
INFO_KEYS = tuple(f"agent{i}/{c}" for i in range(2) for c in COUNTERS)

# State code = ((p0 * 25 + p1) * 2 + has0) * 8 + has1 * 4 + onion bits (bit k: onion k
# available), p = row * 5 + col. Table index = (code * 25 + a0 * 5 + a1) * 2 + agent1_first.
NUM_CODES = CELLS * CELLS * 16
CODE_BITS = 14  # NUM_CODES <= 2**14; a table entry is next code | info bits << CODE_BITS


@dataclass
class GridworldEnvConfig(EnvConfig):
    name: str = "gridworld"
    horizon: int = 50
    """Steps per episode."""
    respawn_prob: float = 0.2
    """Per step, chance that a missing onion reappears."""
    move_cost: float = 0.2
    """Private cost of any non-stay action (blocked or not)."""
    bump_cost: float = 2.0
    """Extra private cost of trying to move onto the other agent."""
    onion_reward: float = 1.0
    """Shared reward for picking up an onion."""
    delivery_reward: float = 10.0
    """Shared reward for putting an onion into the pot."""
    swap_starts_prob: float = 0.5
    """Chance that the agents swap start cells at an episode start."""
    normalize_obs: bool = False
    """Divide coordinates by 4 (into [0, 1]); the paper uses raw coordinates."""

    def validate(self) -> None:
        if self.horizon < 1:
            raise UserError(f"env.horizon must be >= 1, got {self.horizon}")
        for key in ("respawn_prob", "swap_starts_prob"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"env.{key} must be in [0, 1], got {value}")
        for key in ("move_cost", "bump_cost", "onion_reward", "delivery_reward"):
            value = getattr(self, key)
            if not math.isfinite(value):
                raise UserError(f"env.{key} must be finite, got {value}")
        if self.move_cost < 0 or self.bump_cost < 0:
            raise UserError("env.move_cost and env.bump_cost must be >= 0")


def encode(pos: torch.Tensor, has: torch.Tensor, onions: torch.Tensor) -> torch.Tensor:
    """[..., 2, 2] (row, col) per agent, [..., 2] hands, [..., 2] onions -> [...] codes."""
    cell = pos[..., 0] * SIZE + pos[..., 1]
    has, onions = has.long(), onions.long()
    return (
        ((cell[..., 0] * CELLS + cell[..., 1]) * 2 + has[..., 0]) * 8
        + has[..., 1] * 4
        + onions[..., 0]
        + onions[..., 1] * 2
    )


def decode(code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of `encode`: (pos [..., 2, 2] long, has [..., 2] bool, onions [..., 2] bool)."""
    cells = torch.stack([code // (16 * CELLS), code // 16 % CELLS], -1)
    pos = torch.stack([cells // SIZE, cells % SIZE], -1)
    has = torch.stack([code // 8 % 2, code // 4 % 2], -1).bool()
    onions = torch.stack([code % 2, code // 2 % 2], -1).bool()
    return pos, has, onions


def _apply_moves(pos, has, onions, actions, agent1_first):
    """The rules, batched over rows: pos [N, 2] cells, has [N, 2] bool, onions [N, 2] bool,
    actions [N, 2], agent1_first [N] bool. Returns the new (pos, has, onions) and the
    per-step counters [N, 2 agents, 4] (moves, bumps, onions, deliveries)."""
    row, col = pos // SIZE, pos % SIZE
    delta = torch.tensor(DELTAS)[actions]  # [N, 2, 2]
    nr, nc = row + delta[..., 0], col + delta[..., 1]
    in_grid = (nr >= 0) & (nr < SIZE) & (nc >= 0) & (nc < SIZE)
    target = torch.where(in_grid, nr * SIZE + nc, pos).unbind(1)
    pot = POT[0] * SIZE + POT[1]
    onion_cells = torch.tensor([r * SIZE + c for r, c in ONIONS])
    pos, has = list(pos.unbind(1)), list(has.unbind(1))
    none = torch.zeros_like(agent1_first)
    bumps, picks, deliveries = [none, none], [none, none], [none, none]

    def move(i: int, active: torch.Tensor) -> None:
        nonlocal onions
        tgt = target[i]
        real = active & (tgt != pos[i])  # an in-grid move (stay and off-grid are not)
        bump = real & (tgt == pos[1 - i])
        at_pot = real & (tgt == pot)
        enter = real & ~bump & ~at_pot
        pick = (tgt.unsqueeze(1) == onion_cells) & onions
        pick &= (enter & ~has[i]).unsqueeze(1)
        deliver = at_pot & has[i]
        pos[i] = torch.where(enter, tgt, pos[i])
        has[i] = (has[i] | pick.any(1)) & ~deliver
        onions = onions & ~pick
        bumps[i] = bumps[i] | bump
        picks[i] = picks[i] | pick.any(1)
        deliveries[i] = deliveries[i] | deliver

    # sequential: the second mover sees the first's result (rows split by order)
    for i in (0, 1):
        move(i, agent1_first == bool(i))
    for i in (0, 1):
        move(i, agent1_first != bool(i))
    counters = torch.stack(
        [
            torch.stack([actions[:, i] != STAY, bumps[i], picks[i], deliveries[i]], 1)
            for i in (0, 1)
        ],
        1,
    )
    return torch.stack(pos, 1), torch.stack(has, 1), onions, counters


@functools.lru_cache(maxsize=4)
def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(next-code table [NUM_CODES * 200] long, counter-bits table [NUM_CODES * 200] int32,
    observation table [NUM_CODES, 8] float).

    Table index = code * 200 + a0 * 40 + a1 * 8 + agent1_first * 4 + spawn, where spawn's
    bit k says onion k respawns if it was missing when the step began; the entries are the
    next code and the step's 8 counter bits (bit 4 * agent + counter)."""
    code = torch.arange(NUM_CODES)
    pos, has, onions = decode(code)
    obs = torch.cat([pos[:, 0], has[:, :1], pos[:, 1], has[:, 1:], onions], 1).float()
    index = torch.arange(NUM_CODES * 50)  # every (code, a0, a1, agent1_first)
    code = index // 50
    actions = torch.stack([index // 10 % 5, index // 2 % 5], 1)
    pos, has, onions = decode(code)
    cells = pos[..., 0] * SIZE + pos[..., 1]
    cells, has, onions, counters = _apply_moves(cells, has, onions, actions, (index % 2).bool())
    pos = torch.stack([cells // SIZE, cells % SIZE], -1)
    bits = (counters.flatten(1).long() << torch.arange(8)).sum(1)
    moved = encode(pos, has, onions) | bits << CODE_BITS
    missing = (code & 3) ^ 3  # onion bits missing before the moves
    table = (moved.unsqueeze(1) | (torch.arange(4) & missing.unsqueeze(1))).flatten()
    next_code = table & (2**CODE_BITS - 1)
    return next_code.to(device), (table >> CODE_BITS).int().to(device), obs.to(device)


class GridworldEnv(BatchedEnv):
    member_seeded = True
    per_env_state = ("positions", "carrying", "onions", "t")
    agents = ("agent0", "agent1")
    obs_dims = (8, 8)
    action_spaces = (Discrete(5, ACTIONS), Discrete(5, ACTIONS))

    def __init__(self, config: GridworldEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        config.validate()
        self.config = config
        self.horizon = config.horizon
        self.swap_prob = config.swap_starts_prob
        self.next_code, self.counter_bits, self.obs_table = _tables(self.device)
        if config.normalize_obs:
            scale = torch.tensor([4, 4, 1, 4, 4, 1, 1, 1.0], device=self.device)
            self.obs_table = self.obs_table / scale
        # info bits -> rows [reward, reward, cost0, cost1, 8 counters], all 256 combinations
        bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
        count = bits.float().reshape(256, 2, 4)
        reward = count[..., 2] * config.onion_reward + count[..., 3] * config.delivery_reward
        reward = reward.sum(1, keepdim=True)
        cost = count[..., 0] * config.move_cost + count[..., 1] * config.bump_cost
        self.outcomes = torch.cat([reward, reward, cost, bits.float()], 1).T.contiguous()
        self.outcomes = self.outcomes.to(self.device)
        # one uniform per env and step -> k = agent1_first * 4 + spawn (bit j: onion j
        # respawns if missing), with P(agent1_first) = 1/2 and independent respawns
        p = config.respawn_prob
        spawn = torch.tensor([(1 - p) ** 2, p * (1 - p), (1 - p) * p, p**2], dtype=torch.float64)
        edges = torch.cumsum(torch.cat([spawn, spawn]) / 2, 0)[:-1]
        self.k_edges = edges.float().to(self.device)
        self.swap_edge = torch.tensor([self.swap_prob], device=self.device)
        long = dict(dtype=torch.long, device=self.device)
        # start codes [swapped, plain], picked by bucketize(u, [swap_prob]) = (u >= swap_prob)
        starts = torch.tensor([STARTS[::-1], STARTS], device=self.device)
        both = torch.ones(2, 2, dtype=torch.bool, device=self.device)
        self.start_codes = encode(starts, ~both, both)
        self.code = torch.zeros(num_envs, **long)
        self.clock: int | None = 0
        """Steps into the episode while every env is at the same step (the usual case: all
        start together, and episodes have a fixed length), so the horizon is checked once
        in Python; None when `set_state` gave envs different steps (then `_t` has them)."""
        self._t = torch.zeros(num_envs, **long)
        self.agent1_first: torch.Tensor | None = None
        """Debug/test hook: a [num_envs] bool tensor forces the move order (True: agent1
        moves first) in every step; None draws it at random. Random numbers are drawn
        either way, so forcing the order leaves the rest of the stream unchanged."""

    # --- state ---------------------------------------------------------------------------

    @property
    def positions(self) -> torch.Tensor:
        """[num_envs, 2 agents, 2] (row, col)."""
        return decode(self.code)[0]

    @property
    def carrying(self) -> torch.Tensor:
        return decode(self.code)[1]

    @property
    def onions(self) -> torch.Tensor:
        """[num_envs, 2] bool: onion k is available."""
        return decode(self.code)[2]

    def set_state(
        self,
        positions: torch.Tensor,
        carrying: torch.Tensor,
        onions: torch.Tensor,
        t: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Place every env's state by hand (tests, debugging); returns the observations."""
        positions = torch.as_tensor(positions, device=self.device).long()
        cells = positions[..., 0] * SIZE + positions[..., 1]
        if ((positions < 0) | (positions >= SIZE)).any() or (cells[..., 0] == cells[..., 1]).any():
            raise ValueError("positions must be on the grid and distinct")
        if (cells == POT[0] * SIZE + POT[1]).any():
            raise ValueError("no agent can stand on the pot")
        self.code = (
            encode(
                positions,
                torch.as_tensor(carrying, device=self.device),
                torch.as_tensor(onions, device=self.device),
            )
            .expand(self.num_envs)
            .clone()
        )
        self.t = torch.zeros(self.num_envs, dtype=torch.long, device=self.device) + (
            0 if t is None else torch.as_tensor(t, device=self.device).long()
        )
        return self._observe()

    def state_dict(self) -> dict[str, Any]:
        pos, has, onions = decode(self.code)
        return {
            "generator": self.rng_state(),
            "positions": pos,
            "carrying": has,
            "onions": onions,
            "t": self.t.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_rng_state(state["generator"])
        self.code = encode(
            state["positions"].to(self.device),
            state["carrying"].to(self.device),
            state["onions"].to(self.device),
        )
        self.t = state["t"].to(self.device, torch.long, copy=True)

    @property
    def t(self) -> torch.Tensor:
        """[num_envs] steps into each env's episode (a copy: assign to change it)."""
        if self.clock is None:
            return self._t.clone()
        return torch.full((self.num_envs,), self.clock, dtype=torch.long, device=self.device)

    @t.setter
    def t(self, value: torch.Tensor) -> None:
        value = value.to(self.device, torch.long).expand(self.num_envs)
        in_step = bool((value == value[0]).all())
        self.clock = int(value[0]) if in_step else None
        self._t = value.clone()

    # --- dynamics ------------------------------------------------------------------------

    def _observe(self) -> list[torch.Tensor]:
        obs = self.obs_table[self.code]
        return [obs, obs]

    def reset(self) -> list[torch.Tensor]:
        u = self.rand()
        self.code = self.start_codes[torch.bucketize(u, self.swap_edge, right=True)]
        self.clock = 0
        return self._observe()

    def step(self, actions: list[torch.Tensor]) -> Step:
        a0, a1 = actions  # long in 0..4, not checked (hot path)
        u = self.rand(2)
        k = torch.bucketize(u[0], self.k_edges, right=True)
        if self.agent1_first is not None:
            k = (k & 3) | self.agent1_first.long() * 4
        index = torch.add(k, self.code, alpha=200)
        index.add_(a0, alpha=40).add_(a1, alpha=8)
        out = self.outcomes[:, self.counter_bits[index]]  # [12, B]
        moved = self.next_code[index]
        if self.clock is not None:  # all envs at the same step: they end together
            self.clock += 1
            ended = self.clock >= self.horizon
            done = torch.full((self.num_envs,), ended, device=self.device)
            if ended:
                self.code = self.start_codes[torch.bucketize(u[1], self.swap_edge, right=True)]
                self.clock = 0
            else:
                self.code = moved
        else:
            self._t += 1
            done = self._t >= self.horizon
            swap = torch.bucketize(u[1], self.swap_edge, right=True)
            self.code = torch.where(done, self.start_codes[swap], moved)
            self._t.masked_fill_(done, 0)
            if bool(done.any()):  # back in step once every env has had an episode end
                self.t = self._t
        return Step(
            obs=self._observe(),
            reward=out[0:2],
            cost=out[2:4],
            done=done,
            info=StackedInfo(INFO_KEYS, out[4:]),
        )


def spec(config: GridworldEnvConfig) -> EnvSpec:
    return EnvSpec(GridworldEnv.agents, GridworldEnv.obs_dims, GridworldEnv.action_spaces)
