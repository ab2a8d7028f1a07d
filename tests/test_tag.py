"""MPE Tag: the batched adapter against mpe2's own simple_tag_v3.parallel_env, batch seeding,
worker processes, continuous-action clipping and state_dict resumes."""

from __future__ import annotations

import gc
import io
import logging

import numpy as np
import pytest
import torch
from mpe2 import simple_tag_v3

from srpo_core.envs import ENVS, make_env
from srpo_core.envs.base import Box, Discrete
from srpo_core.envs.tag.env import TagEnv, TagEnvConfig
from srpo_core.envs.tag.torch_env import TagBatchedEnv
from srpo_core.errors import UserError

MAX_CYCLES = 100


@pytest.fixture(autouse=True)
def quiet_pettingzoo():
    """mpe2's ClipOutOfBoundsWrapper warns on every out-of-bounds action of the reference."""
    logger = logging.getLogger("pettingzoo.utils.env_logger")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def chase_actions(obs: list[torch.Tensor], rng: np.random.Generator, continuous: bool):
    """Chasers head for the runner (its relative position is obs[10:12]) with some noise so
    that touches happen; the runner moves at random. Continuous actions spill out of [0, 1]."""
    n = obs[0].shape[0]
    actions = []
    for i, o in enumerate(obs):
        if continuous:
            a = rng.normal(0.5, 1.0, size=(n, 5)).astype(np.float32)
            if i < 2:
                d = o[:, 10:12].numpy()
                a[:, 1], a[:, 2] = -3 * d[:, 0], 3 * d[:, 0]
                a[:, 3], a[:, 4] = -3 * d[:, 1], 3 * d[:, 1]
            actions.append(torch.from_numpy(a))
            continue
        a = rng.integers(0, 5, size=n)
        if i < 2:
            d = o[:, 10:12].numpy()
            greedy = np.where(
                np.abs(d[:, 0]) > np.abs(d[:, 1]),
                np.where(d[:, 0] > 0, 2, 1),
                np.where(d[:, 1] > 0, 4, 3),
            )
            a = np.where(rng.random(n) < 0.8, greedy, a)
        actions.append(torch.from_numpy(a.astype(np.int64)))
    return actions


def random_actions(env: TagEnv, rng: np.random.Generator) -> list[torch.Tensor]:
    if isinstance(env.action_spaces[0], Box):
        shape = (env.num_envs, 5)
        return [torch.from_numpy(rng.normal(0.5, 1, shape).astype(np.float32)) for _ in env.agents]
    return [torch.from_numpy(rng.integers(0, 5, env.num_envs)) for _ in env.agents]


def assert_steps_equal(a, b) -> None:
    for x, y in zip(a.obs, b.obs, strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.reward, b.reward)
    assert torch.equal(a.done, b.done)
    assert torch.equal(a.info["collisions"], b.info["collisions"])


def reference_touches(ref) -> int:
    world, scenario = ref.unwrapped.world, ref.unwrapped.scenario
    chasers = [a for a in world.agents if a.adversary]
    runners = [a for a in world.agents if not a.adversary]
    return sum(scenario.is_collision(r, c) for r in runners for c in chasers)


@pytest.mark.parametrize("continuous", [False, True])
def test_matches_mpe2_parallel_env(continuous: bool) -> None:
    env = TagEnv(TagEnvConfig(continuous=continuous), 2, "cpu", seed=3)
    refs = [
        simple_tag_v3.parallel_env(
            num_good=1,
            num_adversaries=2,
            num_obstacles=2,
            max_cycles=MAX_CYCLES,
            continuous_actions=continuous,
        )
        for _ in range(2)
    ]
    names = list(env.mpe_names.values())
    obs = env.reset()

    def check_obs(ref_obs: dict, b: int) -> None:
        for i, name in enumerate(names):
            assert torch.equal(obs[i][b], torch.from_numpy(ref_obs[name])), (name, b)

    for b, ref in enumerate(refs):
        check_obs(ref.reset(seed=env.episode_seeds[b])[0], b)
    rng = np.random.default_rng(0)
    touches = 0
    for t in range(MAX_CYCLES + 15):
        actions = chase_actions(obs, rng, continuous)
        step = env.step(actions)
        obs = step.obs
        assert torch.equal(step.cost, torch.zeros(3, 2))
        for b, ref in enumerate(refs):
            # The reference gets the unclipped actions: its own ClipOutOfBoundsWrapper clips.
            joint = {n: actions[i][b].numpy() for i, n in enumerate(names)}
            if not continuous:
                joint = {n: int(a) for n, a in joint.items()}
            ref_obs, ref_rew, term, trunc, _ = ref.step(joint)
            for i, name in enumerate(names):
                assert step.reward[i, b].item() == np.float32(ref_rew[name] * 0.1)
            assert step.info["collisions"][b].item() == reference_touches(ref)
            touches += reference_touches(ref)
            ended = all(trunc.values())
            assert not any(term.values())
            assert ended == (t == MAX_CYCLES - 1) == bool(step.done[b])
            if ended:  # auto-reset: the next episode's first obs, from a fresh seed
                assert not ref.agents
                ref_obs, _ = ref.reset(seed=env.episode_seeds[b])
            check_obs(ref_obs, b)
    assert touches > 0
    assert len(set(env.episode_seeds)) == 2


