"""The paper's 5x5 gridworld: hand-built situations with hand-computed outcomes, sampling
rates within 4 sigma, horizon/auto-reset, resume and batch independence."""

import io
import math

import pytest
import torch

from srpo_core.config import resolve
from srpo_core.envs import ENVS
from srpo_core.envs.gridworld.env import INFO_KEYS, GridworldEnv, GridworldEnvConfig
from srpo_core.errors import UserError
from srpo_core.rollout import Runner

UP, DOWN, LEFT, RIGHT, STAY = range(5)
ONIONS = [(3, 4), (4, 3)]


def make(num_envs=1, seed=0, **config):
    return GridworldEnv(GridworldEnvConfig(**config), num_envs, "cpu", seed)


def place(env, a0, a1, has=(False, False), onions=(True, True), agent1_first=None):
    env.set_state(torch.tensor([a0, a1]), torch.tensor(has), torch.tensor(onions))
    if agent1_first is not None:
        env.agent1_first = torch.tensor(agent1_first).expand(env.num_envs)
    return env


def act(env, a0, a1):
    b = env.num_envs
    return env.step([torch.full((b,), a0), torch.full((b,), a1)])


def info(step, b=0):
    return {k: float(v[b]) for k, v in step.info.items() if float(v[b])}


def agents(env, b=0):
    return [tuple(p) for p in env.positions[b].tolist()]


def assert_costs(step, c0, c1, reward=0.0):
    assert step.cost[:, 0].tolist() == pytest.approx([c0, c1])
    assert step.reward[:, 0].tolist() == pytest.approx([reward, reward])


def test_move_costs_and_stay_is_free():
    env = place(make(), (1, 0), (0, 1))
    step = act(env, RIGHT, STAY)
    assert agents(env) == [(1, 1), (0, 1)]
    assert_costs(step, 0.2, 0.0)
    assert info(step) == {"agent0/moves": 1.0}
    step = act(env, STAY, STAY)
    assert_costs(step, 0.0, 0.0) and info(step) == {}


def test_walls_block_and_still_cost_the_move():
    env = place(make(), (0, 0), (4, 4))
    step = act(env, UP, RIGHT)
    assert agents(env) == [(0, 0), (4, 4)]
    assert_costs(step, 0.2, 0.2)
    assert info(step) == {"agent0/moves": 1.0, "agent1/moves": 1.0}


def test_bumping_into_the_other_agent_costs_2_2_and_is_blocked():
    env = place(make(), (1, 1), (1, 2))
    step = act(env, RIGHT, STAY)
    assert agents(env) == [(1, 1), (1, 2)]
    assert_costs(step, 2.2, 0.0)
    assert info(step) == {"agent0/moves": 1.0, "agent0/bumps": 1.0}
    # swapping places: whoever goes first bumps into the other, who then bumps back
    step = act(env, RIGHT, LEFT)
    assert agents(env) == [(1, 1), (1, 2)]
    assert_costs(step, 2.2, 2.2)


def test_the_move_order_decides_who_gets_a_cell():
    # env 0: agent0 first, env 1: agent1 first
    env = place(make(2), (1, 1), (1, 2), agent1_first=[False, True])
    step = act(env, RIGHT, RIGHT)  # agent0 follows agent1 along row 1
    assert agents(env, 0) == [(1, 1), (1, 3)] and agents(env, 1) == [(1, 2), (1, 3)]
    assert torch.allclose(step.cost.T, torch.tensor([[2.2, 0.2], [0.2, 0.2]]))
    place(env, (0, 0), (0, 2), agent1_first=[False, True])
    step = act(env, RIGHT, LEFT)  # both into (0, 1)
    assert agents(env, 0) == [(0, 1), (0, 2)] and agents(env, 1) == [(0, 0), (0, 1)]
    assert torch.allclose(step.cost.T, torch.tensor([[0.2, 2.2], [2.2, 0.2]]))
    assert step.info["agent1/bumps"].tolist() == [1.0, 0.0]


def test_the_move_order_is_a_fair_coin_per_env():
    n = 4000
    env = place(make(n, seed=1), (0, 0), (0, 2))
    step = act(env, RIGHT, LEFT)
    bumps0, bumps1 = step.info["agent0/bumps"], step.info["agent1/bumps"]
    assert torch.all(bumps0 + bumps1 == 1)  # exactly one of them lost the race
    assert abs(float(bumps0.mean()) - 0.5) < 4 * math.sqrt(0.25 / n)
    assert set(map(tuple, env.positions[:, :, 1].tolist())) == {(1, 2), (0, 1)}


