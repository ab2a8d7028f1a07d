"""MPE Tag with mpe2's physics re-implemented on batched numpy arrays (``backend = vectorized``).

The same env as `srpo_core.envs.tag.env.TagEnv` -- roles, observation layout, action spaces,
rewards times ``reward_scale``, the ``collisions`` info, truncation at ``max_cycles`` with
auto-reset, reset seeds drawn from ``self.generator`` in the same way -- but instead of one
mpe2 ``raw_env`` per sub-env stepped in Python, the world state of the whole batch lives in
float64 arrays (positions ``[envs, entities, 2]``, velocities ``[envs, agents, 2]``) and every
physics step is a handful of numpy operations over the batch.

Exactness: each operation follows mpe2's (``_mpe_utils/core.py`` ``World.step``,
``simple_env.py`` ``_set_action``, ``simple_tag.py`` ``reset_world``/``reward``/
``observation``) in the same floating-point order, so the results are bit-identical to mpe2,
not merely close; ``tests/test_tag_batched.py`` checks observations, rewards, done and
collisions for equality against ``TagEnv`` over full episodes. The details that matter:

* reset: ``np.random.Generator(PCG64(seed))`` (what gymnasium's ``seeding.np_random`` builds)
  draws every agent's position from U(-1, 1)^2, in agent order, then every landmark's from
  U(-0.9, 0.9)^2; velocities start at zero. Done per reset sub-env (cheap: once an episode).
* actions: discrete ``k`` -> a unit vector (left/right/down/up) times ``accel``; continuous
  ``a`` (clipped into [0, 1] as float32) -> ``(a[2] - a[1], a[4] - a[3])`` subtracted in
  float32, then widened to float64 and times ``accel`` (3 for chasers, 4 for runners).
* contact forces: for every agent ``i`` and every other entity ``j`` (agents then landmarks)
  ``contact_force * (p_i - p_j) / dist * logaddexp(0, -(dist - dist_min) / k) * k``, summed
  onto the action force in ascending ``j`` -- the order mpe2's pairwise double loop adds them.
  (Landmarks are pushed too but are not movable, so only agents' forces are kept.)
* integration: ``p += v * dt``; ``v *= 1 - damping``; ``v += (f / mass) * dt``; a speed above
  ``max_speed`` rescales ``v / |v| * max_speed``.
* rewards after the move: every chaser gets +10 per touching (runner, chaser) pair
  (``dist < size sum``), each runner -10 per chaser touching it, minus mpe2's ``bound`` of
  ``|x|`` and then of ``|y|`` (0 below 0.9, linear to 1, then ``min(exp(2x - 2), 10)``).
* observations: own velocity, own position, landmark positions minus own, other agents'
  positions minus own (agent order), other runners' velocities -- in float64, then cast to
  float32.

The constants (sizes, accelerations, max speeds, dt, damping, contact parameters, masses)
are read from the world mpe2's ``Scenario.make_world`` builds, so they cannot drift apart.

State and resumes: ``state_dict`` holds the generator, each sub-env's episode seed and the
actions since its reset (the same keys ``TagEnv`` writes, so either backend can resume the
other's checkpoints) plus the positions, velocities and step counts; ``load_state_dict``
restores the arrays directly, or -- for a ``TagEnv`` checkpoint, which has no arrays --
resets from the seeds and replays the actions (bit-identical, as the physics is).

``config.workers`` and ``config.start_method`` are ignored: there are no sub-processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from srpo_core.envs.base import BatchedEnv, Box, Discrete, Step
from srpo_core.envs.tag.env import (
    ACTION_LABELS,
    SEED_BOUND,
    TagEnvConfig,
    joint_actions,
    role_names,
    tag_step,
)
from srpo_core.errors import UserError

# Discrete action -> unit movement (mpe2's no-op, left, right, down, up).
_MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
_ACTION_DIM = 5  # dim_p * 2 + 1; Tag's agents are silent, so no communication part


def _mpe_world(config: TagEnvConfig):
    """mpe2's own Tag world for ``config``: the source of every physical constant."""
    from mpe2.simple_tag.simple_tag import Scenario

    return Scenario().make_world(config.num_good, config.num_adversaries, config.num_obstacles)


