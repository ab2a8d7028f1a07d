"""Hanabi: the lean wrapper against HLE's own rl_env, turn-based masks, the scripted
partner, policy sharing, resume and the CLI."""

import math
import random

import numpy as np
import pytest
import torch
from hanabi_learning_environment import rl_env

from srpo_core import checkpoints
from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.config import resolve
from srpo_core.distributions import Categorical
from srpo_core.envs.hanabi.env import HanabiEnv, HanabiEnvConfig
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_seat
from srpo_core.population.layout import split_roles
from srpo_core.population.stacked import StackedNet, StackedSeat
from srpo_core.population.trainer import HeroOrAdversary
from srpo_core.population.updates import Role
from srpo_core.registry import Registry
from srpo_core.rollout import Runner, collect, play_episodes
from srpo_core.train import build_population, train

CPU = torch.device("cpu")
TINY = ["ppo.num_envs=4", "ppo.num_steps=25", "ppo.epochs=2", "net.hidden=[16]"]


class Uniform:
    """Uniformly random over whatever the mask allows."""

    def __init__(self, moves: int) -> None:
        self.moves = moves

    def distribution(self, obs, mask=None):
        return Categorical(torch.zeros(*obs.shape[:-1], self.moves), mask)


@pytest.mark.parametrize(
    "players, colors, ranks, steps",
    [(4, 3, 3, 160), (2, 3, 3, 160), (3, 2, 4, 100), (2, 5, 5, 120)],
)
def test_wrapper_equals_rl_env_over_whole_games(players, colors, ranks, steps):
    """Same deck seed and moves: every player's observation, the legal moves, rewards and
    episode ends equal rl_env's, over many complete games (auto-reset included)."""
    config = HanabiEnvConfig(players=players, colors=colors, ranks=ranks)
    env = HanabiEnv(config, 3, CPU, seed=5)
    obs = env.reset()
    legal, acting = env.masks()
    refs = [rl_env.HanabiEnv(config=config.game_params(env._seeds[b])) for b in range(3)]
    ref_obs = [ref.reset() for ref in refs]
    rng, games = random.Random(0), 0
    for _ in range(steps):
        moves = []
        for b, observation in enumerate(ref_obs):
            current = observation["current_player"]
            assert acting[:, b].tolist() == [p == current for p in range(players)]
            for p, view in enumerate(observation["player_observations"]):
                assert obs[p][b].tolist() == view["vectorized"]
                assert torch.nonzero(legal[p][b]).flatten().tolist() == sorted(
                    view["legal_moves_as_int"]
                )
            moves.append(
                rng.choice(observation["player_observations"][current]["legal_moves_as_int"])
            )
        step = env.step([torch.tensor(moves)] * players)
        for b, ref in enumerate(refs):
            ref_obs[b], reward, done, _ = ref.step(moves[b])
            assert step.reward[:, b].tolist() == [reward] * players
            assert bool(step.done[b]) == done
            if done:  # the wrapper deals the next game from a fresh seed
                games += 1
                refs[b] = rl_env.HanabiEnv(config=config.game_params(env._seeds[b]))
                ref_obs[b] = refs[b].reset()
        obs, legal, acting = step.obs, step.legal, step.acting
    assert games >= 6


def test_paper_game_dimensions():
    env = HanabiEnv(HanabiEnvConfig(), 2, CPU, seed=0)
    assert env.agents == ("agent0", "agent1", "agent2", "agent3")
    assert env.obs_dims == (429,) * 4 and env.action_spaces[0].n == 26
    lay = env.layout
    assert (lay.hand_size, lay.deck_size, lay.colors * lay.ranks) == (4, 18, 9)
    assert env.action_spaces[0].labels[lay.reveal_rank(2, 1)] == "reveal player +2 rank 2"


