"""``--env overcooked`` with ``env.backend=torch``: the same env as `OvercookedBatchedEnv`
(`srpo_core.envs.overcooked.env`: rules, rewards, costs, ``info``, observations, seeds,
checkpoints), its games held as tensors (`srpo_core.envs.overcooked.kitchen`) and stepped
all at once on the env's device, with no worker processes (``env.workers`` is ignored).

Same seeds, same episodes: at every episode start the env draws the sub-env's seed from
``self.generator`` exactly as the package backend does, and with ``random_start`` the start
positions come from ``numpy.random.default_rng(seed)`` over the package's valid joint
positions, in its order. Episodes all last ``horizon`` steps, so which sub-envs finish is
known on the host without reading the device; the one host read is the seeds' at episode
starts. (Actions are checked to lie in [0, 6) only when they are on the CPU: on a GPU the
check would read the device every step.)

Checkpoints: ``state_dict`` holds what the package backend's holds, in its format (every
sub-env's state as the package's ``OvercookedState.to_dict``, objects in the package's
order), so either backend resumes the other's.

Scripted partners (overcooked-ai's agents, `srpo_core.envs.overcooked.scripted`) act on the
package's ``OvercookedState``: each step converts the games to package states
(`overcooked_kitchen.to_package_states`) and runs one agent per sub-env and episode with the
per-episode RNG seeding of the package backend, so they choose the same actions. That costs
what the package backend costs; without a scripted seat nothing leaves the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from srpo_core.envs.base import StackedInfo, Step
from srpo_core.envs.overcooked.agents import agent_state, build_agent, load_agent_state
from srpo_core.envs.overcooked.compat import import_overcooked
from srpo_core.envs.overcooked.env import (
    COUNTERS,
    INTERACT,
    MOVES,
    SEED_BOUND,
    OvercookedEnvBase,
    OvercookedEnvConfig,
)
from srpo_core.envs.overcooked.kitchen import (
    Kitchen,
    configure_recipes,
    from_package_states,
    kitchen_layout,
    step,
    to_package_states,
)
from srpo_core.envs.overcooked.layouts import layout_planner
from srpo_core.envs.overcooked.obs import feature_tables, featurized, lossless

INFO_KEYS = (
    *(f"agent{i}/{c}" for i in range(2) for c in COUNTERS),
    "sparse_reward",
    "shaped_reward",
)


SCRIPTED_PER_ENV = ("agents", "rng", "actions")
"""The entries of a scripted seat's saved state that hold one item per env."""


def _scripted_rows(scripted: dict[int, dict[str, Any]], rows: slice) -> dict[int, dict[str, Any]]:
    """The scripted seats' saved state of the envs ``rows`` (a population member's)."""
    return {
        seat: {k: v[rows] if k in SCRIPTED_PER_ENV else v for k, v in saved.items()}
        for seat, saved in scripted.items()
    }


class ScriptedSeats:
    """overcooked-ai agents in seats, one per sub-env and episode, each with its own numpy
    RNG state seeded by (episode seed, seat): the package backend's `_Shard` logic, on
    package states converted from the kitchen."""

    def __init__(self, mlam: Any) -> None:
        self.mlam = mlam
        self.action_list = import_overcooked("mdp.actions").Action.INDEX_TO_ACTION
        self.seats: dict[int, dict[str, Any]] = {}
        """seat -> {"name", "params", "agents": [per env], "rng": [numpy RNG states],
        "actions": int array of the pending actions}"""

    def _new_agent(self, seat: int, b: int, seed: int) -> None:
        s = self.seats[seat]
        s["agents"][b] = build_agent(s["name"], s["params"], self.mlam, seat)
        seq = np.random.SeedSequence([seed, seat])
        s["rng"][b] = np.random.RandomState(seq.generate_state(4)).get_state()

    def renew(self, index: list[int], seeds: list[int]) -> None:
        """Fresh agents in every seat for new episodes of sub-envs ``index`` with ``seeds``."""
        for seat in self.seats:
            for b, seed in zip(index, seeds, strict=True):
                self._new_agent(seat, b, seed)

    def act(self, states: list[Any], index: list[int]) -> dict[int, np.ndarray]:
        """Every seat's actions for sub-envs ``index`` in package ``states`` (one each)."""
        outer = np.random.get_state()  # overcooked-ai's agents draw from numpy's global RNG
        out = {}
        for seat, s in self.seats.items():
            for b, state in zip(index, states, strict=True):
                np.random.set_state(s["rng"][b])
                action, _ = s["agents"][b].action(state)
                s["rng"][b] = np.random.get_state()
                s["actions"][b] = self.action_list.index(action)
            out[seat] = s["actions"][index].copy()
        np.random.set_state(outer)
        return out

    def attach(self, seat: int, name: str, params: dict, seeds: list[int]) -> None:
        """Agent ``name`` in ``seat`` for every sub-env, seeded by its episode's seed."""
        count = len(seeds)
        self.seats[seat] = {
            "name": name,
            "params": params,
            "agents": [None] * count,
            "rng": [None] * count,
            "actions": np.zeros(count, dtype=np.int64),
        }
        for b, seed in enumerate(seeds):
            self._new_agent(seat, b, seed)

    def load(self, seat: int, saved: dict[str, Any], seeds: list[int]) -> np.ndarray:
        """Attach ``seat`` exactly where `state` left it; its pending actions."""
        self.attach(seat, saved["name"], saved["params"], seeds)
        s, mdp_mod = self.seats[seat], import_overcooked("mdp.overcooked_mdp")
        for b, (memory, rng) in enumerate(zip(saved["agents"], saved["rng"], strict=True)):
            load_agent_state(s["agents"][b], memory, mdp_mod)
            s["rng"][b] = (rng[0], np.asarray(rng[1], dtype=np.uint32), *rng[2:])
        s["actions"][:] = saved["actions"]
        return s["actions"].copy()

    def state(self) -> dict[int, dict[str, Any]]:
        """Each seat's agents, RNG states and pending actions, as the package backend saves
        them."""
        return {
            seat: {
                "name": s["name"],
                "params": s["params"],
                "agents": [agent_state(a) for a in s["agents"]],
                "rng": [(r[0], r[1].tolist(), *r[2:]) for r in s["rng"]],
                "actions": s["actions"].tolist(),
            }
            for seat, s in self.seats.items()
        }


