"""overcooked-ai 1.1.0 layouts as a batched two-agent env (``--env overcooked``).

This module holds the config, the rules as documented here, and the package backend
(``env.backend=package``); the default torch backend (`srpo_core.envs.overcooked.torch_env`)
plays the same games as tensors, tested step by step against this one.

Every sub-env is the package's own ``OvercookedEnv`` (its gym wrapper is broken and is not
used), stepped with joint actions in overcooked-ai's order: up (north), down (south),
right (east), left (west), stay, interact. A full pot cooks only after an interact (the
package's 1.1.0 dynamics). Episodes last ``horizon`` steps and reset automatically.

Rewards and costs (srpo's split of utility = team reward - private cost):

- team reward (both agents, ``Step.reward``) = the sparse delivery reward of the step
  (``sum(info["sparse_r_by_agent"])``, 20 per onion soup) + w * the shaped reward
  (``sum(info["shaped_r_by_agent"])``: 3 per ingredient potted, 3 per useful dish pickup,
  5 per soup picked up), with the shaping weight
  ``w = shaped_reward_scale * max(0, 1 - n / shaped_anneal_steps)`` (constant
  ``shaped_reward_scale`` when ``shaped_anneal_steps`` is 0). ``n`` counts the sub-env steps
  *this env object* has taken before the batched step (every sub-env adds one per step),
  so the schedule needs no hook into the training loop and survives resumes
  (``state_dict``). For IPPO that is the run's env steps; SRPO steps one env per hero, so
  there ``n`` is that hero's samples (half the run's env steps with the default
  ``algo.budget = env_steps``; the SRPO presets halve ``shaped_anneal_steps``). Fresh
  envs (evaluations) start at n = 0, i.e. full shaping: read ``eval/sparse_reward``
  for the score.
- private cost (``Step.cost``) per agent: ``move_cost`` for each up/down/left/right
  action (also when a counter or the partner blocks it), ``interact_cost`` per interact,
  and ``bump_cost`` on top when the agent's move is cancelled by a collision with the
  partner (overcooked-ai undoes both moves when the agents would share a cell or swap):
  only an agent that really tried to move pays; one standing still is bumped into for free.
- ``Step.info`` per step: per agent ``agentI/moves``, ``/interacts``, ``/bumps``,
  ``/onions_potted``, ``/dishes_picked_up``, ``/soups_delivered`` (the package's
  ``potting_onion``, ``dish_pickup`` and ``soup_delivery`` events; a soup served counts
  even when it earns nothing, e.g. one cooked with fewer than 3 onions), and the team's
  ``sparse_reward`` and ``shaped_reward`` (unweighted); episode sums of these are logged,
  together with each agent's cost and the free-riding degree |cost0 - cost1|.

Observations: ``featurized`` (default) is the mdp's ``featurize_state`` with its
medium-level action manager (96 floats per agent for two pots); ``lossless`` is
``lossless_state_encoding`` (width x height x 26 masks per agent), flattened.

Workers and seeds: ``workers > 0`` splits the batch into that many contiguous slices, each
stepped in a daemon process over a pipe; 0 steps them in this process. Both paths run the
same `_Shard` code, so results do not depend on ``workers``. The only randomness is drawn
in the main process from ``self.generator``: one seed per sub-env episode, used for the
start positions when ``random_start`` is set and for scripted partners' random choices
(overcooked-ai's agents use numpy's global RNG; each sub-env's agent gets its own state,
swapped in around its call). Workers stop on ``close()``, when the env is garbage
collected, at interpreter exit, or (if the parent dies) when their pipe closes; they
ignore Ctrl-C, which is the parent's to handle.

Resumes: ``state_dict`` gathers every sub-env's full ``OvercookedState`` (as the package's
``to_dict``), the episode seeds, the step counter and any scripted partners' state
(history, RNG, pending action); ``load_state_dict`` puts them back, in workers or not, so a
resumed run continues exactly.

Scripted partners (overcooked-ai's ``GreedyHumanModel`` etc.) need the full game state,
which lives here (in the workers): `attach_scripted` makes the shards run such an agent for
a seat after every step, and `scripted_actions` hands its actions to the seat object
(`srpo_core.envs.overcooked.scripted`), which `rollout` binds to the env.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch

from srpo_core.envs.base import BatchedEnv, Discrete, EnvSpec, Step
from srpo_core.envs.family import EnvConfig
from srpo_core.envs.overcooked.agents import agent_state, build_agent, load_agent_state
from srpo_core.envs.overcooked.compat import import_overcooked
from srpo_core.envs.overcooked.layouts import layout_names, layout_planner
from srpo_core.envs.shards import Shards
from srpo_core.errors import UserError

ACTION_LABELS = ("up", "down", "right", "left", "stay", "interact")
"""overcooked-ai's ``Action.INDEX_TO_ACTION``: NORTH, SOUTH, EAST, WEST, STAY, INTERACT."""
MOVES, INTERACT = (0, 1, 2, 3), 5
EVENTS = {
    "onions_potted": "potting_onion",
    "dishes_picked_up": "dish_pickup",
    "soups_delivered": "soup_delivery",
}
COUNTERS = ("moves", "interacts", "bumps", *EVENTS)
OBS_KINDS = ("featurized", "lossless")
BACKENDS = ("package", "torch")
SEED_BOUND = 2**31 - 1