class TagBatchedEnv(BatchedEnv):
    member_seeded = True
    per_env_state = ("episode_seeds", "actions", "positions", "velocities", "episode_steps")

    def __init__(self, config: TagEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        config.validate()
        if num_envs < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config
        self.mpe_names = role_names(config)
        self.agents = tuple(self.mpe_names)
        self.reward_scale = config.reward_scale

        world = _mpe_world(config)
        agents, landmarks = world.agents, world.landmarks
        names = list(self.mpe_names.values())
        if [a.name for a in agents] != names:
            raise RuntimeError(f"mpe2's Tag agents are {[a.name for a in agents]}, not {names}")
        for a in agents:
            # What this re-implementation assumes of mpe2's Tag; fail loudly if it changes.
            if not (a.movable and a.collide and a.silent) or a.u_noise or a.action_callback:
                raise RuntimeError(f"unexpected mpe2 Tag agent properties for {a.name}")
        if any(lm.movable or not lm.collide or lm.boundary for lm in landmarks):
            raise RuntimeError("unexpected mpe2 Tag landmark properties")
        entities = [*agents, *landmarks]
        self._n = n = len(agents)
        self._num_entities = len(entities)
        self._adv = np.array([a.adversary for a in agents])
        self._dt = world.dt
        self._keep = 1 - world.damping  # mpe2 multiplies by (1 - damping)
        self._contact_force = world.contact_force
        self._margin = world.contact_margin
        self._accel = np.array([5.0 if a.accel is None else a.accel for a in agents])[:, None]
        self._mass = np.array([a.mass for a in agents])[:, None]
        self._max_speed = np.array([np.inf if a.max_speed is None else a.max_speed for a in agents])
        # dist_min for (agent i, entity j), summed in mpe2's order (lower index first).
        self._dist_min = np.array(
            [
                [entities[min(i, j)].size + entities[max(i, j)].size for j in range(len(entities))]
                for i in range(n)
            ]
        )
        self._agent_index = np.arange(n)
        good, adv = np.flatnonzero(~self._adv), np.flatnonzero(self._adv)
        self._good, self._adversaries = good, adv
        self._touch_min = np.array(
            [[agents[g].size + agents[a].size for a in adv] for g in good]
        )  # [good, adversaries]
        # Observation layout per agent: entity indices whose position relative to the agent
        # is observed (landmarks, then the other agents), and the runners whose velocity is.
        self._rel_index = [
            np.array([*range(n, len(entities)), *(j for j in range(n) if j != i)], dtype=int)
            for i in range(n)
        ]
        self._vel_index = [np.array([j for j in good if j != i], dtype=int) for i in range(n)]
        self.obs_dims = tuple(
            4 + 2 * len(r) + 2 * len(v)
            for r, v in zip(self._rel_index, self._vel_index, strict=True)
        )
        if config.continuous:
            self.action_spaces = tuple(Box(_ACTION_DIM) for _ in agents)
        else:
            self.action_spaces = tuple(Discrete(_ACTION_DIM, ACTION_LABELS) for _ in agents)

        self._pos = np.zeros((num_envs, len(entities), 2))
        self._vel = np.zeros((num_envs, n, 2))
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._seeds = np.zeros(num_envs, dtype=np.int64)
        tail = (n, _ACTION_DIM) if config.continuous else (n,)
        self._history = np.zeros(
            (num_envs, config.max_cycles, *tail),
            dtype=np.float32 if config.continuous else np.int64,
        )
        self._started = False

    # -- physics -------------------------------------------------------------------------

    def _action_force(self, joint: np.ndarray) -> np.ndarray:
        """mpe2's ``_set_action``: joint actions -> agent forces [envs, agents, 2]."""
        if self.config.continuous:
            # float32 differences (the action's dtype), widened when added to mpe2's zeros.
            move = np.stack([joint[..., 2] - joint[..., 1], joint[..., 4] - joint[..., 3]], -1)
            u = move.astype(np.float64) + 0.0
        else:
            u = _MOVES[joint]
        return u * self._accel

    def _physics(self, pos: np.ndarray, vel: np.ndarray, force: np.ndarray) -> None:
        """mpe2's ``World.step`` in place on ``pos`` [envs, entities, 2] and ``vel``
        [envs, agents, 2]; ``force`` [envs, agents, 2] is the action force (overwritten)."""
        n = self._n
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = pos[:, :n, None, :] - pos[:, None, :, :]  # [envs, agents, entities, 2]
            dist = np.sqrt(delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1])
            k = self._margin
            penetration = np.logaddexp(0, -(dist - self._dist_min) / k) * k
            contact = self._contact_force * delta / dist[..., None] * penetration[..., None]
        # No self-contact. Adding this +0.0 instead is exact: a force is never -0.0 (it
        # starts as the action force, +0.0 or nonzero, and IEEE sums never turn to -0.0).
        contact[:, self._agent_index, self._agent_index] = 0.0
        for j in range(self._num_entities):  # mpe2's summation order
            force += contact[:, :, j]
        pos[:, :n] += vel * self._dt
        vel *= self._keep
        vel += (force / self._mass) * self._dt
        speed = np.sqrt(vel[..., 0] * vel[..., 0] + vel[..., 1] * vel[..., 1])
        over = speed > self._max_speed
        if over.any():
            vel[over] = (
                vel[over] / speed[over][:, None] * self._max_speed[np.nonzero(over)[1]][:, None]
            )

    def _rewards(self) -> np.ndarray:
        """mpe2's Tag rewards [envs, agents] (before ``reward_scale``) for the current state."""
        pos = self._pos
        delta = pos[:, self._good, None, :] - pos[:, None, self._adversaries, :]
        dist = np.sqrt(delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1])
        touch = dist < self._touch_min  # [envs, good, adversaries]
        rewards = np.empty((self.num_envs, self._n))
        rewards[:, self._adversaries] = (10.0 * touch.sum(axis=(1, 2)))[:, None]
        x = np.abs(pos[:, self._good])  # [envs, good, 2]
        with np.errstate(over="ignore"):
            far = np.minimum(np.exp(np.ascontiguousarray(2 * x - 2)), 10)
        bound = np.where(x < 0.9, 0.0, np.where(x < 1.0, (x - 0.9) * 10, far))
        # 0.0 - ...: mpe2 starts from the int 0, so no touches give +0.0, not -0.0.
        rewards[:, self._good] = 0.0 - 10.0 * touch.sum(axis=2) - bound[..., 0] - bound[..., 1]
        return rewards

    def _observe(self, index=slice(None)) -> list[np.ndarray]:
        pos, vel = self._pos[index], self._vel[index]
        obs = []
        for i in range(self._n):
            rel, runners = self._rel_index[i], self._vel_index[i]
            out = np.empty((len(pos), self.obs_dims[i]), dtype=np.float32)
            out[:, 0:2] = vel[:, i]
            out[:, 2:4] = pos[:, i]
            end = 4 + 2 * len(rel)
            out[:, 4:end] = (pos[:, rel] - pos[:, i, None]).reshape(len(pos), -1)
            out[:, end:] = vel[:, runners].reshape(len(pos), -1)
            obs.append(out)
        return obs

    def _reset_state(self, index: np.ndarray, seeds) -> None:
        """mpe2's ``reset_world`` for sub-envs ``index`` with the given seeds."""
        n, landmarks = self._n, self._num_entities - self._n
        for b, seed in zip(index, seeds, strict=True):
            rng = np.random.Generator(np.random.PCG64(int(seed)))
            self._pos[b, :n] = rng.uniform(-1, +1, (n, 2))
            self._pos[b, n:] = rng.uniform(-0.9, +0.9, (landmarks, 2))
        self._vel[index] = 0.0
        self._steps[index] = 0

    # -- plumbing (as TagEnv) ------------------------------------------------------------

    def _reset_envs(self, index: np.ndarray) -> None:
        seeds = self.randint(SEED_BOUND, index).tolist()
        self._seeds[index] = seeds
        self._reset_state(index, seeds)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _joint_actions(self, actions: list[torch.Tensor]) -> np.ndarray:
        return joint_actions(self, actions, np.float32(0), np.float32(1))

    # -- the interface -------------------------------------------------------------------

    def reset(self) -> list[torch.Tensor]:
        self._started = True
        self._reset_envs(np.arange(self.num_envs))
        return [self._tensor(o) for o in self._observe()]

    def step(self, actions: list[torch.Tensor]) -> Step:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        joint = self._joint_actions(actions)
        self._history[np.arange(self.num_envs), self._steps] = joint
        self._physics(self._pos, self._vel, self._action_force(joint))
        rewards = self._rewards()
        self._steps += 1
        done = self._steps >= self.config.max_cycles
        obs = self._observe()
        finished = np.flatnonzero(done)
        if len(finished):
            self._reset_envs(finished)
            for o, fresh in zip(obs, self._observe(finished), strict=True):
                o[finished] = fresh
        return tag_step(self, obs, rewards, done)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["started"] = self._started
        state["episode_seeds"] = torch.from_numpy(self._seeds.copy())
        # TagEnv's keys: the actions since each sub-env's reset.
        state["actions"] = [
            torch.from_numpy(self._history[b, : self._steps[b]].copy())
            for b in range(self.num_envs)
        ]
        state["positions"] = torch.from_numpy(self._pos.copy())
        state["velocities"] = torch.from_numpy(self._vel.copy())
        state["episode_steps"] = torch.from_numpy(self._steps.copy())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        seeds = state["episode_seeds"].cpu().numpy().astype(np.int64)
        if len(seeds) != self.num_envs or len(state["actions"]) != self.num_envs:
            raise UserError(f"this Tag state holds {len(seeds)} envs, the env has {self.num_envs}")
        history = [a.cpu().numpy() for a in state["actions"]]
        if any(len(h) >= self.config.max_cycles for h in history):
            raise UserError("this Tag state has episodes longer than env.max_cycles")
        tail = self._history.shape[2:]
        if any(len(h) and h.shape[1:] != tail for h in history):
            raise UserError("this Tag state's actions do not fit env.continuous / the roles")
        super().load_state_dict(state)
        self._started = bool(state["started"])
        self._seeds = seeds
        self._history[:] = 0
        for b, h in enumerate(history):
            self._history[b, : len(h)] = h
        self._steps = np.array([len(h) for h in history], dtype=np.int64)
        if not self._started:
            return
        if "positions" in state:
            pos = state["positions"].cpu().numpy().astype(np.float64)
            vel = state["velocities"].cpu().numpy().astype(np.float64)
            if pos.shape != self._pos.shape or vel.shape != self._vel.shape:
                raise UserError("this Tag state's arrays do not fit the env's shape")
            self._pos, self._vel = pos.copy(), vel.copy()
            self._steps = state["episode_steps"].cpu().numpy().astype(np.int64).copy()
            return
        # A TagEnv checkpoint: reset from the seeds and replay each episode's actions.
        steps = self._steps.copy()
        self._reset_state(np.arange(self.num_envs), seeds)
        self._steps = steps
        for t in range(int(steps.max(initial=0))):
            live = np.flatnonzero(steps > t)
            pos, vel = self._pos[live], self._vel[live]
            self._physics(pos, vel, self._action_force(self._history[live, t]))
            self._pos[live], self._vel[live] = pos, vel

    @property
    def episode_seeds(self) -> list[int]:
        """The seed each sub-env's current episode was reset with."""
        return self._seeds.tolist()

    def close(self) -> None:
        """Nothing to stop (no worker processes); kept for parity with TagEnv."""