def test_roles_spaces_and_registration() -> None:
    env = TagEnv(TagEnvConfig(), 3, "cpu", 0)
    assert env.agents == ("chaser0", "chaser1", "runner")
    assert env.mpe_names == {
        "chaser0": "adversary_0",
        "chaser1": "adversary_1",
        "runner": "agent_0",
    }
    assert env.obs_dims == (14, 14, 12)
    assert all(isinstance(s, Discrete) and s.n == 5 for s in env.action_spaces)
    obs = env.reset()
    assert [tuple(o.shape) for o in obs] == [(3, 14), (3, 14), (3, 12)]
    assert all(o.dtype == torch.float32 for o in obs)

    cont = TagEnv(TagEnvConfig(continuous=True), 1, "cpu", 0)
    assert cont.action_spaces == (Box(5), Box(5), Box(5))

    big = TagEnv(TagEnvConfig(num_good=2, num_adversaries=3, num_obstacles=1), 1, "cpu", 0)
    assert big.agents == ("chaser0", "chaser1", "chaser2", "runner0", "runner1")
    assert big.mpe_names["runner1"] == "agent_1"
    ref = simple_tag_v3.parallel_env(num_good=2, num_adversaries=3, num_obstacles=1)
    assert big.obs_dims == tuple(ref.observation_space(n).shape[0] for n in big.mpe_names.values())
    big_obs = big.reset()
    step = big.step([torch.zeros(1, dtype=torch.long)] * 5)
    assert step.reward.shape == (5, 1) and [o.shape[1] for o in big_obs] == list(big.obs_dims)

    family = ENVS["tag"]
    assert family.config is TagEnvConfig and family.default_preset == "tag-ippo"
    assert isinstance(make_env(TagEnvConfig(backend="mpe2"), 2, "cpu", 0), TagEnv)
    assert isinstance(make_env(TagEnvConfig(), 2, "cpu", 0), TagBatchedEnv)


@pytest.mark.parametrize(
    "field,value",
    [
        ("num_good", 0),
        ("num_adversaries", 0),
        ("num_obstacles", -1),
        ("max_cycles", 0),
        ("reward_scale", 0.0),
        ("reward_scale", float("nan")),
        ("workers", -1),
        ("start_method", "threads"),
    ],
)
def test_config_validation(field: str, value) -> None:
    config = TagEnvConfig(**{field: value})
    with pytest.raises(UserError, match=field):
        config.validate()
    with pytest.raises(UserError):
        TagEnv(config, 1, "cpu", 0)


def test_bad_actions_are_rejected() -> None:
    env = TagEnv(TagEnvConfig(), 2, "cpu", 0)
    env.reset()
    with pytest.raises(ValueError, match="chaser1"):
        env.step([torch.zeros(2, dtype=torch.long), torch.tensor([0, 5]), torch.zeros(2)])
    cont = TagEnv(TagEnvConfig(continuous=True), 2, "cpu", 0)
    cont.reset()
    bad = torch.zeros(2, 5)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cont.step([torch.zeros(2, 5), torch.zeros(2, 5), bad])


def test_continuous_actions_are_clipped_into_the_box() -> None:
    """Unbounded Gaussian actions act exactly like the same actions clipped into [0, 1]."""
    raw = TagEnv(TagEnvConfig(continuous=True), 3, "cpu", 5)
    clipped = TagEnv(TagEnvConfig(continuous=True), 3, "cpu", 5)
    raw.reset(), clipped.reset()
    rng = np.random.default_rng(1)
    moved = False
    for _ in range(20):
        actions = [torch.from_numpy(rng.normal(0, 4, (3, 5))) for _ in range(3)]  # float64 too
        a = raw.step(actions)
        b = clipped.step([x.clamp(0, 1) for x in actions])
        assert_steps_equal(a, b)
        moved |= bool((a.obs[2][:, :2] != 0).any())  # the runner's velocity
    assert moved
    # Below 0 acts as 0: all-negative actions leave everyone still.
    still = raw.step([torch.full((3, 5), -7.0)] * 3)
    stop = clipped.step([torch.zeros(3, 5)] * 3)
    assert_steps_equal(still, stop)


