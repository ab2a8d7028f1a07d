"""The batched-env contract, checked the same way for every registered env family (the
models: PettingZoo's ``parallel_seed_test``, JaxMARL's base-API test): shapes against the
spec, masks, auto-reset, episode sums against the runner's counters, seeding, a state that
survives a checkpoint round trip and continues bit-identically, and ``close()`` leaving no
child process. A new family is added to `FAMILIES` with a small config."""

from __future__ import annotations

import io
import multiprocessing as mp

import pytest
import torch

from srpo_core.config import env_config_class
from srpo_core.envs import ENVS, env_spec, make_env
from srpo_core.envs.base import BatchedEnv, Box, Discrete, Step
from srpo_core.rollout import Runner

ENVS_PER_BATCH = 4
STEPS = 90

FAMILIES = {
    "matrix": {},
    "quadratic": {},
    "gridworld": {"horizon": 12},
    "tag": {"max_cycles": 15},
    "tag-mpe2": {"max_cycles": 15, "backend": "mpe2", "workers": 2},
    "hanabi": {"players": 2},
    "overcooked": {"horizon": 15, "random_start": True, "move_cost": 0.1, "bump_cost": 1.0},
    "overcooked-package": {"horizon": 15, "random_start": True, "backend": "package", "workers": 2},
    "ipd": {"rounds": 10},
}
"""name (family, or family-variant) -> env config values. Every family with a batched env
is here (`test_every_family_is_covered`)."""

DETERMINISTIC = {"matrix", "quadratic", "ipd"}
"""Families whose steps do not depend on the seed (no randomness in the game)."""


def config_of(name: str):
    family = name.split("-")[0]
    return env_config_class(family)(**FAMILIES[name])


def make(name: str, seed: int, num_envs: int = ENVS_PER_BATCH) -> BatchedEnv:
    return make_env(config_of(name), num_envs, "cpu", seed)


def random_actions(env: BatchedEnv, legal, generator: torch.Generator) -> list[torch.Tensor]:
    """Uniform over the legal actions (every action where the env has no masks)."""
    actions = []
    for i, space in enumerate(env.action_spaces):
        if isinstance(space, Box):
            actions.append(torch.rand(env.num_envs, space.dim, generator=generator) * 2 - 1)
            continue
        allowed = torch.ones(env.num_envs, space.n, dtype=torch.bool)
        if legal is not None:  # a seat that is not to move has none: its action is ignored
            allowed = torch.where(legal[i].any(1, keepdim=True), legal[i], allowed)
        actions.append(torch.multinomial(allowed.float(), 1, generator=generator).squeeze(1))
    return actions


