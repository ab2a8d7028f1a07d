"""The vectorized Tag backend against the mpe2-driven `TagEnv`: bit-identical observations,
rewards, done flags, collisions and float64 world state over full episodes; seeding, resumes
(including across backends) and backend selection."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from mpe2 import simple_tag_v3

from srpo_core.envs import ENVS, make_env
from srpo_core.envs.tag.env import TagEnv, TagEnvConfig
from srpo_core.envs.tag.torch_env import TagBatchedEnv
from srpo_core.errors import UserError

MAX_CYCLES = 100


def pair(seed: int, num_envs: int = 4, **kw) -> tuple[TagEnv, TagBatchedEnv]:
    config = TagEnvConfig(runner="scripted:tag/flee", **kw)
    return TagEnv(config, num_envs, "cpu", seed), TagBatchedEnv(config, num_envs, "cpu", seed)


def actions_for(env, obs: list[torch.Tensor], rng: np.random.Generator, heading: np.ndarray):
    """Chasers mostly head for the first runner, so that they touch it and press it against
    obstacles; runners mostly keep to a per-env heading, so that they leave the arena (the
    boundary penalty) and hit their top speed. Continuous actions spill out of [0, 1]."""
    n, na = env.num_envs, env.config.num_adversaries
    start = 4 + 2 * env.config.num_obstacles + 2 * (na - 1)  # first runner's relative position
    out = []
    for i, o in enumerate(obs):
        if i < na:
            d = o[:, start : start + 2].numpy().astype(np.float64)
        else:
            d = heading
        if env.config.continuous:
            a = rng.normal(0.5, 0.6 if i < na else 1.5, size=(n, 5))
            a[:, 1] -= 3 * d[:, 0]
            a[:, 2] += 3 * d[:, 0]
            a[:, 3] -= 3 * d[:, 1]
            a[:, 4] += 3 * d[:, 1]
            out.append(torch.from_numpy(a.astype(np.float32)))
            continue
        greedy = np.where(
            np.abs(d[:, 0]) > np.abs(d[:, 1]),
            np.where(d[:, 0] > 0, 2, 1),
            np.where(d[:, 1] > 0, 4, 3),
        )
        a = np.where(rng.random(n) < (0.8 if i < na else 0.5), greedy, rng.integers(0, 5, n))
        out.append(torch.from_numpy(a.astype(np.int64)))
    return out


def mpe_state(env: TagEnv) -> tuple[np.ndarray, np.ndarray]:
    """The float64 positions [envs, entities, 2] and velocities [envs, agents, 2] of the
    mpe2 worlds inside an in-process TagEnv."""
    worlds = [e.world for e in env._shards.backend.envs]
    pos = np.stack([[x.state.p_pos for x in w.agents + w.landmarks] for w in worlds])
    vel = np.stack([[a.state.p_vel for a in w.agents] for w in worlds])
    return pos, vel


def assert_steps_equal(a, b) -> None:
    for x, y in zip(a.obs, b.obs, strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y)
    assert a.reward.dtype == b.reward.dtype and torch.equal(a.reward, b.reward)
    assert torch.equal(a.cost, b.cost)
    assert torch.equal(a.done, b.done)
    assert a.info.keys() == b.info.keys()
    assert torch.equal(a.info["collisions"], b.info["collisions"])


def run_against_reference(ref: TagEnv, fast: TagBatchedEnv, seed: int, steps: int) -> dict:
    """Step both with the same actions; everything must be equal, the float64 state too.
    Returns counts of the events the comparison exercised."""
    rng = np.random.default_rng(seed)
    obs = ref.reset()
    for x, y in zip(obs, fast.reset(), strict=True):
        assert torch.equal(x, y)
    seen = {"touches": 0, "bound": 0, "max_speed": 0, "obstacle": 0, "resets": 0}
    runners = ~np.array([a.adversary for a in ref._shards.backend.envs[0].world.agents])
    max_speed = np.array([a.max_speed for a in ref._shards.backend.envs[0].world.agents])
    heading = rng.normal(size=(ref.num_envs, 2))
    for _ in range(steps):
        actions = actions_for(ref, obs, rng, heading)
        a, b = ref.step(actions), fast.step(actions)
        assert_steps_equal(a, b)
        obs = a.obs
        if a.done.any():
            heading = rng.normal(size=(ref.num_envs, 2))
        pos, vel = mpe_state(ref)
        assert np.array_equal(pos, fast._pos) and np.array_equal(vel, fast._vel)
        assert ref.episode_seeds == fast.episode_seeds
        seen["touches"] += int(a.info["collisions"].sum())
        runner_reward = a.reward[ref.num_agents - 1].numpy() / ref.reward_scale
        seen["bound"] += int((np.abs(runner_reward - np.round(runner_reward)) > 1e-3).sum())
        speed = np.sqrt((vel**2).sum(-1))
        seen["max_speed"] += int(np.isclose(speed, max_speed).sum())
        n = len(runners)
        gap = np.linalg.norm(pos[:, :n, None] - pos[:, None, n:], axis=-1)
        seen["obstacle"] += int((gap < fast._dist_min[None, :, n:] + 0.01).sum())
        seen["resets"] += int(a.done.sum())
    return seen


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_mpe2_adapter_over_two_episodes(continuous: bool, seed: int) -> None:
    ref, fast = pair(seed, continuous=continuous)
    seen = run_against_reference(ref, fast, seed, 2 * MAX_CYCLES + 7)
    # The comparison covered every branch of the physics and rewards.
    assert seen["resets"] == 2 * ref.num_envs
    assert min(seen.values()) > 0, seen


@pytest.mark.parametrize(
    "kw",
    [dict(num_good=2, num_adversaries=3, num_obstacles=1), dict(num_obstacles=0, max_cycles=30)],
)
def test_matches_mpe2_adapter_other_sizes(kw: dict) -> None:
    for continuous in (False, True):
        ref, fast = pair(3, num_envs=3, continuous=continuous, **kw)
        assert fast.agents == ref.agents and fast.mpe_names == ref.mpe_names
        assert fast.obs_dims == ref.obs_dims and fast.action_spaces == ref.action_spaces
        seen = run_against_reference(ref, fast, 3, 70)
        assert seen["touches"] > 0


def test_reset_reproduces_mpe2_reset_world() -> None:
    fast = TagBatchedEnv(TagEnvConfig(runner="x"), 5, "cpu", 0)
    raw = simple_tag_v3.raw_env(num_good=1, num_adversaries=2, num_obstacles=2)
    seeds = [0, 1, 12345, 2**31 - 2, 987654321]
    fast._reset_state(np.arange(5), seeds)
    for b, seed in enumerate(seeds):
        raw.reset(seed=seed)
        pos = np.stack([e.state.p_pos for e in raw.world.agents + raw.world.landmarks])
        assert np.array_equal(fast._pos[b], pos)
        for i, name in enumerate(fast.mpe_names.values()):
            assert np.array_equal(fast._observe()[i][b], raw.observe(name))


def test_same_seed_same_run() -> None:
    a, b, c = (TagBatchedEnv(TagEnvConfig(runner="x"), 6, "cpu", s) for s in (11, 11, 12))
    obs_a, obs_b, obs_c = a.reset(), b.reset(), c.reset()
    assert torch.equal(obs_a[0], obs_b[0]) and not torch.equal(obs_a[0], obs_c[0])
    assert len({tuple(row.tolist()) for row in obs_a[0]}) == 6
    first = a.episode_seeds
    rng = np.random.default_rng(2)
    for _ in range(MAX_CYCLES + 5):
        actions = [torch.from_numpy(rng.integers(0, 5, 6)) for _ in a.agents]
        assert_steps_equal(a.step(actions), b.step(actions))
    assert a.episode_seeds == b.episode_seeds and not set(a.episode_seeds) & set(first)


def _random_actions(env, rng: np.random.Generator) -> list[torch.Tensor]:
    if env.config.continuous:
        return [
            torch.from_numpy(rng.normal(0.5, 1, (env.num_envs, 5)).astype(np.float32))
            for _ in env.agents
        ]
    return [torch.from_numpy(rng.integers(0, 5, env.num_envs)) for _ in env.agents]


def _saved(env) -> dict:
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("continuous", [False, True])
def test_state_dict_round_trip(continuous: bool) -> None:
    """Save mid-episode, load into a fresh env with another seed: both continue identically
    across the episode boundary and its reseeding."""
    config = TagEnvConfig(runner="x", continuous=continuous)
    original = TagBatchedEnv(config, 4, "cpu", 21)
    original.reset()
    rng = np.random.default_rng(5)
    for _ in range(30):
        original.step(_random_actions(original, rng))
    state = _saved(original)
    resumed = TagBatchedEnv(config, 4, "cpu", 999)
    resumed.load_state_dict(state)
    for _ in range(MAX_CYCLES):
        actions = _random_actions(original, rng)
        assert_steps_equal(original.step(actions), resumed.step(actions))
    assert resumed.episode_seeds == original.episode_seeds

    with pytest.raises(UserError, match="envs"):
        TagBatchedEnv(config, 3, "cpu", 0).load_state_dict(state)
    fresh, unstarted = TagBatchedEnv(config, 2, "cpu", 8), TagBatchedEnv(config, 2, "cpu", 0)
    unstarted.load_state_dict(fresh.state_dict())  # before any reset: just the generator
    assert torch.equal(unstarted.reset()[0], fresh.reset()[0])


@pytest.mark.parametrize("continuous", [False, True])
def test_checkpoints_move_between_backends(continuous: bool) -> None:
    """A TagEnv checkpoint (seeds and actions only) resumes on the vectorized backend by
    replay, and a vectorized checkpoint resumes on TagEnv: identical continuations."""
    config = TagEnvConfig(runner="x", continuous=continuous)
    ref, fast = TagEnv(config, 3, "cpu", 4), TagBatchedEnv(config, 3, "cpu", 4)
    ref.reset(), fast.reset()
    rng = np.random.default_rng(6)
    for _ in range(40):
        actions = _random_actions(ref, rng)
        ref.step(actions), fast.step(actions)
    from_ref, from_fast = TagBatchedEnv(config, 3, "cpu", 0), TagEnv(config, 3, "cpu", 0)
    from_ref.load_state_dict(_saved(ref))
    from_fast.load_state_dict(_saved(fast))
    assert np.array_equal(from_ref._pos, fast._pos) and np.array_equal(from_ref._vel, fast._vel)
    for _ in range(MAX_CYCLES - 20):
        actions = _random_actions(ref, rng)
        a = ref.step(actions)
        for other in (fast, from_ref, from_fast):
            assert_steps_equal(a, other.step(actions))


def test_backend_selection_and_validation() -> None:
    family = ENVS["tag"]
    assert family.config is TagEnvConfig and TagEnvConfig().backend == "vectorized"
    assert isinstance(make_env(TagEnvConfig(runner="x"), 2, "cpu", 0), TagBatchedEnv)
    assert isinstance(make_env(TagEnvConfig(runner="x", backend="mpe2"), 2, "cpu", 0), TagEnv)
    fast = make_env(TagEnvConfig(runner="x", backend="vectorized"), 2, "cpu", 0)
    assert isinstance(fast, TagBatchedEnv)
    assert fast.agents == ("chaser0", "chaser1", "runner") and fast.obs_dims == (14, 14, 12)
    obs = fast.reset()
    assert [tuple(o.shape) for o in obs] == [(2, 14), (2, 14), (2, 12)]
    assert all(o.dtype == torch.float32 for o in obs)
    bad = TagEnvConfig(runner="x", backend="jax")
    with pytest.raises(UserError, match="backend"):
        bad.validate()
    with pytest.raises(UserError, match="backend"):
        make_env(bad, 1, "cpu", 0)
    with pytest.raises(UserError, match="num_envs"):
        TagBatchedEnv(TagEnvConfig(runner="x"), 0, "cpu", 0)


def test_bad_actions_are_rejected() -> None:
    env = TagBatchedEnv(TagEnvConfig(runner="x"), 2, "cpu", 0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step([torch.zeros(2, dtype=torch.long)] * 3)
    env.reset()
    with pytest.raises(ValueError, match="chaser1"):
        env.step([torch.zeros(2, dtype=torch.long), torch.tensor([0, 5]), torch.zeros(2)])
    with pytest.raises(ValueError, match="expected 3"):
        env.step([torch.zeros(2, dtype=torch.long)] * 2)
    cont = TagBatchedEnv(TagEnvConfig(runner="x", continuous=True), 2, "cpu", 0)
    cont.reset()
    nan = torch.zeros(2, 5)
    nan[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cont.step([torch.zeros(2, 5), torch.zeros(2, 5), nan])