def test_masks_never_allow_an_illegal_move():
    """Random seats sampling under the runner's masks for whole rollouts: only the current
    player acts, its move is one HLE calls legal, every other player's mask is empty."""
    env = HanabiEnv(HanabiEnvConfig(), 8, CPU, seed=1)
    runner = Runner(env)
    moves = env.layout.num_moves
    for _ in range(60):
        legal, acting = runner.legal, runner.acting
        assert acting.sum(0).tolist() == [1] * 8
        states = list(env._states)
        actions = [
            Uniform(moves)
            .distribution(runner.obs[i], runner.mask(i))
            .sample(torch.Generator().manual_seed(len(env._history[0])))
            for i in range(4)
        ]
        for b, state in enumerate(states):
            player = int(acting[:, b].nonzero())
            assert env.lib.MoveIsLegal(state, env._c_moves[int(actions[player][b])])
            assert not any(legal[p][b].any() for p in range(4) if p != player)
        runner.step(actions)


def test_an_illegal_move_is_refused():
    env = HanabiEnv(HanabiEnvConfig(), 1, CPU, seed=0)
    env.reset()
    discard = torch.tensor([0])  # information tokens are full at the start: no discarding
    with pytest.raises(ValueError, match="illegal Hanabi move 0"):
        env.step([discard] * 4)


def test_rollout_records_acting_and_masks_per_seat():
    env = HanabiEnv(HanabiEnvConfig(players=2), 4, CPU, seed=2)
    runner = Runner(env)
    seats = [Uniform(env.layout.num_moves)] * 2
    batches, _ = collect(runner, seats, 20, torch.Generator().manual_seed(0), frozen=[0, 1])
    acting = torch.stack([b["acting"] for b in batches])
    assert acting.sum(0).eq(1).all()  # exactly one seat acts per step and env
    for batch in batches:
        chosen = batch["mask"].gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
        assert chosen.all()  # sampled under the recorded mask
        assert batch["mask"][~batch["acting"]].all()  # non-acting: every action allowed


def test_score_and_step_reward_sum_are_reported_apart():
    """rl_env's reward sums to the official score (the last life's loss takes the played
    cards back); the fireworks reward keeps them, so losing games show a positive summed
    step reward next to a score of 0."""
    seats = [Uniform(26)] * 4
    generator = torch.Generator().manual_seed(0)
    delta = play_episodes(HanabiEnv(HanabiEnvConfig(), 300, CPU, 3), seats, generator)
    assert torch.equal(delta.info["score"], delta.info["step_reward_sum"])
    assert torch.equal(delta.info["step_reward_sum"], delta.reward[0])
    config = HanabiEnvConfig(reward="fireworks")
    generator = torch.Generator().manual_seed(0)
    fireworks = play_episodes(HanabiEnv(config, 300, CPU, 3), seats, generator)
    lost = fireworks.info["out_of_lives"] > 0
    assert lost.sum() > 5
    assert (fireworks.info["score"][lost] == 0).all()
    assert (fireworks.info["step_reward_sum"][lost] > 0).any()
    assert torch.equal(fireworks.info["step_reward_sum"], fireworks.info["fireworks"])
    assert torch.equal(fireworks.info["score"][~lost], fireworks.info["fireworks"][~lost])


