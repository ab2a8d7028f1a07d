"""Hanabi populations: turn-based, policy sharing (the paper's set-up), each member the run
its config describes whoever shares its population (exact equality, pop of 1 against pop
of 8, as tests/test_population.py checks for the other families)."""

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.config import resolve, with_seed
from srpo_core.envs.hanabi.env import SEED_RANGE, HanabiEnv, HanabiEnvConfig
from srpo_core.registry import Registry
from srpo_core.train import build_population, train_population
from tests.test_population import assert_same_run

CPU = torch.device("cpu")
SMALL = ["ppo.num_envs=4", "ppo.num_steps=16", "ppo.epochs=2", "net.hidden=[32]"]


@pytest.mark.parametrize(
    "preset, sets",
    [
        ("hanabi", ["algo.name='ippo'", "algo.tau=0.0"]),
        ("hanabi", ["ppo.minibatches=2"]),
        ("hanabi-2p", ["algo.share_policy=false"]),
        ("gridworld-srpo", ["algo.share_policy=true"]),  # sharing without turns
    ],
)
def test_a_member_trains_the_same_alone_and_among_eight(registry_url, preset, sets):
    """The others also differ in per-member coefficients, which must not reach member 3."""
    base = resolve(
        presets=[preset],
        sets=[*SMALL, *sets, "run.steps=384", "run.log_every=2", "run.eval_episodes=4"],
    )
    eight = [with_seed(base, s) for s in range(8)]
    for config in eight[:3] + eight[4:]:
        config.ppo.gamma, config.ppo.gae_lambda, config.ppo.lr = 0.9, 0.8, 2 * base.ppo.lr
    with Registry(registry_url) as reg:
        alone = train_population([with_seed(base, 3)], reg)[0].run_id
        among = train_population(eight, reg)[3].run_id
        assert reg.get_run(among).seed == 3
        metrics = set(reg.metrics(among).key)
    assert_same_run(registry_url, alone, among)
    if base.algo.share_policy:
        assert "shared/entropy" in metrics
    if base.algo.name == "srpo":
        assert any(key.endswith("adversary/kl_partner") for key in metrics)


def test_shared_population_resumes_bit_for_bit():
    """A member's checkpoint state (runner slices, the shared adversary) restores it."""
    config = resolve(presets=["hanabi"], sets=SMALL)
    configs = [with_seed(config, s) for s in (1, 2)]

    def weights(population):
        return torch.cat([p.flatten() for r in population.learners() for p in r.net.parameters()])

    straight = build_population(configs)
    for _ in range(4):
        straight.iterate()
    first = build_population(configs)
    for _ in range(2):
        first.iterate()
    saved = [
        checkpoints.from_bytes(checkpoints.to_bytes(policy, state, {}))
        for policy, state in zip(first.policy_states(), first.state_dict(), strict=True)
    ]
    assert set(saved[0]["algo"]) >= {"adversary", "runners"}
    resumed = build_population(configs)
    resumed.load_state_dict([s["policies"] for s in saved], [s["algo"] for s in saved])
    for _ in range(2):
        resumed.iterate()
    assert torch.equal(weights(resumed), weights(straight))


def play(env: HanabiEnv, steps: int):
    """``steps`` moves, alternately each game's last and first legal one; per step the
    observations, masks, rewards and episode ends."""
    record = []
    for t in range(steps):
        legal, _ = env.masks()
        if t % 2:
            actions = [m.float().argmax(-1) for m in legal]
        else:
            actions = [m.shape[-1] - 1 - m.flip(-1).float().argmax(-1) for m in legal]
        step = env.step(actions)
        record.append((step.obs, step.legal, step.acting, step.reward, step.done))
    return record


def member_slice(record, k: int, width: int):
    rows = slice(k * width, (k + 1) * width)
    return [
        (
            [o[rows] for o in obs],
            [m[rows] for m in legal],
            acting[:, rows],
            reward[:, rows],
            done[rows],
        )
        for obs, legal, acting, reward, done in record
    ]


def assert_same_play(a, b):
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            if isinstance(x, list):
                assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))
            else:
                assert torch.equal(x, y)


def test_a_members_games_are_its_own_and_its_state_slice_round_trips():
    """Member 1's envs deal and play as they would alone; its slice of the batch's state,
    joined with the others', continues the batch exactly."""
    config, width, seeds = HanabiEnvConfig(players=2), 3, [11, 12, 13]
    together = HanabiEnv(config, width * len(seeds), CPU, seed=0)
    together.split_generators(seeds)
    together.reset()
    alone = HanabiEnv(config, width, CPU, seed=0)
    alone.split_generators([seeds[1]])
    alone.reset()
    first = play(together, 40)
    assert bool(torch.stack([done for *_, done in first]).sum(0).gt(0).all())  # new deals
    assert_same_play(member_slice(first, 1, width), play(alone, 40))

    state = together.state_dict()
    parts = [together.member_state(state, k, len(seeds)) for k in range(len(seeds))]
    own = alone.state_dict()
    assert parts[1]["seeds"] == own["seeds"] and parts[1]["moves"] == own["moves"]
    assert torch.equal(parts[1]["generator"], own["generator"])
    joined = together.join_member_states(parts)
    restored = HanabiEnv(config, width * len(seeds), CPU, seed=99)
    restored.split_generators([0, 0, 0])
    restored.load_state_dict(joined)
    assert_same_play(play(restored, 40), play(together, 40))


def test_a_plain_env_deals_from_the_same_seeds_as_before():
    """One generator: the episode seeds are torch.randint's stream, as before populations."""
    env = HanabiEnv(HanabiEnvConfig(), 6, CPU, seed=5)
    env.reset()
    expected = torch.randint(SEED_RANGE, (6,), generator=torch.Generator().manual_seed(5))
    assert env._seeds == expected.tolist()