@dataclass
class OvercookedEnvConfig(EnvConfig):
    NON_GAME_KEYS: ClassVar[tuple[str, ...]] = ("workers", "backend")
    """Results depend on neither the worker count nor the backend (zoos and cross-play
    ignore them)."""

    name: str = "overcooked"
    layout: str = "cramped_room"
    """Any overcooked-ai layout by file name (e.g. cramped_room, coordination_ring,
    counter_circuit_o_1order, forced_coordination, asymmetric_advantages)."""
    horizon: int = 400
    """Steps per episode."""
    obs: str = "featurized"
    """featurized (96 per agent) | lossless (flattened width x height x 26 masks)."""
    shaped_reward_scale: float = 1.0
    """Initial weight of overcooked-ai's shaped reward in the team reward (0 = sparse only)."""
    shaped_anneal_steps: int = 0
    """Env steps (of this env object) over which the shaped weight decays linearly to 0;
    0 keeps it constant."""
    move_cost: float = 0.0
    """Private cost of each up/down/left/right action, blocked or not."""
    interact_cost: float = 0.0
    """Private cost of each interact action."""
    bump_cost: float = 0.0
    """Extra private cost of a move cancelled by a collision with the partner."""
    cost_ramp_steps: int = 0
    """Env steps (of this env object) over which the private costs' weight rises linearly
    from 0 to 1, so that cooks learn to cook before moving costs them; 0 charges them in
    full from the start. Evaluations always charge them in full."""
    cook_full_pots_only: bool = True
    """Interacting with a pot starts cooking only when the pot is full (3 ingredients), as
    in the original Overcooked. overcooked-ai 1.1 also cooks partial soups: they earn no
    delivery reward but every shaped reward, and PPO learns to serve one-onion soups
    (measured: IPPO on cramped_room, 1M steps, 15 soups per episode, sparse reward 0). An
    interact that would start such a soup does nothing (its cost is still paid)."""
    random_start: bool = False
    """Draw start positions uniformly from all pairs of free cells (seeded) instead of the
    layout's fixed ones. On layouts split by counters (forced_coordination,
    asymmetric_advantages) both cooks may then start on the same side."""
    workers: int = 2
    """Processes stepping slices of the batch; 0 steps every sub-env in this process."""
    start_method: str = "auto"
    """auto (fork where available, else spawn) | fork | spawn | forkserver."""
    backend: str = "torch"
    """torch (the games as tensors, all stepped at once on the run's device, ``workers``
    ignored: `srpo_core.envs.overcooked.torch_env`) | package (overcooked-ai's own
    OvercookedEnv objects, in ``workers`` processes). Same episodes, rewards,
    observations and checkpoints either way (tests/test_overcooked_torch.py)."""
    partner: str = ""
    """Optional frozen partner in seat agent1 (e.g. scripted:overcooked/greedy or
    RUN_ID/agent1): agent0 then learns to work with it."""

    def frozen_seats(self) -> dict[str, str]:
        """Seat -> policy ref of the seats that play along without learning."""
        return {"agent1": self.partner} if self.partner else {}

    def validate(self) -> None:
        known = layout_names()
        if self.layout not in known:
            raise UserError(
                f"unknown overcooked layout '{self.layout}' (known: {', '.join(known)})"
            )
        if self.horizon < 1:
            raise UserError(f"env.horizon must be >= 1, got {self.horizon}")
        if self.obs not in OBS_KINDS:
            raise UserError(f"env.obs must be one of {', '.join(OBS_KINDS)}, got '{self.obs}'")
        for key in ("shaped_reward_scale", "move_cost", "interact_cost", "bump_cost"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise UserError(f"env.{key} must be finite and >= 0, got {value}")
        for key in ("shaped_anneal_steps", "cost_ramp_steps"):
            if getattr(self, key) < 0:
                raise UserError(f"env.{key} must be >= 0, got {getattr(self, key)}")
        if self.workers < 0:
            raise UserError(f"env.workers must be >= 0, got {self.workers}")
        if self.backend not in BACKENDS:
            raise UserError(
                f"env.backend must be one of {', '.join(BACKENDS)}, got '{self.backend}'"
            )
        methods = ("auto", *mp.get_all_start_methods())
        if self.start_method not in methods:
            raise UserError(
                f"env.start_method must be one of {', '.join(methods)}, got '{self.start_method}'"
            )

    def shaped_weight(self, steps: int) -> float:
        """The shaping weight after ``steps`` env steps (the annealing schedule)."""
        if self.shaped_anneal_steps == 0:
            return self.shaped_reward_scale
        return self.shaped_reward_scale * max(0.0, 1.0 - steps / self.shaped_anneal_steps)

    def cost_weight(self, steps: int) -> float:
        """The private costs' weight after ``steps`` env steps (the ramp)."""
        if self.cost_ramp_steps == 0:
            return 1.0
        return min(1.0, steps / self.cost_ramp_steps)

    def evaluated(self) -> OvercookedEnvConfig:
        """The game evaluations play: the training schedules run to their end (the shaping
        weight at its final value, 0 when it anneals; the private costs in full)."""
        final = 0.0 if self.shaped_anneal_steps else self.shaped_reward_scale
        return replace(self, shaped_reward_scale=final, shaped_anneal_steps=0, cost_ramp_steps=0)


def obs_dim(config: OvercookedEnvConfig) -> int:
    mdp, _ = layout_planner(config.layout)
    if config.obs == "featurized":
        return int(mdp.get_featurize_state_shape(2)[0])  # both players' features, own first
    return int(np.prod(mdp.get_lossless_state_encoding_shape()))


def spec(config: OvercookedEnvConfig) -> EnvSpec:
    dim = obs_dim(config)
    grids: tuple = ()
    if config.obs == "lossless":  # [x][y][26 masks], flattened (x * height + y) * 26 + mask
        mdp, _ = layout_planner(config.layout)
        width, height, masks = (int(v) for v in mdp.get_lossless_state_encoding_shape())
        grids = ((width, height, masks),) * 2
    return EnvSpec(OvercookedEnvBase.agents, (dim, dim), OvercookedEnvBase.action_spaces, grids)


class _Shard:
    """A slice of the batch: overcooked-ai ``OvercookedEnv`` objects, numpy in and out.
    Runs in this process or inside a worker; both paths execute exactly this code."""

    def __init__(self, config_dict: dict[str, Any], count: int) -> None:
        self.config = config = OvercookedEnvConfig(**config_dict)
        self.env_mod = import_overcooked("mdp.overcooked_env")
        self.mdp_mod = import_overcooked("mdp.overcooked_mdp")
        self.action_class = import_overcooked("mdp.actions").Action
        self.actions = self.action_class.INDEX_TO_ACTION
        self.mdp, self.mlam = layout_planner(config.layout)
        self.envs = []
        for _ in range(count):
            env = self.env_mod.OvercookedEnv.from_mdp(
                self.mdp, horizon=config.horizon, info_level=0
            )
            # The layout's planner, shared: left unset, OvercookedEnv builds (and pickles)
            # its own on first use, once per sub-env.
            env._mlam = self.mlam
            self.envs.append(env)
        self.dim = obs_dim(config)
        self._joint_positions: list | None = None
        self.seeds = [0] * count
        self.scripted: dict[int, dict[str, Any]] = {}
        """seat -> {"name", "params", "agents": [per env], "rng": [numpy RNG states],
        "actions": int array of the pending actions}"""

    # -- episodes ----------------------------------------------------------------------

    def _recipes(self) -> None:
        """overcooked-ai keeps the recipe configuration in a class attribute, set by the
        last mdp built in the process; re-apply this layout's before using it."""
        recipe = self.mdp_mod.Recipe
        if recipe._conf is not self.mdp.recipe_config:
            recipe.configure(self.mdp.recipe_config)

    def _start_fn(self, seed: int):
        if not self.config.random_start:
            return None
        if self._joint_positions is None:
            self._joint_positions = self.mdp.get_valid_joint_player_positions()
        rng = np.random.default_rng(seed)
        positions = self._joint_positions[int(rng.integers(len(self._joint_positions)))]
        state = self.mdp_mod.OvercookedState.from_player_positions(
            positions,
            bonus_orders=self.mdp.start_bonus_orders,
            all_orders=self.mdp.start_all_orders,
        )
        return lambda: state

    def _observe(self, index: list[int]) -> list[np.ndarray]:
        obs = [np.zeros((len(index), self.dim), dtype=np.float32) for _ in range(2)]
        for row, b in enumerate(index):
            state = self.envs[b].state
            if self.config.obs == "featurized":
                parts = self.mdp.featurize_state(state, self.mlam)
            else:
                parts = self.mdp.lossless_state_encoding(state, self.config.horizon)
            for out, part in zip(obs, parts, strict=True):
                out[row] = np.ravel(part)
        return obs

    def reset(self, index: list[int], seeds: list[int]) -> tuple[list[np.ndarray], dict]:
        """Start new episodes in sub-envs ``index`` with ``seeds``; their observations and
        the scripted seats' actions for them."""
        self._recipes()
        for b, seed in zip(index, seeds, strict=True):
            env = self.envs[b]
            env.start_state_fn = self._start_fn(seed)
            env.reset(regen_mdp=False)
            self.seeds[b] = seed
            for seat, scripted in self.scripted.items():
                self._new_agent(scripted, seat, b)
        return self._observe(index), self._act(index)

    def step(self, joint: np.ndarray) -> tuple:
        """joint [count, 2] action indices. Returns (obs of the unfinished envs, zeros for
        the finished ones), sparse and shaped rewards [count, 2] (the package's per-agent
        info), counters [count, 2, 4] (bumps, then the EVENTS), done [count] and the
        scripted seats' next actions (unfinished envs)."""
        self._recipes()
        count = len(self.envs)
        sparse = np.zeros((count, 2), dtype=np.float32)
        shaped = np.zeros((count, 2), dtype=np.float32)
        counters = np.zeros((count, 2, 1 + len(EVENTS)), dtype=np.float32)
        done = np.zeros(count, dtype=bool)
        for b, env in enumerate(self.envs):
            actions = [self.actions[a] for a in joint[b]]
            if self.config.cook_full_pots_only:
                actions = [self._no_partial_cooking(env.state, i, a) for i, a in enumerate(actions)]
            players = env.state.players
            old = tuple(p.position for p in players)
            intended = tuple(
                self.mdp._move_if_direction(p.position, p.orientation, a)[0]
                for p, a in zip(players, actions, strict=True)
            )
            collided = self.mdp.is_transition_collision(old, intended)
            stats = env.game_stats
            before = [[len(stats[e][i]) for e in EVENTS.values()] for i in range(2)]
            _, _, done[b], info = env.step(actions)
            sparse[b] = info["sparse_r_by_agent"]
            shaped[b] = info["shaped_r_by_agent"]
            for i in range(2):
                counters[b, i, 0] = collided and intended[i] != old[i]
                for k, e in enumerate(EVENTS.values()):
                    counters[b, i, 1 + k] = len(stats[e][i]) - before[i][k]
        live = [b for b in range(count) if not done[b]]
        obs = [np.zeros((count, self.dim), dtype=np.float32) for _ in range(2)]
        for out, part in zip(obs, self._observe(live), strict=True):
            out[live] = part
        return obs, sparse, shaped, counters, done, self._act(live)

    def _no_partial_cooking(self, state: Any, player: int, action: Any) -> Any:
        """STAY instead of an interact that would start cooking a pot that is not full."""
        cook, me = self.action_class, state.players[player]
        if action != cook.INTERACT or me.has_object():
            return action
        pot = cook.move_in_direction(me.position, me.orientation)
        if self.mdp.get_terrain_type_at_pos(pot) != "P" or not state.has_object(pot):
            return action
        soup = state.get_object(pot)
        partial = not (soup.is_full or soup.is_cooking or soup.is_ready)
        return cook.STAY if partial else action

    # -- scripted partners -------------------------------------------------------------

    def _new_agent(self, scripted: dict[str, Any], seat: int, b: int) -> None:
        """A fresh agent for sub-env ``b``'s episode, its RNG seeded by (episode seed, seat)."""
        scripted["agents"][b] = build_agent(scripted["name"], scripted["params"], self.mlam, seat)
        seq = np.random.SeedSequence([self.seeds[b], seat])
        scripted["rng"][b] = np.random.RandomState(seq.generate_state(4)).get_state()

    def _act(self, index: list[int]) -> dict[int, np.ndarray]:
        """Every scripted seat's action for the current states of sub-envs ``index``."""
        if not self.scripted:
            return {}
        outer = np.random.get_state()  # overcooked-ai's agents draw from numpy's global RNG
        out = {}
        for seat, scripted in self.scripted.items():
            for b in index:
                np.random.set_state(scripted["rng"][b])
                action, _ = scripted["agents"][b].action(self.envs[b].state)
                scripted["rng"][b] = np.random.get_state()
                scripted["actions"][b] = self.actions.index(action)
            out[seat] = scripted["actions"][index].copy()
        np.random.set_state(outer)
        return out

    def attach(self, seat: int, name: str, params: dict, state: dict | None) -> np.ndarray:
        """Run scripted agent ``name`` in ``seat`` from now on; its actions for the current
        states (or, with ``state`` from `scripted_state`, exactly where it left off)."""
        count = len(self.envs)
        scripted = {
            "name": name,
            "params": params,
            "agents": [None] * count,
            "rng": [None] * count,
            "actions": np.zeros(count, dtype=np.int64),
        }
        self.scripted[seat] = scripted
        for b in range(count):
            self._new_agent(scripted, seat, b)
        if state is None:
            return self._act(list(range(count)))[seat]
        for b in range(count):
            load_agent_state(scripted["agents"][b], state["agents"][b], self.mdp_mod)
            rng = state["rng"][b]
            scripted["rng"][b] = (rng[0], np.asarray(rng[1], dtype=np.uint32), *rng[2:])
        scripted["actions"][:] = state["actions"]
        return scripted["actions"].copy()

    def scripted_state(self) -> dict[int, dict[str, Any]]:
        out = {}
        for seat, s in self.scripted.items():
            out[seat] = {
                "name": s["name"],
                "params": s["params"],
                "agents": [agent_state(a) for a in s["agents"]],
                "rng": [(r[0], r[1].tolist(), *r[2:]) for r in s["rng"]],
                "actions": s["actions"].tolist(),
            }
        return out

    # -- resumes -----------------------------------------------------------------------

    def states(self) -> list[dict]:
        return [env.state.to_dict() for env in self.envs]

    def load(self, states: list[dict], seeds: list[int], scripted: dict) -> list[np.ndarray]:
        """Put every sub-env (and scripted seat) back into a saved state; observations."""
        self._recipes()
        for env, state in zip(self.envs, states, strict=True):
            env.reset(regen_mdp=False)
            env.state = self.mdp_mod.OvercookedState.from_dict(state)
        self.seeds = list(seeds)
        self.scripted = {}
        for seat, s in scripted.items():
            self.attach(int(seat), s["name"], s["params"], s)
        return self._observe(list(range(len(self.envs))))


class OvercookedEnvBase(BatchedEnv):
    """What both backends share: the seats, the checked config, the episode seeds, the
    shaping clock and their part of a saved state, and the scripted seats' rule that they
    answer for the current observations only."""

    agents = ("agent0", "agent1")
    action_spaces = (Discrete(6, ACTION_LABELS), Discrete(6, ACTION_LABELS))

    def __init__(self, config: OvercookedEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        config.validate()
        if num_envs < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config
        dim = obs_dim(config)  # builds the planner here, before any worker forks
        self.obs_dims = (dim, dim)
        self._seeds = np.zeros(num_envs, dtype=np.int64)
        self._started = False
        self.steps_taken = 0
        """Sub-env steps so far (the shaping schedule's clock)."""
        self._obs: list[torch.Tensor] = []
        self._scripted_actions: dict[int, np.ndarray] = {}
        """seat -> the actions `scripted_actions` hands out."""

    def _check_current(self, obs: torch.Tensor, seat: int) -> None:
        """Scripted agents act on the env's real state: ``obs`` must be the observations
        this env last returned for ``seat``."""
        if obs.shape != self._obs[seat].shape or not torch.equal(obs, self._obs[seat]):
            raise ValueError(
                "an overcooked-ai scripted agent acts on the env's current state only; it "
                "cannot evaluate stored observations"
            )

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["started"] = self._started
        state["steps_taken"] = self.steps_taken
        state["episode_seeds"] = torch.from_numpy(self._seeds.copy())
        return state

    def _load_counters(self, state: dict[str, Any]) -> bool:
        """Restore the generator, episode seeds and shaping clock of a saved state; whether
        the saved env had started (else there is nothing more to load)."""
        seeds = state["episode_seeds"].cpu().numpy().astype(np.int64)
        if len(seeds) != self.num_envs:
            raise UserError(
                f"this overcooked state holds {len(seeds)} envs, the env has {self.num_envs}"
            )
        super().load_state_dict(state)
        self._seeds = seeds
        self.steps_taken = int(state["steps_taken"])
        self._started = bool(state["started"])
        return self._started

    @property
    def episode_seeds(self) -> list[int]:
        """The seed each sub-env's current episode started from."""
        return self._seeds.tolist()


class OvercookedBatchedEnv(OvercookedEnvBase):
    def __init__(self, config: OvercookedEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(config, num_envs, device, seed)
        self._shards = Shards(
            _Shard, asdict(config), num_envs, config.workers, config.start_method, "overcooked-env"
        )
        self.workers = self._shards.workers
        self._scripted: dict[int, tuple[str, dict]] = {}
        cost = [0.0] * 6
        for a in MOVES:
            cost[a] = config.move_cost
        cost[INTERACT] = config.interact_cost
        self._action_cost = np.array(cost, dtype=np.float32)

    # -- plumbing ----------------------------------------------------------------------

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _reset_envs(self, index: np.ndarray) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        """New episodes in sub-envs ``index`` (ascending) with fresh seeds."""
        seeds = torch.randint(
            0, SEED_BOUND, (len(index),), generator=self.generator, device=self.device
        ).tolist()
        self._seeds[index] = seeds
        args = []
        for sl in self._shards.slices:
            mine = [i for i, b in enumerate(index) if sl.start <= b < sl.stop]
            args.append(([int(index[i]) - sl.start for i in mine], [seeds[i] for i in mine]))
        parts = self._shards.call("reset", args)
        obs = [np.concatenate([p[0][a] for p in parts]) for a in range(2)]
        acts = {s: np.concatenate([p[1][s] for p in parts]) for s in self._scripted}
        return obs, acts

    def _set_obs(self, obs: list[np.ndarray]) -> list[torch.Tensor]:
        self._obs = [self._tensor(o) for o in obs]
        return self._obs

    # -- the interface -----------------------------------------------------------------

    def reset(self) -> list[torch.Tensor]:
        self._started = True
        obs, acts = self._reset_envs(np.arange(self.num_envs))
        self._scripted_actions = acts
        return self._set_obs(obs)

    def step(self, actions: list[torch.Tensor]) -> Step:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if len(actions) != 2:
            raise ValueError(f"expected 2 actions (one an agent), got {len(actions)}")
        joint = np.stack(
            [a.detach().reshape(self.num_envs).to("cpu", torch.long).numpy() for a in actions], 1
        )
        if (joint < 0).any() or (joint >= 6).any():
            raise ValueError("overcooked actions must lie in [0, 6)")
        parts = self._shards.call("step", [(joint[sl],) for sl in self._shards.slices])
        obs = [np.concatenate([p[0][a] for p in parts]) for a in range(2)]
        sparse, shaped, counters, done = (
            np.concatenate([p[k] for p in parts]) for k in (1, 2, 3, 4)
        )
        finished = np.flatnonzero(done)
        live = np.flatnonzero(~done)
        for seat in self._scripted:
            self._scripted_actions[seat][live] = np.concatenate([p[5][seat] for p in parts])
        if len(finished):
            fresh, acts = self._reset_envs(finished)
            for o, f in zip(obs, fresh, strict=True):
                o[finished] = f
            for seat, a in acts.items():
                self._scripted_actions[seat][finished] = a
        weight = self.config.shaped_weight(self.steps_taken)
        cost_weight = np.float32(self.config.cost_weight(self.steps_taken))
        self.steps_taken += self.num_envs
        team = sparse.sum(1) + np.float32(weight) * shaped.sum(1)
        cost = cost_weight * (self._action_cost[joint] + self.config.bump_cost * counters[:, :, 0])
        moves = (joint < len(MOVES)).astype(np.float32)  # MOVES are actions 0-3
        interacts = (joint == INTERACT).astype(np.float32)
        per_agent = np.stack([moves.T, interacts.T, *counters.transpose(2, 1, 0)], 1)
        per_agent = self._tensor(per_agent)  # [2 agents, 6 counters, B]
        info = {f"agent{i}/{c}": per_agent[i, k] for i in range(2) for k, c in enumerate(COUNTERS)}
        info["sparse_reward"] = self._tensor(sparse.sum(1))
        info["shaped_reward"] = self._tensor(shaped.sum(1))
        return Step(
            obs=self._set_obs(obs),
            reward=self._tensor(np.stack([team, team]).astype(np.float32)),
            cost=self._tensor(np.ascontiguousarray(cost.T, dtype=np.float32)),
            done=self._tensor(done),
            info=info,
        )

    # -- scripted partners -------------------------------------------------------------

    def attach_scripted(self, seat: int, name: str, params: dict) -> None:
        """Run overcooked-ai agent ``name`` for ``seat`` inside the env (after every step
        and reset), so a seat object can read its actions (`scripted_actions`). Attaching
        the same agent again is a no-op; another one replaces it."""
        if self._scripted.get(seat) == (name, params):
            return
        if not self._started:
            self.reset()
        self._scripted[seat] = (name, params)
        parts = self._shards.call("attach", [(seat, name, params, None)] * len(self._shards.slices))
        self._scripted_actions[seat] = np.concatenate(parts)

    def scripted_actions(self, seat: int, obs: torch.Tensor) -> torch.Tensor:
        """The attached agent's actions [num_envs] for the current states; ``obs`` must be
        the observations this env last returned for ``seat`` (scripted agents act on the
        env's real state, so they can only answer for the current step)."""
        if seat not in self._scripted:
            raise RuntimeError(f"no scripted agent is attached to seat {seat}")
        self._check_current(obs, seat)
        return self._tensor(self._scripted_actions[seat].copy())

    # -- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self._started:
            no_args = [()] * len(self._shards.slices)
            state["states"] = [s for part in self._shards.call("states", no_args) for s in part]
            parts = self._shards.call("scripted_state", no_args)
            state["scripted"] = {
                seat: {
                    "name": name,
                    "params": params,
                    "agents": [a for p in parts for a in p[seat]["agents"]],
                    "rng": [r for p in parts for r in p[seat]["rng"]],
                    "actions": [a for p in parts for a in p[seat]["actions"]],
                }
                for seat, (name, params) in self._scripted.items()
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self._load_counters(state):
            return
        seeds = self._seeds
        scripted = state["scripted"]
        args = []
        for sl in self._shards.slices:
            part = {
                seat: {k: (v[sl] if k in ("agents", "rng", "actions") else v) for k, v in s.items()}
                for seat, s in scripted.items()
            }
            args.append((state["states"][sl], seeds[sl].tolist(), part))
        parts = self._shards.call("load", args)
        self._set_obs([np.concatenate([p[a] for p in parts]) for a in range(2)])
        self._scripted = {int(seat): (s["name"], s["params"]) for seat, s in scripted.items()}
        self._scripted_actions = {
            int(seat): np.asarray(s["actions"], dtype=np.int64) for seat, s in scripted.items()
        }

    def close(self) -> None:
        """Stop worker processes (also happens when the env is garbage collected)."""
        self._shards.close()
        self._started = False
        self._scripted = {}