def test_onion_pickup_rewards_both_and_removes_it():
    env = place(make(64), (3, 3), (4, 2))
    step = act(env, RIGHT, RIGHT)  # agent0 onto onion0 (3, 4), agent1 onto onion1 (4, 3)
    assert agents(env) == [(3, 4), (4, 3)]
    assert_costs(step, 0.2, 0.2, reward=2.0)
    assert info(step)["agent0/onions"] == 1.0 and info(step)["agent1/onions"] == 1.0
    # taken this step: missing in the next observation in every env (no same-step respawn)
    assert torch.all(step.obs[0] == torch.tensor([3, 4, 1, 4, 3, 1, 0, 0.0]))
    assert step.obs[1] is step.obs[0] or torch.equal(step.obs[0], step.obs[1])


def test_one_onion_each_a_carrying_agent_walks_over_an_onion():
    env = place(make(), (3, 3), (0, 0), has=(True, False))
    step = act(env, RIGHT, STAY)
    assert agents(env) == [(3, 4), (0, 0)]
    assert_costs(step, 0.2, 0.0, reward=0.0)
    assert env.carrying[0].tolist() == [True, False] and env.onions[0].tolist() == [True, True]
    step = act(env, DOWN, STAY)  # off (3, 4) onto (4, 4)
    assert agents(env) == [(4, 4), (0, 0)] and env.onions[0].tolist() == [True, True]


def test_only_entering_a_cell_picks_up_its_onion():
    # agent0 stands on onion0's cell as the onion respawns: staying or a blocked move doesn't
    # pick it up; stepping off and back on does
    env = place(make(), (3, 4), (0, 0))
    assert_costs(act(env, STAY, STAY), 0.0, 0.0, reward=0.0)
    assert_costs(act(env, RIGHT, STAY), 0.2, 0.0, reward=0.0)  # off-grid
    assert_costs(act(env, UP, STAY), 0.2, 0.0, reward=0.0)
    assert_costs(act(env, DOWN, STAY), 0.2, 0.0, reward=1.0)
    assert env.carrying[0].tolist() == [True, False] and env.onions[0].tolist() == [False, True]


def test_delivery_rewards_both_and_empties_the_hands():
    env = place(make(), (2, 1), (1, 2), has=(True, True))
    step = act(env, RIGHT, DOWN)  # both into the pot (2, 2) from the left and from above
    assert agents(env) == [(2, 1), (1, 2)]  # the pot is never entered
    assert_costs(step, 0.2, 0.2, reward=20.0)
    assert env.carrying[0].tolist() == [False, False]
    assert info(step) == {
        "agent0/moves": 1.0,
        "agent0/deliveries": 1.0,
        "agent1/moves": 1.0,
        "agent1/deliveries": 1.0,
    }
    step = act(env, RIGHT, STAY)  # empty-handed: a blocked move, nothing else
    assert agents(env) == [(2, 1), (1, 2)]
    assert_costs(step, 0.2, 0.0, reward=0.0)
    assert info(step) == {"agent0/moves": 1.0}


def test_full_cycle_pick_and_deliver():
    env = place(make(), (3, 3), (0, 0), onions=(True, False))
    rewards = [float(act(env, a, STAY).reward[0, 0]) for a in (RIGHT, LEFT, UP, LEFT)]
    # onto the onion (+1), back to (3, 3), up to (2, 3), into the pot from the right (+10)
    assert rewards == [1.0, 0.0, 0.0, 10.0]
    assert agents(env) == [(2, 3), (0, 0)] and env.carrying[0].tolist() == [False, False]


def test_observation_layout():
    env = make(2)
    obs = env.set_state(
        torch.tensor([(3, 1), (0, 4)]), torch.tensor([True, False]), torch.tensor([False, True])
    )
    assert obs[0].tolist() == [[3, 1, 1, 0, 4, 0, 0, 1]] * 2 and torch.equal(obs[0], obs[1])
    env = make(1, normalize_obs=True)
    obs = env.set_state(
        torch.tensor([(3, 1), (0, 4)]), torch.tensor([True, False]), torch.tensor([False, True])
    )
    assert obs[0].tolist() == [[0.75, 0.25, 1, 0, 1, 0, 0, 1]]
    assert env.obs_dims == (8, 8) and env.action_spaces[0].n == 5


