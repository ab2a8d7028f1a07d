"""MPE Tag (predator-prey) from mpe2's ``simple_tag_v3``, batched over many mpe2 envs.

Chasers (mpe ``adversary_i``) are rewarded +10 per chaser-runner touch; runners (mpe
``agent_i``) lose 10 per touch they suffer and pay a penalty for leaving the arena. Each
role's mpe reward times ``reward_scale`` is its ``Step.reward``; Tag has no private costs,
so ``Step.cost`` is zero. Episodes last ``max_cycles`` steps (mpe2 truncates then); the
env resets automatically and returns the first observation of the next episode.

Fidelity: every sub-env is mpe2's own ``simple_tag_v3.raw_env``, driven through its public
AEC ``step`` one agent at a time and read back with ``observe`` -- exactly what the
``parallel_env`` wrapper does, minus its per-call checks (it is ~2.4x slower). Tests
compare the adapter against a directly driven ``simple_tag_v3.parallel_env``.

Actions: discrete mode takes mpe2's ``Discrete(5)`` (no-op, left, right, down, up).
Continuous mode (``continuous=true``) takes mpe2's ``Box(0, 1, (5,))`` vectors; the
policies here are unbounded Gaussians, so the adapter clips each action into [0, 1]
before the env sees it -- the same clip mpe2's ``ClipOutOfBoundsWrapper`` applies, minus
its warning. A component below 0 acts as 0 (so a zero-mean policy pushes in a direction
about half the time); the movement force is ``a[2] - a[1]`` along x and ``a[4] - a[3]``
along y.

Seeds and resumes: each sub-env episode starts from ``reset(seed=s)`` with ``s`` drawn from
``self.generator``, so a batch is reproducible from the constructor seed. mpe2's Tag has no
randomness after a reset (no action or communication noise), so an episode's state is a
function of its seed and the actions taken since. ``state_dict`` therefore stores, per
sub-env, the seed of its current episode and the actions since its reset (at most
``max_cycles`` joint actions each); ``load_state_dict`` replays them. Trade-off: no mpe2
internals are pickled (nothing breaks if mpe2 adds state, and the state is plain tensors
that ``torch.load(weights_only=True)`` accepts, gathered without asking the workers), at
the cost of replaying up to ``max_cycles`` steps per sub-env on load (about a second for
64 envs) and keeping that history in memory.

Workers: with ``workers > 0`` the sub-envs are split into that many contiguous slices,
each stepped in a daemon process over a pipe. All randomness (the reset seeds) is drawn in
the main process and the workers run the same code as the in-process path, so results are
identical for any ``workers``. Processes start on the first ``reset``/``step`` (a probe env
that is only asked for its spaces starts none) and stop on ``close()`` or when the env is
garbage collected.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from srpo_core.envs.base import ActionSpace, BatchedEnv, Box, Discrete, EnvSpec, Step
from srpo_core.envs.family import EnvConfig
from srpo_core.envs.shards import Shards
from srpo_core.errors import UserError

ACTION_LABELS = ("noop", "left", "right", "down", "up")
SEED_BOUND = 2**31 - 1
BACKENDS = ("mpe2", "vectorized")
DEFAULT_RUNNER = "scripted:tag/flee"
"""The frozen runner chasers train against unless ``env.runner`` names another."""


@dataclass
class TagEnvConfig(EnvConfig):
    NON_GAME_KEYS: ClassVar[tuple[str, ...]] = ("backend", "workers", "start_method")
    """Keys that change how the game runs, never its outcome (zoos and cross-play ignore
    them when they compare env configs)."""

    name: str = "tag"
    num_good: int = 1
    """Runners (mpe ``agent_i``)."""
    num_adversaries: int = 2
    """Chasers (mpe ``adversary_i``)."""
    num_obstacles: int = 2
    max_cycles: int = 100
    """Steps per episode; mpe2 truncates there."""
    reward_scale: float = 0.1
    """Multiplies every mpe reward (a touch is worth 10 before scaling)."""
    continuous: bool = False
    """Box(0, 1, (5,)) actions (clipped into the box) instead of Discrete(5)."""
    backend: str = "vectorized"
    """vectorized: mpe2's physics re-implemented on batched arrays
    (`srpo_core.envs.tag.torch_env.TagBatchedEnv`): bit-identical results, 30-100x faster,
    ignores workers/start_method. mpe2: one mpe2 env per sub-env (`TagEnv`), the reference.
    Checkpoints of either resume on the other."""
    workers: int = 0
    """Processes stepping slices of the batch; 0 steps every sub-env in this process.
    Results are identical for any value; only speed differs."""
    start_method: str = "auto"
    """How worker processes start: auto (fork where available, else spawn) | fork | spawn |
    forkserver. Fork starts in milliseconds; spawn re-imports torch (seconds)."""
    role: str = "chasers"
    """chasers: the chasers learn against the frozen ``runner``; runner: every role learns
    (the paper's first stage, which produces runners to freeze)."""
    runner: str = DEFAULT_RUNNER
    """Policy ref of the frozen runner(s) when role = chasers: RUN_ID/runner (a trained
    one, as in the paper: train it with role = runner) or scripted:tag/NAME (see
    `srpo_core.agents.scripted`). The default is scripted, so that chasers train out of the
    box; `notice` says so."""

    def notice(self) -> str | None:
        """One line before training when the chasers meet the default scripted runner."""
        if self.role != "chasers" or self.runner != DEFAULT_RUNNER:
            return None
        return (
            f"note: the runner is {DEFAULT_RUNNER} (the default); the paper's chasers meet a "
            "trained runner: train one with --role runner, then --set env.runner=RUN_ID/runner"
        )

    def frozen_seats(self) -> dict[str, str]:
        """Seat -> policy ref of the seats that play along without learning."""
        if self.role == "runner":
            return {}
        if not self.runner:
            raise UserError(
                "chaser training needs a frozen runner: --set env.runner=RUN_ID/runner "
                "(train one with --role runner) or env.runner=scripted:tag/flee"
            )
        runners = [r for r in role_names(self) if r.startswith("runner")]
        return {seat: self.runner for seat in runners}

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(
                f"env.backend must be one of {', '.join(BACKENDS)}, got '{self.backend}'"
            )
        if self.role not in ("chasers", "runner"):
            raise UserError(f"env.role must be chasers or runner, got '{self.role}'")
        for key in ("num_good", "num_adversaries", "max_cycles"):
            if getattr(self, key) < 1:
                raise UserError(f"env.{key} must be >= 1, got {getattr(self, key)}")
        if self.num_obstacles < 0:
            raise UserError(f"env.num_obstacles must be >= 0, got {self.num_obstacles}")
        if not math.isfinite(self.reward_scale) or self.reward_scale <= 0:
            raise UserError(f"env.reward_scale must be finite and > 0, got {self.reward_scale}")
        if self.workers < 0:
            raise UserError(f"env.workers must be >= 0, got {self.workers}")
        methods = ("auto", *mp.get_all_start_methods())
        if self.start_method not in methods:
            raise UserError(
                f"env.start_method must be one of {', '.join(methods)}, got '{self.start_method}'"
            )

    def mpe_kwargs(self) -> dict[str, Any]:
        return {
            "num_good": self.num_good,
            "num_adversaries": self.num_adversaries,
            "num_obstacles": self.num_obstacles,
            "max_cycles": self.max_cycles,
            "continuous_actions": self.continuous,
        }


def role_names(config: TagEnvConfig) -> dict[str, str]:
    """Role -> mpe agent name, in mpe's agent order (chasers first)."""
    roles = {f"chaser{i}": f"adversary_{i}" for i in range(config.num_adversaries)}
    if config.num_good == 1:
        roles["runner"] = "agent_0"
    else:
        roles.update({f"runner{i}": f"agent_{i}" for i in range(config.num_good)})
    return roles


def joint_actions(env: Any, actions: list[torch.Tensor], low: Any, high: Any) -> np.ndarray:
    """Both backends' actions as numpy, checked: [envs, agents] ints in each Discrete range,
    or [envs, agents, dim] floats clipped into the box [low, high] (mpe2's own clip)."""
    if len(actions) != env.num_agents:
        raise ValueError(f"expected {env.num_agents} actions (one a role), got {len(actions)}")
    if env.config.continuous:
        cols = []
        for i, a in enumerate(actions):
            a = a.detach().reshape(env.num_envs, -1)
            if torch.isnan(a).any():
                raise ValueError(f"NaN action for {env.agents[i]}")
            cols.append(a.to("cpu", torch.float32).numpy())
        joint = np.stack(cols, axis=1)  # [envs, agents, dim]
        dim = env.action_spaces[0].dim
        if joint.shape[2] != dim:
            raise ValueError(f"continuous Tag actions have {dim} components")
        return np.clip(joint, low, high)
    cols = [a.detach().reshape(env.num_envs).to("cpu", torch.long).numpy() for a in actions]
    joint = np.stack(cols, axis=1)  # [envs, agents]
    for i, space in enumerate(env.action_spaces):
        col = joint[:, i]
        if (col < 0).any() or (col >= space.n).any():
            raise ValueError(f"{env.agents[i]} actions must lie in [0, {space.n})")
    return joint


def tag_step(env: Any, obs: list[np.ndarray], rewards: np.ndarray, done: np.ndarray) -> Step:
    """Both backends' Step from numpy: raw mpe rewards [envs, agents] scaled, no private
    costs, and the touches of this step. Every chaser's mpe reward is +10 per touching
    (runner, chaser) pair -- all pairs, not just its own -- so chaser0's reward / 10
    counts them."""
    collisions = np.rint(rewards[:, 0] / 10.0).astype(np.float32)
    scaled = (rewards * env.reward_scale).T.astype(np.float32)
    return Step(
        obs=[env._tensor(o) for o in obs],
        reward=env._tensor(np.ascontiguousarray(scaled)),
        cost=torch.zeros(env.num_agents, env.num_envs, device=env.device),
        done=env._tensor(done),
        info={"collisions": env._tensor(collisions)},
    )


def _make_mpe(config: TagEnvConfig):
    from mpe2 import simple_tag_v3

    return simple_tag_v3.raw_env(**config.mpe_kwargs())


class _Shard:
    """A slice of the batch: plain mpe2 envs and numpy in, numpy out. Runs in this process
    or inside a worker; both paths execute exactly this code."""

    def __init__(self, config_dict: dict[str, Any], count: int) -> None:
        config = TagEnvConfig(**config_dict)
        self.envs = [_make_mpe(config) for _ in range(count)]
        self.names = list(role_names(config).values())
        self.dims = [self.envs[0].observation_space(n).shape[0] for n in self.names]

    def _observe(self, envs: list) -> list[np.ndarray]:
        obs = [np.empty((len(envs), d), dtype=np.float32) for d in self.dims]
        for b, env in enumerate(envs):
            for out, name in zip(obs, self.names, strict=True):
                out[b] = env.observe(name)
        return obs

    def reset(self, index: list[int], seeds: list[int]) -> list[np.ndarray]:
        """Reset envs ``index`` with ``seeds``; their first observations."""
        for b, seed in zip(index, seeds, strict=True):
            self.envs[b].reset(seed=seed)
        return self._observe([self.envs[b] for b in index])

    def step(self, joint: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """joint: [count, agents] ints or [count, agents, dim] floats (already in bounds).
        Returns observations, mpe rewards [count, agents] and done [count]."""
        rewards = np.empty((len(self.envs), len(self.names)))
        done = np.zeros(len(self.envs), dtype=bool)
        for b, env in enumerate(self.envs):
            for action in joint[b]:
                env.step(action)
            for i, name in enumerate(self.names):
                rewards[b, i] = env.rewards[name]
            done[b] = any(env.truncations.values()) or any(env.terminations.values())
        return self._observe(self.envs), rewards, done

    def replay(self, seeds: list[int], histories: list[np.ndarray]) -> list[np.ndarray]:
        """Reset every env with its seed and re-apply the actions of its episode so far."""
        for env, seed, history in zip(self.envs, seeds, histories, strict=True):
            env.reset(seed=seed)
            for joint in history:
                for action in joint:
                    env.step(action)
        return self._observe(self.envs)


def spec(config: TagEnvConfig) -> EnvSpec:
    """Both backends' seats and spaces: mpe2's own, read from its env (no worker starts)."""
    names = role_names(config)
    probe = _make_mpe(config)
    spaces = [probe.action_space(n) for n in names.values()]
    obs_dims = tuple(probe.observation_space(n).shape[0] for n in names.values())
    if config.continuous:
        actions: tuple[ActionSpace, ...] = tuple(Box(int(s.shape[0])) for s in spaces)
    else:
        actions = tuple(Discrete(int(s.n), ACTION_LABELS) for s in spaces)
    return EnvSpec(tuple(names), obs_dims, actions)


class TagEnv(BatchedEnv):
    def __init__(self, config: TagEnvConfig, num_envs: int, device, seed: int) -> None:
        super().__init__(num_envs, device, seed)
        config.validate()
        if num_envs < 1:
            raise UserError(f"num_envs must be >= 1, got {num_envs}")
        self.config = config
        self.mpe_names = role_names(config)
        game = spec(config)
        self.agents, self.obs_dims = game.agents, game.obs_dims
        self.action_spaces = game.action_spaces
        self._low = self._high = None  # discrete actions are range-checked, not clipped
        if config.continuous:
            spaces = [_make_mpe(config).action_space(n) for n in self.mpe_names.values()]
            self._low = np.stack([s.low for s in spaces])  # [agents, dim], float32
            self._high = np.stack([s.high for s in spaces])
        self.reward_scale = config.reward_scale
        self._shards = Shards(
            _Shard, asdict(config), num_envs, config.workers, config.start_method, "tag-env"
        )
        self.workers = self._shards.workers
        self._seeds = np.zeros(num_envs, dtype=np.int64)
        self._history: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self._started = False

    # -- plumbing ----------------------------------------------------------------------

    def _draw_seeds(self, count: int) -> list[int]:
        seeds = torch.randint(0, SEED_BOUND, (count,), generator=self.generator, device=self.device)
        return seeds.tolist()

    def _reset_envs(self, index: np.ndarray) -> list[np.ndarray]:
        """Reset the sub-envs in ``index`` (ascending) with fresh seeds; their obs."""
        seeds = self._draw_seeds(len(index))
        self._seeds[index] = seeds
        for b in index:
            self._history[b] = []
        args = []
        for sl in self._shards.slices:
            mine = [i for i, b in enumerate(index) if sl.start <= b < sl.stop]
            args.append(([int(index[i]) - sl.start for i in mine], [seeds[i] for i in mine]))
        parts = self._shards.call("reset", args)
        return [np.concatenate([p[a] for p in parts]) for a in range(self.num_agents)]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _joint_actions(self, actions: list[torch.Tensor]) -> np.ndarray:
        return joint_actions(self, actions, self._low, self._high)

    # -- the interface -----------------------------------------------------------------

    def reset(self) -> list[torch.Tensor]:
        self._started = True
        obs = self._reset_envs(np.arange(self.num_envs))
        return [self._tensor(o) for o in obs]

    def step(self, actions: list[torch.Tensor]) -> Step:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        joint = self._joint_actions(actions)
        parts = self._shards.call("step", [(joint[sl],) for sl in self._shards.slices])
        obs = [np.concatenate([p[0][a] for p in parts]) for a in range(self.num_agents)]
        rewards = np.concatenate([p[1] for p in parts])  # [envs, agents], raw mpe
        done = np.concatenate([p[2] for p in parts])
        for b in range(self.num_envs):
            self._history[b].append(joint[b])
        finished = np.flatnonzero(done)
        if len(finished):
            fresh = self._reset_envs(finished)
            for o, f in zip(obs, fresh, strict=True):
                o[finished] = f
        return tag_step(self, obs, rewards, done)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["started"] = self._started
        state["episode_seeds"] = torch.from_numpy(self._seeds.copy())
        if self.config.continuous:
            dtype, tail = np.float32, (self.num_agents, self._low.shape[1])
        else:
            dtype, tail = np.int64, (self.num_agents,)
        state["actions"] = [
            torch.from_numpy(np.stack(h).astype(dtype) if h else np.zeros((0, *tail), dtype))
            for h in self._history
        ]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        seeds = state["episode_seeds"].cpu().numpy().astype(np.int64)
        if len(seeds) != self.num_envs or len(state["actions"]) != self.num_envs:
            raise UserError(f"this Tag state holds {len(seeds)} envs, the env has {self.num_envs}")
        super().load_state_dict(state)
        self._started = bool(state["started"])
        self._seeds = seeds
        self._history = [list(a.cpu().numpy()) for a in state["actions"]]
        if not self._started:
            return
        if any(len(h) >= self.config.max_cycles for h in self._history):
            raise UserError("this Tag state has episodes longer than env.max_cycles")
        self._shards.call(
            "replay",
            [
                (self._seeds[sl].tolist(), [np.asarray(h) for h in self._history[sl]])
                for sl in self._shards.slices
            ],
        )

    @property
    def episode_seeds(self) -> list[int]:
        """The seed each sub-env's current episode was reset with."""
        return self._seeds.tolist()

    def close(self) -> None:
        """Stop worker processes (also happens when the env is garbage collected)."""
        self._shards.close()
        self._started = False