def play(env: BatchedEnv, steps: int, seed: int) -> list[Step]:
    """``steps`` steps from a reset, with actions drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    env.reset()
    legal, _ = env.masks()
    out = []
    for _ in range(steps):
        out.append(env.step(random_actions(env, legal, generator)))
        legal = out[-1].legal
    return out


def assert_same_steps(a: list[Step], b: list[Step]) -> None:
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        assert all(torch.equal(p, q) for p, q in zip(x.obs, y.obs, strict=True)), t
        assert torch.equal(x.reward, y.reward) and torch.equal(x.cost, y.cost), t
        assert torch.equal(x.done, y.done), t
        assert x.info.keys() == y.info.keys(), t
        assert all(torch.equal(x.info[k], y.info[k]) for k in x.info), t


def test_every_family_is_covered():
    batched = {name for name, family in ENVS.items() if name != "debate"}
    assert {name.split("-")[0] for name in FAMILIES} == batched


SPEC_VARIANTS = {"ipd": {"identity": True}, "tag": {"role": "runner"}, "hanabi": {"players": 3}}
"""Configs whose seats or observation sizes differ from the `FAMILIES` ones."""


@pytest.mark.parametrize(
    "config",
    [config_of(name) for name in FAMILIES]
    + [env_config_class(family)(**values) for family, values in SPEC_VARIANTS.items()],
    ids=[*FAMILIES, *(f"{family}-variant" for family in SPEC_VARIANTS)],
)
def test_the_spec_without_an_env_is_the_envs(config):
    """`EnvFamily.spec` (seats, observation sizes, action spaces from the config alone)
    describes the env the family builds; every built-in family has one."""
    assert ENVS[config.name].spec is not None
    env = make_env(config, 2, "cpu", 0)
    try:
        spec = env_spec(config)
        assert (spec.agents, spec.obs_dims, spec.action_spaces) == (
            env.agents,
            env.obs_dims,
            env.action_spaces,
        )
    finally:
        env.close()


@pytest.mark.parametrize("name", FAMILIES)
def test_shapes_masks_and_auto_reset(name):
    env = make(name, seed=0)
    n, agents = env.num_envs, env.num_agents
    assert len(env.obs_dims) == len(env.action_spaces) == agents
    obs = env.reset()
    assert [tuple(o.shape) for o in obs] == [(n, d) for d in env.obs_dims]
    assert all(o.dtype == torch.float32 and bool(torch.isfinite(o).all()) for o in obs)
    steps = play(env, STEPS, seed=1)
    for step in steps:
        assert [tuple(o.shape) for o in step.obs] == [(n, d) for d in env.obs_dims]
        assert step.reward.shape == step.cost.shape == (agents, n)
        assert step.done.shape == (n,) and step.done.dtype == torch.bool
        assert all(v.shape == (n,) for v in step.info.values())
        assert bool(torch.isfinite(step.reward).all() and torch.isfinite(step.cost).all())
        acting = torch.ones(agents, n, dtype=torch.bool)
        if step.acting is not None:
            assert step.acting.shape == (agents, n) and bool(step.acting.any(0).all())
            acting = step.acting
        if step.legal is not None:
            for i, (legal, space) in enumerate(zip(step.legal, env.action_spaces, strict=True)):
                assert isinstance(space, Discrete) and legal.shape == (n, space.n)
                assert torch.equal(legal.any(1), acting[i])  # who moves has moves
    finished = torch.stack([s.done for s in steps]).sum(0)
    assert bool((finished >= 2).all())  # every env ended episodes and went on (auto-reset)
    env.close()


@pytest.mark.parametrize("name", FAMILIES)
def test_episode_sums_match_the_runners_counters(name):
    """The runner's finished episodes hold the sums of the steps' rewards, costs and info
    counters since each env's last reset, and the number of steps."""
    env = make(name, seed=3)
    runner = Runner(env)
    generator = torch.Generator().manual_seed(4)
    sums = {"reward": 0, "cost": 0, "length": 0}
    sums = {k: torch.zeros(env.num_agents, env.num_envs, dtype=torch.float64) for k in sums}
    info: dict[str, torch.Tensor] = {}
    checked = 0
    for _ in range(STEPS):
        step, finished = runner.step(random_actions(env, runner.legal, generator))
        sums["reward"] += step.reward
        sums["cost"] += step.cost
        sums["length"] += 1
        for key, value in step.info.items():
            info[key] = info.get(key, torch.zeros(env.num_envs, dtype=torch.float64)) + value
        if finished is None:
            continue
        ended = torch.nonzero(step.done).squeeze(1)
        assert torch.equal(finished.env, ended)
        torch.testing.assert_close(finished.reward, sums["reward"][:, ended].to(finished.reward))
        torch.testing.assert_close(finished.cost, sums["cost"][:, ended].to(finished.cost))
        assert torch.equal(finished.length.double(), sums["length"][0, ended])
        for key, value in finished.info.items():
            torch.testing.assert_close(value.double(), info[key][ended])
        for totals in (*sums.values(), *info.values()):
            totals[..., ended] = 0
        checked += len(ended)
    assert checked >= ENVS_PER_BATCH
    env.close()


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_same_steps_another_seed_differs(name):
    first, again, other = make(name, seed=5), make(name, seed=5), make(name, seed=6)
    steps = play(first, STEPS, seed=7)
    assert_same_steps(steps, play(again, STEPS, seed=7))
    differs = play(other, STEPS, seed=7)
    same = all(
        all(torch.equal(p, q) for p, q in zip(x.obs, y.obs, strict=True))
        and torch.equal(x.reward, y.reward)
        for x, y in zip(steps, differs, strict=True)
    )
    assert same == (name in DETERMINISTIC)
    for env in (first, again, other):
        env.close()


@pytest.mark.parametrize("name", FAMILIES)
def test_saved_state_continues_bit_identically(name):
    """A state saved mid-episode, serialised as checkpoints store it and loaded into a
    fresh env of another seed, continues with exactly the original's steps."""
    env = make(name, seed=8)
    play(env, 23, seed=9)
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    copy = make(name, seed=99)
    copy.reset()
    copy.load_state_dict(state)
    generator = torch.Generator().manual_seed(10)
    legal, _ = env.masks()
    copy_legal, _ = copy.masks()
    assert (legal is None) == (copy_legal is None)
    if legal is not None:
        assert all(torch.equal(a, b) for a, b in zip(legal, copy_legal, strict=True))
    for _ in range(40):
        actions = random_actions(env, legal, generator)
        step, again = env.step(actions), copy.step(actions)
        assert_same_steps([step], [again])
        legal = step.legal
    env.close()
    copy.close()


@pytest.mark.parametrize("name", [n for n, values in FAMILIES.items() if "workers" in values])
def test_close_leaves_no_child_process(name):
    before = set(mp.active_children())
    env = make(name, seed=0)
    play(env, 5, seed=0)
    assert set(mp.active_children()) - before  # it does step in workers
    env.close()
    assert set(mp.active_children()) - before == set()