def test_starts_are_swapped_half_the_time():
    n = 10_000
    env = make(n, seed=2)
    obs = env.reset()[0]
    plain = obs[:, [0, 1, 3, 4]] == torch.tensor([1, 0, 0, 1.0])
    swapped = obs[:, [0, 1, 3, 4]] == torch.tensor([0, 1, 1, 0.0])
    assert torch.all(plain.all(1) ^ swapped.all(1))
    assert torch.all(obs[:, [2, 5, 6, 7]] == torch.tensor([0, 0, 1, 1.0]))
    assert abs(float(swapped.all(1).float().mean()) - 0.5) < 4 * math.sqrt(0.25 / n)
    assert torch.all(make(64, swap_starts_prob=0.0).reset()[0][:, :2] == torch.tensor([1, 0.0]))


def test_horizon_ends_the_episode_and_resets():
    env = make(16, seed=3)
    env.reset()
    for t in range(1, 101):
        step = act(env, DOWN if t % 50 == 1 else STAY, STAY)  # move away, then wait
        assert bool(step.done.any()) == (t % 50 == 0) and bool(step.done.all()) == (t % 50 == 0)
        if t % 50 == 0:  # the returned obs is the next episode's first one
            starts = {(1, 0), (0, 1)}
            assert all(set(agents(env, b)) == starts for b in range(16))
            assert torch.all(step.obs[0][:, [2, 5, 6, 7]] == torch.tensor([0, 0, 1, 1.0]))
        else:
            assert all(set(agents(env, b)) != {(1, 0), (0, 1)} for b in range(16))
    env = place(make(3000, seed=4, horizon=7), (3, 3), (0, 0))
    env.t += 6
    assert act(env, STAY, STAY).done.all()  # auto-reset start swap is a fair coin too
    assert abs(float((env.positions[:, 0, 0] == 0).float().mean()) - 0.5) < 4 * math.sqrt(
        0.25 / 3000
    )


def test_respawn_rate():
    n = 10_000  # 20k onion-steps
    env = place(make(n, seed=5), (0, 0), (0, 4), onions=(False, False))
    act(env, STAY, STAY)
    onions = env.onions.float()
    assert abs(float(onions.mean()) - 0.2) < 4 * math.sqrt(0.2 * 0.8 / (2 * n))
    both = float(onions.prod(1).mean())  # independent: 0.04
    assert abs(both - 0.04) < 4 * math.sqrt(0.04 * 0.96 / n)
    never = place(make(256, respawn_prob=0.0), (0, 0), (0, 4), onions=(False, True))
    always = place(make(256, respawn_prob=1.0), (0, 0), (0, 4), onions=(False, True))
    for _ in range(5):
        act(never, STAY, STAY)
    act(always, STAY, STAY)
    assert never.onions[:, 0].sum() == 0 and always.onions.all()


def test_envs_out_of_step_follow_the_same_rules():
    # While every env is at the same step the horizon is checked once per step in Python;
    # envs set to different steps take the per-env path. Both give the same steps.
    together, apart = make(6, seed=5, horizon=9), make(6, seed=5, horizon=9)
    together.reset(), apart.reset()
    offsets = [3, 0, 8, 0, 5, 1]
    apart.t = torch.tensor(offsets)
    assert together.clock == 0 and apart.clock is None
    gen = torch.Generator().manual_seed(0)
    for t in range(40):
        a = torch.randint(0, 5, (2, 6), generator=gen)
        s1, s2 = together.step([a[0], a[1]]), apart.step([a[0], a[1]])
        assert s1.done.tolist() == [(t + 1) % 9 == 0] * 6
        assert s2.done.tolist() == [(t + 1 + start) % 9 == 0 for start in offsets]
        same = [1, 3]  # at step 0 in both: the same random draws, so the same game
        for x, y in ((s1.reward, s2.reward), (s1.cost, s2.cost), (s1.obs[0].T, s2.obs[0].T)):
            assert torch.equal(x[:, same], y[:, same])
    assert apart.clock is None
    apart.t = torch.zeros(6, dtype=torch.long)  # in step again
    assert apart.clock == 0


def test_runner_episode_sums_match_the_counters():
    env = make(8, seed=6, horizon=20)
    runner, gen = Runner(env), torch.Generator().manual_seed(0)
    episodes = []
    for _ in range(60):
        a = torch.randint(0, 5, (2, 8), generator=gen)
        episodes.append(runner.step([a[0], a[1]])[1])
    done = [e for e in episodes if e is not None]  # None: no episode ended that step
    assert sum(e.count for e in done) == 24 and all(torch.all(e.length == 20) for e in done)
    for e in done:
        c = e.info
        reward = (
            c["agent0/onions"]
            + c["agent1/onions"]
            + 10 * (c["agent0/deliveries"] + c["agent1/deliveries"])
        )
        assert torch.allclose(e.reward[0], reward) and torch.allclose(e.reward[1], reward)
        for i in (0, 1):
            cost = 0.2 * c[f"agent{i}/moves"] + 2.0 * c[f"agent{i}/bumps"]
            assert torch.allclose(e.cost[i], cost, atol=1e-5)