def test_batch_seeding_is_reproducible() -> None:
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    a, b, c = (TagEnv(TagEnvConfig(), 6, "cpu", s) for s in (11, 11, 12))
    obs_a, obs_b, obs_c = a.reset(), b.reset(), c.reset()
    assert len(set(a.episode_seeds)) == 6
    assert len({tuple(row.tolist()) for row in obs_a[0]}) == 6  # distinct starts
    assert a.episode_seeds == b.episode_seeds != c.episode_seeds
    assert torch.equal(obs_a[0], obs_b[0]) and not torch.equal(obs_a[0], obs_c[0])
    first_seeds = a.episode_seeds
    for _ in range(MAX_CYCLES + 5):
        assert_steps_equal(a.step(random_actions(a, rng_a)), b.step(random_actions(b, rng_b)))
    assert a.episode_seeds == b.episode_seeds
    assert not set(a.episode_seeds) & set(first_seeds)  # a new seed per episode


@pytest.mark.parametrize("continuous", [False, True])
def test_workers_match_in_process(continuous: bool) -> None:
    config = TagEnvConfig(continuous=continuous)
    local = TagEnv(config, 5, "cpu", 7)
    pooled = TagEnv(TagEnvConfig(continuous=continuous, workers=2), 5, "cpu", 7)
    try:
        assert pooled._shards.backend is None  # nothing starts before the first reset
        for x, y in zip(local.reset(), pooled.reset(), strict=True):
            assert torch.equal(x, y)
        rng = np.random.default_rng(3)
        for _ in range(MAX_CYCLES + 3):
            actions = random_actions(local, rng)
            assert_steps_equal(local.step(actions), pooled.step(actions))
        procs = list(pooled._shards.backend.procs)
        assert len(procs) == 2 and all(p.is_alive() and p.daemon for p in procs)
    finally:
        pooled.close()
    assert not any(p.is_alive() for p in procs)
    pooled.close()  # idempotent


def test_dropped_env_stops_its_workers() -> None:
    env = TagEnv(TagEnvConfig(workers=2), 4, "cpu", 0)
    env.reset()
    procs = list(env._shards.backend.procs)
    del env
    gc.collect()
    for p in procs:
        p.join(timeout=5)
        assert not p.is_alive()


def test_spawned_workers_match() -> None:
    """The slow start method (a fresh interpreter per worker) runs the same code."""
    local = TagEnv(TagEnvConfig(), 2, "cpu", 4)
    spawned = TagEnv(TagEnvConfig(workers=1, start_method="spawn"), 2, "cpu", 4)
    try:
        for x, y in zip(local.reset(), spawned.reset(), strict=True):
            assert torch.equal(x, y)
        rng = np.random.default_rng(4)
        for _ in range(5):
            actions = random_actions(local, rng)
            assert_steps_equal(local.step(actions), spawned.step(actions))
    finally:
        spawned.close()


@pytest.mark.parametrize("continuous,workers", [(False, 0), (True, 2)])
def test_state_dict_round_trip(continuous: bool, workers: int) -> None:
    """Save mid-episode, load into a fresh env (other seed, other worker count), and both
    continue identically, across the episode boundary and its reseeding."""
    original = TagEnv(TagEnvConfig(continuous=continuous), 4, "cpu", 21)
    original.reset()
    rng = np.random.default_rng(5)
    for _ in range(30):
        original.step(random_actions(original, rng))
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = TagEnv(TagEnvConfig(continuous=continuous, workers=workers), 4, "cpu", 999)
    try:
        resumed.load_state_dict(state)
        for _ in range(MAX_CYCLES):
            actions = random_actions(original, rng)
            assert_steps_equal(original.step(actions), resumed.step(actions))
        assert resumed.episode_seeds == original.episode_seeds
    finally:
        resumed.close()

    with pytest.raises(UserError, match="envs"):
        TagEnv(TagEnvConfig(continuous=continuous), 3, "cpu", 0).load_state_dict(state)
    fresh = TagEnv(TagEnvConfig(), 2, "cpu", 8)
    unstarted = TagEnv(TagEnvConfig(), 2, "cpu", 0)
    unstarted.load_state_dict(fresh.state_dict())  # before any reset: just the generator
    assert unstarted.reset()[0].tolist() == fresh.reset()[0].tolist()
