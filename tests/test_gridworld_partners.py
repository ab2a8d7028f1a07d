"""Scripted gridworld partners (`srpo_core.envs.gridworld.partners`): hand-computed actions
in hand-built situations, the task reached in self-play, sampling rates within 5 sigma,
seeded reproducibility and the CLI."""

import math

import pytest
import torch

from srpo_core.agents.random_policy import UniformPolicy
from srpo_core.envs.gridworld.env import GridworldEnv, GridworldEnvConfig
from srpo_core.envs.gridworld.partners import worker_actions
from srpo_core.policy_loading import load_seat
from srpo_core.registry import Registry
from srpo_core.rollout import play_episodes

UP, DOWN, LEFT, RIGHT, STAY = range(5)


def make(num_envs=1, seed=0, **config):
    return GridworldEnv(GridworldEnvConfig(**config), num_envs, "cpu", seed)


def seats(env, *names):
    out = [
        load_seat(
            None,
            f"scripted:gridworld/{name}",
            env_config=env.config,
            seat=env.agents[i],
            obs_dim=8,
            device=torch.device("cpu"),
        )
        for i, name in enumerate(names)
    ]
    for i, seat in enumerate(out):
        seat.bind(env, i)
    return out


def chosen(env, a0, a1, has=(False, False), onions=(True, True)):
    """Both workers' actions in the state placed by hand."""
    obs = env.set_state(torch.tensor([a0, a1]), torch.tensor(has), torch.tensor(onions))
    return [int(worker_actions(obs[i], i, env.config.normalize_obs)[0]) for i in (0, 1)]


@pytest.mark.parametrize("normalize_obs", [False, True])
def test_the_worker_takes_the_hand_computed_actions(normalize_obs):
    env = make(normalize_obs=normalize_obs)
    # start: agent0 heads right (its lane: row 1, then column 4 down to onion (3, 4)),
    # agent1 down (column 1, then row 4 right to onion (4, 3))
    assert chosen(env, (1, 0), (0, 1)) == [RIGHT, DOWN]
    assert chosen(env, (0, 1), (1, 0)) == [RIGHT, DOWN]
    # carrying: into the pot when next to it, else along the lane towards it
    assert chosen(env, (2, 3), (3, 2), has=(True, True)) == [LEFT, UP]
    assert chosen(env, (3, 4), (4, 3), has=(True, True)) == [UP, LEFT]
    # empty-handed next to its onion: in when it is there, wait (free) while it is missing
    assert chosen(env, (2, 4), (4, 2)) == [DOWN, RIGHT]
    assert chosen(env, (2, 4), (4, 2), onions=(False, False)) == [STAY, STAY]
    assert chosen(env, (2, 4), (4, 2), onions=(False, True)) == [STAY, RIGHT]
    # standing on its (respawned) onion: only moving in picks up, so it steps off first
    assert chosen(env, (3, 4), (4, 3)) == [UP, LEFT]
    # never into the other agent nor (empty-handed) the pot: from (1, 2) to (3, 4) with
    # agent1 on (1, 3), up (0, 2) and left (1, 1) both start a 6-step path; right-up-left-down
    assert chosen(env, (1, 2), (1, 3), has=(False, True))[0] == UP
    # its lane's first step taken by the other agent: the other shortest path
    assert chosen(env, (0, 0), (0, 1)) == [DOWN, DOWN]
    assert chosen(env, (4, 4), (3, 4), has=(True, False))[0] == LEFT


def test_the_worker_needs_its_seat():
    env = make()
    worker = load_seat(
        None,
        "scripted:gridworld/worker",
        env_config=env.config,
        seat="agent0",
        obs_dim=8,
        device=torch.device("cpu"),
    )
    with pytest.raises(RuntimeError, match="bind"):
        worker.distribution(env.reset()[0])


def test_workers_reach_the_goal_and_uniform_random_does_not():
    # Each worker walks its lane to its onion (6 steps from either start, 7 when it bumps
    # at the start) and into the pot (3 more): both deliver by step 10 of 50, so every
    # episode's team reward is at least 2 * (1 + 10) = 22.
    env = make(num_envs=400)
    episodes = play_episodes(env, seats(env, "worker", "worker"), torch.Generator().manual_seed(1))
    assert episodes.reward[0].min() >= 22
    deliveries = episodes.info["agent0/deliveries"], episodes.info["agent1/deliveries"]
    assert all(bool((d >= 1).all()) for d in deliveries)
    # both do their share: no free-riding beyond the start bump (2 per episode at most)
    assert episodes.summary(env.agents)["free_riding"] < 0.5
    env = make(num_envs=400)
    uniform = [UniformPolicy(space) for space in env.action_spaces]
    random_episodes = play_episodes(env, uniform, torch.Generator().manual_seed(1))
    assert random_episodes.reward[0].mean() < 11  # not even one delivery on average
    assert episodes.reward[0].mean() > 5 * random_episodes.reward[0].mean()


def decisions(seed=3):
    """Observations of many real states (workers playing) and the per-agent worker actions."""
    runner_env = make(num_envs=200, seed=seed)
    workers = seats(runner_env, "worker", "worker")
    obs, generator = runner_env.reset(), torch.Generator().manual_seed(seed)
    seen = []
    for _ in range(50):
        seen.append(obs[0])
        actions = [w.distribution(o).sample(generator) for w, o in zip(workers, obs, strict=True)]
        obs = runner_env.step(actions).obs
    return torch.cat(seen)


def rates(name, seed=4):
    """(share of decisions matching the worker, share of STAY where the worker moves, N) of
    partner ``name`` in both seats over 10,000 states where the worker moves."""
    env = make()
    obs = decisions()
    partners = seats(env, name, name)
    match = moves = stays = 0
    generator = torch.Generator().manual_seed(seed)
    for i in (0, 1):
        worker = worker_actions(obs, i)
        action = partners[i].distribution(obs).sample(generator)
        moving = worker != STAY
        match += int((action == worker)[moving].sum())
        stays += int((action == STAY)[moving].sum())
        moves += int(moving.sum())
    return match / moves, stays / moves, moves


def five_sigma(p, n):
    return 5 * math.sqrt(p * (1 - p) / n)


def test_the_half_worker_works_half_of_the_time():
    match, stays, n = rates("half-worker")
    assert n > 10_000
    assert abs(match - 0.5) < five_sigma(0.5, n)
    assert match + stays == 1.0  # when not working, it idles (STAY), never wanders


def test_the_noisy_worker_acts_at_random_30_percent_of_the_time():
    # a uniform action (1 in 5 is the worker's) 30% of the time: P(differ) = 0.3 * 4/5
    match, _, n = rates("noisy")
    assert n > 10_000
    assert abs((1 - match) - 0.24) < five_sigma(0.24, n)


def test_the_worker_is_deterministic():
    match, _, _ = rates("worker")
    assert match == 1.0


def test_same_seed_same_episodes():
    def play(seed):
        env = make(num_envs=64, seed=seed)
        return play_episodes(
            env, seats(env, "noisy", "half-worker"), torch.Generator().manual_seed(seed)
        )

    first, again, other = play(5), play(5), play(6)
    assert torch.equal(first.reward, again.reward) and torch.equal(first.cost, again.cost)
    assert all(torch.equal(first.info[k], again.info[k]) for k in first.info)
    assert not torch.equal(first.cost, other.cost)


def test_zoo_build_with_the_worker(cli, registry_url):
    Registry(registry_url).close()  # the CLI's registry exists, empty
    cli("zoo", "build", "scripted", "--env", "gridworld", "--scripted", "gridworld/worker")