def random_play(env, steps, gen):
    out = []
    for _ in range(steps):
        a = torch.randint(0, 5, (2, env.num_envs), generator=gen)
        s = env.step([a[0], a[1]])
        counters = torch.stack([s.info[k] for k in INFO_KEYS])
        out.append((s.obs[0], s.reward, s.cost, s.done, counters))
    return out


def test_state_dict_round_trip_continues_identically():
    env = make(32, seed=7, horizon=10)
    env.reset()
    random_play(env, 25, torch.Generator().manual_seed(1))
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    expected = random_play(env, 30, torch.Generator().manual_seed(2))
    other = make(32, seed=99, horizon=10)
    other.reset()
    other.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    got = random_play(other, 30, torch.Generator().manual_seed(2))
    for e, g in zip(expected, got, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(e, g, strict=True))


def test_batch_independence():
    # same seed, so both batches draw the same orders; only env 5 shares state and actions
    n, b = 16, 5
    g = torch.Generator().manual_seed(3)
    envs = [make(n, seed=8), make(n, seed=8)]
    for env in envs:
        env.reset()
        random_play(env, 13, g)  # different histories, same number of draws
        pos = torch.tensor([(3, 3), (1, 4)]).expand(n, 2, 2).clone()
        pos[b] = torch.tensor([(4, 4), (3, 2)])
        has, onions = torch.rand(2, n, 2, generator=g) < 0.5
        has[b], onions[b] = torch.tensor([True, False]), torch.tensor([False, True])
        env.set_state(pos, has, onions)
    shared = torch.randint(0, 5, (30, 2), generator=g)
    results = []
    for env in envs:
        rows = []
        for t in range(30):
            a = torch.randint(0, 5, (2, n), generator=g)
            a[:, b] = shared[t]
            s = env.step([a[0], a[1]])
            rows.append(torch.cat([s.obs[0][b], s.reward[:, b], s.cost[:, b], s.done[b : b + 1]]))
        results.append(torch.stack(rows))
    assert torch.equal(results[0], results[1])


def test_config_validation_and_presets():
    for bad in (
        {"horizon": 0},
        {"respawn_prob": 1.5},
        {"swap_starts_prob": -0.1},
        {"move_cost": -1.0},
        {"delivery_reward": float("nan")},
    ):
        with pytest.raises(UserError):
            GridworldEnvConfig(**bad).validate()
    assert ENVS["gridworld"].default_preset == "gridworld-ippo"
    ippo = resolve(flags={"env": {"name": "gridworld"}})
    srpo = resolve(presets=["gridworld-srpo"])
    assert (ippo.algo.name, ippo.algo.tau, srpo.algo.name, srpo.algo.tau) == ("ippo", 0, "srpo", 10)
    for config in (ippo, srpo):
        p = config.ppo
        assert (p.lr, p.num_envs, p.num_steps, p.epochs, p.minibatches) == (6e-4, 8, 128, 4, 1)
        assert (p.clip, p.vf_coef, p.gamma, p.gae_lambda) == (0.2, 0.5, 0.99, 0.95)
        assert not p.norm_adv and p.max_grad_norm == 0.5
        assert config.algo.eps == 0.1 and config.net.hidden == [64, 64]
        assert not config.net.shared_trunk and config.run.steps == 2_000_000
        assert config.env == GridworldEnvConfig()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_matches_cpu_when_deterministic():
    config = dict(respawn_prob=1.0, swap_starts_prob=0.0, horizon=9)
    envs = [GridworldEnv(GridworldEnvConfig(**config), 64, d, 0) for d in ("cpu", "cuda")]
    for env in envs:
        env.reset()
        env.agent1_first = (torch.arange(64) % 2 == 0).to(env.device)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        a = torch.randint(0, 5, (2, 64), generator=g)
        cpu, cuda = (env.step([a[0].to(env.device), a[1].to(env.device)]) for env in envs)
        assert torch.equal(cpu.obs[0], cuda.obs[0].cpu())
        assert torch.equal(cpu.done, cuda.done.cpu()) and torch.equal(cpu.reward, cuda.reward.cpu())
        assert torch.allclose(cpu.cost, cuda.cost.cpu())