class OvercookedTorchEnv(OvercookedEnvBase):
    member_seeded = True
    per_env_state = ("episode_seeds", "states")

    def __init__(self, config: OvercookedEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(config, num_envs, device, seed)
        self.workers = 0
        self.layout = kitchen_layout(config.layout).to(self.device)
        self.mdp, self.mlam = layout_planner(config.layout)
        self.tables = None
        if config.obs == "featurized":
            self.tables = feature_tables(config.layout).to(self.device)
        self.kitchen: Kitchen = self.layout.start.rows(
            torch.zeros(num_envs, dtype=torch.long, device=self.device)
        )
        self._timestep = np.zeros(num_envs, dtype=np.int64)
        """The games' timesteps, mirrored on the host (every game adds one per step)."""
        self._scripted = ScriptedSeats(self.mlam)
        """(As the package backend: attaching a seat re-runs the others' agents without
        changing their `_scripted_actions`.)"""
        self._start_timestep = int(self.layout.start.timestep[0])
        cost = torch.zeros(6)
        cost[list(MOVES)] = config.move_cost
        cost[INTERACT] = config.interact_cost
        self._action_cost = cost.to(self.device)
        self._is_move = torch.tensor([a in MOVES for a in range(6)], device=self.device)

    # -- plumbing ----------------------------------------------------------------------

    def _observe(self) -> list[torch.Tensor]:
        if self.tables is not None:
            self._obs = featurized(self.layout, self.tables, self.kitchen)
        else:
            self._obs = lossless(self.layout, self.kitchen, self.config.horizon)
        return self._obs

    def _reset_envs(self, index: np.ndarray) -> dict[int, np.ndarray]:
        """New episodes in sub-envs ``index`` (ascending) with fresh seeds; the scripted
        seats' actions for them."""
        seeds = self.randint(SEED_BOUND, index).tolist()
        self._seeds[index] = seeds
        rows = torch.as_tensor(index, device=self.device)
        if self.config.random_start:
            joint = self.layout.joint_starts
            picks = [int(np.random.default_rng(s).integers(len(joint))) for s in seeds]
            self.kitchen.put(rows, self.layout.from_positions(joint[picks]))
            self._timestep[index] = 0
        else:
            self.kitchen.put(rows, self.layout.start)
            self._timestep[index] = self._start_timestep
        self._scripted.renew(index.tolist(), seeds)
        return self._scripted_act(index)

    def _scripted_act(self, index: np.ndarray) -> dict[int, np.ndarray]:
        """Every scripted seat's actions for the current states of sub-envs ``index``."""
        if not self._scripted.seats:
            return {}
        rows = torch.as_tensor(index, device=self.device)
        states = to_package_states(self.layout, self.kitchen.rows(rows), self.mdp)
        return self._scripted.act(states, index.tolist())

    # -- the interface -----------------------------------------------------------------

    def reset(self) -> list[torch.Tensor]:
        self._started = True
        self._scripted_actions = self._reset_envs(np.arange(self.num_envs))
        return self._observe()

    def step(self, actions: list[torch.Tensor]) -> Step:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if len(actions) != 2:
            raise ValueError(f"expected 2 actions (one an agent), got {len(actions)}")
        joint = torch.stack([a.detach().reshape(self.num_envs).long() for a in actions], 1)
        joint = joint.to(self.device)
        if joint.device.type == "cpu" and ((joint < 0) | (joint >= 6)).any():
            raise ValueError("overcooked actions must lie in [0, 6)")
        out = step(self.layout, self.kitchen, joint, self.config.cook_full_pots_only)
        done = self.kitchen.timestep >= self.config.horizon
        self._timestep += 1
        finished = np.flatnonzero(self._timestep >= self.config.horizon)
        live = np.flatnonzero(self._timestep < self.config.horizon)
        for seat, acts in self._scripted_act(live).items():
            self._scripted_actions[seat][live] = acts
        if len(finished):
            for seat, acts in self._reset_envs(finished).items():
                self._scripted_actions[seat][finished] = acts
        weight = self.config.shaped_weight(self.steps_taken)
        cost_weight = self.config.cost_weight(self.steps_taken)
        self.steps_taken += self.num_envs // len(self.generators)  # per population member
        sparse, shaped = out.sparse.sum(1), out.shaped.sum(1)
        team = sparse + torch.tensor(weight, dtype=torch.float32) * shaped
        bumps = out.counters[:, :, 0]
        cost = cost_weight * (self._action_cost[joint] + self.config.bump_cost * bumps)
        per_agent = torch.cat(
            [self._is_move[joint].float().unsqueeze(2), (joint == INTERACT).float().unsqueeze(2)]
            + [out.counters],
            2,
        )  # [B, 2 agents, 6 COUNTERS]
        table = torch.cat([per_agent.permute(1, 2, 0).reshape(-1, self.num_envs), sparse[None]])
        return Step(
            obs=self._observe(),
            reward=torch.stack([team, team]),
            cost=cost.T.contiguous(),
            done=done,
            info=StackedInfo(INFO_KEYS, torch.cat([table, shaped[None]])),
        )

    # -- scripted partners -------------------------------------------------------------

    def attach_scripted(self, seat: int, name: str, params: dict) -> None:
        """Run overcooked-ai agent ``name`` for ``seat`` inside the env (after every step
        and reset), so a seat object can read its actions (`scripted_actions`). Attaching
        the same agent again is a no-op; another one replaces it."""
        current = self._scripted.seats.get(seat, {})
        if (current.get("name"), current.get("params")) == (name, params):
            return
        if not self._started:
            self.reset()
        self._scripted.attach(seat, name, params, self._seeds.tolist())
        self._scripted_actions[seat] = self._scripted_act(np.arange(self.num_envs))[seat]

    def scripted_actions(self, seat: int, obs: torch.Tensor) -> torch.Tensor:
        """The attached agent's actions [num_envs] for the current states; ``obs`` must be
        the observations this env last returned for ``seat`` (scripted agents act on the
        env's real state, so they can only answer for the current step)."""
        if seat not in self._scripted.seats:
            raise RuntimeError(f"no scripted agent is attached to seat {seat}")
        self._check_current(obs, seat)
        return torch.from_numpy(self._scripted_actions[seat].copy()).to(self.device)

    # -- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self._started:
            packaged = to_package_states(self.layout, self.kitchen, self.mdp)
            state["states"] = [s.to_dict() for s in packaged]
            state["scripted"] = self._scripted.state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self._load_counters(state):
            return
        configure_recipes(self.mdp)
        self.kitchen = from_package_states(self.layout, state["states"]).to(self.device)
        self._timestep = self.kitchen.timestep.cpu().numpy().copy()
        self._scripted = ScriptedSeats(self.mlam)
        self._scripted_actions = {
            int(seat): self._scripted.load(int(seat), saved, self._seeds.tolist())
            for seat, saved in state["scripted"].items()
        }
        self._observe()

    def member_state(self, state: dict[str, Any], k: int, members: int) -> dict[str, Any]:
        out = super().member_state(state, k, members)
        if "scripted" in state:
            width = self.num_envs // members
            out["scripted"] = _scripted_rows(state["scripted"], slice(k * width, (k + 1) * width))
        return out

    def join_member_states(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().join_member_states(states)
        if "scripted" in out:
            out["scripted"] = {
                seat: {
                    key: [item for state in states for item in state["scripted"][seat][key]]
                    if key in SCRIPTED_PER_ENV
                    else value
                    for key, value in saved.items()
                }
                for seat, saved in out["scripted"].items()
            }
        return out

    def close(self) -> None:
        """Nothing runs outside this process; forgets the episodes like the package backend."""
        self._started = False
        self._scripted = ScriptedSeats(self.mlam)
        self._scripted_actions = {}