def test_same_seed_same_games_and_resume_replays_the_games():
    config = HanabiEnvConfig(players=3)
    seats = [Uniform(config.layout().num_moves)] * 3
    first = Runner(HanabiEnv(config, 5, CPU, seed=9))
    collect(first, seats, 13, torch.Generator().manual_seed(0))
    saved = first.state_dict()
    later, _ = collect(first, seats, 30, torch.Generator().manual_seed(1))
    resumed = Runner(HanabiEnv(config, 5, CPU, seed=123))
    resumed.load_state_dict(saved)
    again, _ = collect(resumed, seats, 30, torch.Generator().manual_seed(1))
    for a, b in zip(later, again, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other = Runner(HanabiEnv(config, 5, CPU, seed=10))
    assert not torch.equal(other.obs[0], Runner(HanabiEnv(config, 5, CPU, seed=9)).obs[0])


def test_scripted_partner_plays_full_games_with_a_positive_score(registry_url):
    config = HanabiEnvConfig()
    env = HanabiEnv(config, 64, CPU, seed=0)
    with Registry(registry_url) as reg:
        seats = [
            load_seat(
                reg, "scripted:hanabi/rules", env_config=config, seat=agent, obs_dim=429, device=CPU
            )
            for agent in env.agents
        ]
        assert [p.role for p in reg.policies()] == ["rules"]
    episodes = play_episodes(env, seats, torch.Generator().manual_seed(0))
    assert episodes.count == 64
    random_play = play_episodes(
        HanabiEnv(config, 64, CPU, seed=0), [Uniform(26)] * 4, torch.Generator().manual_seed(0)
    )
    score = float(episodes.info["score"].mean())
    assert score > 2.5 and score > 2 * float(random_play.info["score"].mean())
    # deterministic: all its mass on one legal move
    runner = Runner(HanabiEnv(config, 8, CPU, seed=0))
    dist = seats[0].distribution(runner.obs[0], runner.mask(0))
    assert (dist.probs.max(-1).values > 0.999).all()


def test_scripted_partner_refuses_other_envs():
    with pytest.raises(UserError, match="plays the hanabi agent"):
        load_seat(
            None,
            "scripted:hanabi/rules",
            env_config=resolve(flags={"env": {"name": "gridworld"}}).env,
            seat="agent0",
            obs_dim=8,
            device=CPU,
        )


@pytest.mark.parametrize("algo, tau", [("ippo", 0.0), ("srpo", 0.01)])
def test_shared_policy_is_one_role_that_fits_every_seat(registry_url, algo, tau):
    config = resolve(
        flags={
            "env": {"name": "hanabi"},
            "algo": {"name": algo, "tau": tau},
            "run": {"steps": 200},
        },
        sets=[*TINY, "run.eval_episodes=4"],
    )
    assert config.algo.share_policy
    with Registry(registry_url) as reg:
        result = train(config, reg)
        assert [p.role for p in reg.policies(run_id=result.run_id)] == ["shared"]
        ref = f"{result.run_id}/shared"
        env = HanabiEnv(config.env, 4, CPU, seed=0)
        seats = [
            load_seat(reg, ref, env_config=config.env, seat=agent, obs_dim=429, device=CPU)
            for agent in env.agents
        ]
    assert seats[0] is not seats[3] and torch.equal(
        seats[0].actor_head.weight, seats[3].actor_head.weight
    )
    episodes = play_episodes(env, seats, torch.Generator().manual_seed(0))
    assert episodes.count == 4
    assert {"eval/score", "eval/step_reward_sum"} <= set(result.metrics)


def test_shared_srpo_splits_each_env_into_one_hero_seat_and_adversaries():
    # three seats, two envs, two steps; every record names its seat and env
    seat_env = [torch.tensor([[10 * s + b for b in range(2)]] * 2) for s in range(3)]
    batches = [{"obs": x.unsqueeze(-1).float(), "acting": x % 2 == 0} for x in seat_env]
    hero_seat = torch.tensor([2, 0])
    hero, adversary, adversary_env = split_roles(batches, hero_seat)
    assert hero["obs"][0, :, 0].tolist() == [20.0, 1.0]  # env 0 from seat 2, env 1 from 0
    assert adversary["obs"][0, :, 0].tolist() == [0.0, 10.0, 11.0, 21.0]
    assert adversary_env.tolist() == [0, 0, 1, 1]
    assert torch.equal(adversary["acting"], adversary["obs"][..., 0] % 2 == 0)


def test_a_shared_seat_plays_hero_or_adversary_per_env():
    env = HanabiEnv(HanabiEnvConfig(players=2), 2, CPU, seed=0)
    runner = Runner(env)  # player 0 starts both games
    roles = []
    for seed in (0, 1):
        net = ActorCritic(NetSpec(env.obs_dims[0], env.action_spaces[0], (8,), "tanh", False, True))
        net.reset_parameters(torch.Generator().manual_seed(seed))
        net.actor_head.weight.data.normal_(generator=torch.Generator().manual_seed(seed))
        roles.append(Role(StackedNet([net]), None))
    hero, adversary = (role.net for role in roles)
    is_hero = torch.tensor([True, False])
    mover = HeroOrAdversary(*roles, is_hero).distribution(runner.obs[0], runner.mask(0))
    expected_hero = StackedSeat(hero).distribution(runner.obs[0], runner.mask(0)).probs
    expected_adversary = StackedSeat(adversary).distribution(runner.obs[0], runner.mask(0)).probs
    assert torch.equal(mover.probs[0], expected_hero[0])
    assert torch.equal(mover.probs[1], expected_adversary[1])
    assert not torch.allclose(expected_hero[1], expected_adversary[1])


def test_shared_srpo_trains_a_hero_and_an_adversary():
    population = build_population([resolve(flags={"env": {"name": "hanabi"}}, sets=TINY)])
    assert population.adversary is not None and len(population.learners()) == 2
    hero, adversary = (role.net for role in population.learners())

    def weights(net):
        return net.member_state(0)

    hero_before, adversary_before = weights(hero), weights(adversary)
    assert all(torch.equal(v, hero_before[k]) for k, v in adversary_before.items())  # a copy
    (it,) = population.iterate()
    assert it.env_steps == it.hero_samples == 100
    # both learned, each its own objective: they moved, and apart
    for net, before in ((hero, hero_before), (adversary, adversary_before)):
        assert any(not torch.equal(v, before[k]) for k, v in weights(net).items())
    assert any(not torch.equal(v, weights(hero)[k]) for k, v in weights(adversary).items())
    # the KL to the partner starts at 0 (a copy) and stays small after a few Adam steps
    assert 0 < it.metrics["shared/adversary/kl_partner"] < 0.05
    assert math.isfinite(it.metrics["shared/policy_loss"])


def test_shared_srpo_resume_gives_the_uninterrupted_weights():
    config = resolve(flags={"env": {"name": "hanabi"}}, sets=TINY)

    def weights(population):
        return torch.cat(
            [p.flatten() for role in population.learners() for p in role.net.parameters()]
        )

    straight = build_population([config])
    for _ in range(4):
        straight.iterate()
    first = build_population([config])
    for _ in range(2):
        first.iterate()
    (policies,), (state,) = first.policy_states(), first.state_dict()
    saved = checkpoints.from_bytes(checkpoints.to_bytes(policies, state, {}))
    resumed = build_population([config])
    resumed.load_state_dict([saved["policies"]], [saved["algo"]])
    for _ in range(2):
        resumed.iterate()
    assert torch.equal(weights(resumed), weights(straight))


def test_share_policy_needs_identical_seats():
    config = resolve(
        flags={"env": {"name": "tag"}},
        sets=["algo.share_policy=true", "env.role='runner'", "ppo.num_envs=2"],
    )
    with pytest.raises(UserError, match="same observation size"):
        build_population([config])


def test_bad_game_settings_are_refused():
    for sets, message in [
        (["env.players=6"], "env.players must be in"),
        (["env.reward='lives'"], "env.reward must be one of"),
        (["env.players=5", "env.colors=1", "env.ranks=2"], "cannot deal"),
    ]:
        with pytest.raises(UserError, match=message):
            resolve(flags={"env": {"name": "hanabi"}}, sets=sets)


def test_cli_train_hanabi_with_tau_alone(cli):
    small = ["--steps", "200", *[f"--set={s}" for s in [*TINY, "run.eval_episodes=4"]]]
    srpo = cli.json("train", "--env", "hanabi", "--tau", "0.01", *small)
    assert srpo["status"] == "finished" and srpo["env_steps"] == 200
    assert "shared/adversary/kl_partner" in srpo["metrics"]  # --tau alone: SRPO
    assert {"eval/score", "eval/step_reward_sum", "shared/entropy"} <= set(srpo["metrics"])
    assert np.isfinite(srpo["metrics"]["shared/value_loss"])


def test_algo_flag_alone_sets_tau_and_tau_alone_sets_algo():
    def algo(**flags):
        config = resolve(flags={"env": {"name": "hanabi"}, "algo": flags})
        return config.algo.name, config.algo.tau

    assert algo() == ("srpo", 0.01)  # the preset
    assert algo(name="ippo") == ("ippo", 0.0)
    assert algo(tau=0.5) == ("srpo", 0.5)
    assert algo(tau=0.0) == ("ippo", 0.0)
    with pytest.raises(UserError, match="SRPO needs tau > 0"):
        algo(name="srpo", tau=0.0)
