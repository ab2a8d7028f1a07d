"""Iterated prisoner's dilemma: payoffs and observations by hand, memory-one agents against
their parameters, recurrent log-probs recomputed exactly, the pool, and a seeded CLI run."""

import math

import pytest
import torch

from srpo_core.config import resolve
from srpo_core.distributions import Categorical
from srpo_core.envs.ipd.env import IpdEnv, IpdEnvConfig
from srpo_core.envs.ipd.memory_one import MemoryOne, RandomMemoryOne, memory_one_distribution
from srpo_core.envs.ipd.partners import PartnerPool
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_policy, load_seat
from srpo_core.population.sequences import Memory, play
from srpo_core.registry import Registry
from srpo_core.rollout import Runner
from srpo_core.seeding import make_generator
from srpo_core.train import build_population

C, D = 0, 1


def small(*sets: str, preset: str = "ipd-mixed"):
    base = ["ppo.num_envs=16", "ppo.num_steps=10", "env.rounds=10", "net.recurrent=16"]
    return resolve(presets=[preset], sets=[*base, "net.embed=8", *sets])


def test_payoffs_and_observations_by_hand():
    env = IpdEnv(IpdEnvConfig(rounds=2), num_envs=4, device="cpu", seed=0)
    obs = env.reset()
    start = [1, 0, 0, 0, 0, 1, 0, 0, 0]
    assert obs[0].tolist() == [start] * 4 and obs[1].tolist() == [start] * 4
    a0, a1 = torch.tensor([C, C, D, D]), torch.tensor([C, D, C, D])
    step = env.step([a0, a1])
    assert step.reward[0].tolist() == [1, -1, 2, 0]
    assert step.reward[1].tolist() == [1, 2, -1, 0]
    assert step.cost.abs().sum() == 0 and not step.done.any()
    # Agent 0 sees (own, other) = CC, CD, DC, DD; agent 1 sees the same games mirrored.
    assert step.obs[0].tolist() == [
        [0, 1, 0, 0, 0, 0, 1, 0, 1],
        [0, 0, 1, 0, 0, 0, 1, 0, -1],
        [0, 0, 0, 1, 0, 0, 0, 1, 2],
        [0, 0, 0, 0, 1, 0, 0, 1, 0],
    ]
    assert step.obs[1].tolist() == [
        [0, 1, 0, 0, 0, 0, 1, 0, 1],
        [0, 0, 0, 1, 0, 0, 0, 1, 2],
        [0, 0, 1, 0, 0, 0, 1, 0, -1],
        [0, 0, 0, 0, 1, 0, 0, 1, 0],
    ]
    assert step.info["agent0/cooperation"].tolist() == [0.5, 0.5, 0, 0]
    last = env.step([a0, a1])  # round 2 of 2: the episode ends, obs is the next start
    assert last.done.all() and last.obs[0].tolist() == [start] * 4


def test_identity_slots_are_reserved_and_zero():
    env = IpdEnv(IpdEnvConfig(identity=True), num_envs=2, device="cpu", seed=0)
    assert env.obs_dims == (15, 15)
    step = env.step([torch.tensor([C, D]), torch.tensor([D, D])])
    assert step.obs[0][:, 9:].abs().sum() == 0


def test_memory_one_frequencies_match_parameters():
    """Each state's empirical cooperation rate within 5 standard errors of its parameter."""
    n = 20_000
    params = torch.rand(n, 5, generator=torch.Generator().manual_seed(1))
    params[:, 0] = 0.3
    gen = torch.Generator().manual_seed(2)
    for state, p in enumerate([0.3, 0.9, 0.5, 0.1, 0.7]):
        obs = torch.zeros(n, 9)
        obs[:, state] = 1
        fixed = params.clone()
        fixed[:, state] = p
        coop = (memory_one_distribution(fixed, obs).sample(gen) == C).float().mean()
        assert abs(float(coop) - p) < 5 * math.sqrt(p * (1 - p) / n), (state, float(coop))


def test_pool_tabular_agents_play_their_drawn_probabilities():
    """In a rollout against the mixed pool, a tabular agent's cooperation at each state
    matches the mean of the probabilities drawn for it there, within 5 standard errors."""
    config = small("ppo.num_envs=512", "ppo.num_steps=20")
    algo = build_population([config])
    seqs = play(algo.runner, algo.nets(), algo.pool, algo.memory, 20, algo.generator, False)
    kinds = torch.bincount(algo.pool.kind, minlength=3).float() / 512
    assert all(abs(k - 1 / 3) < 5 * math.sqrt(2 / 9 / 512) for k in kinds.tolist())
    for seat in (0, 1):
        seq = seqs[seat]
        tabular = ~seq.learner
        state = seq.obs[..., :5].argmax(-1)
        params = algo.pool.params.expand(20, -1, -1).gather(-1, state.unsqueeze(-1)).squeeze(-1)
        rows = tabular & (params > -1)
        p = params[rows]
        coop = (seq.actions[rows] == C).float()
        bound = 5 * math.sqrt(float((p * (1 - p)).sum())) / rows.sum()
        assert abs(float(coop.mean() - p.mean())) < bound
        assert seq.learner.any() and tabular.any()


def test_scripted_probes():
    config = resolve(flags={"env": {"name": "ipd"}})
    seat = {
        name: load_seat(
            None,
            f"scripted:ipd/{name}",
            env_config=config.env,
            seat="agent1",
            obs_dim=9,
            device=torch.device("cpu"),
        )
        for name in ("always-cooperate", "always-defect", "tit-for-tat", "random-memory1")
    }
    obs = torch.eye(5, 9)  # start, CC, CD, DC, DD
    assert seat["always-cooperate"].distribution(obs).probs[:, C].tolist() == [1.0] * 5
    assert seat["always-defect"].distribution(obs).probs[:, C].tolist() == [0.0] * 5
    # Tit-for-tat: cooperate first, then copy the co-player's previous action.
    assert seat["tit-for-tat"].distribution(obs).probs[:, C].tolist() == [1, 1, 0, 1, 0]
    assert isinstance(seat["random-memory1"], RandomMemoryOne)
    with pytest.raises(UserError, match="plays the ipd agent"):
        load_seat(
            None,
            "scripted:ipd/tit-for-tat",
            env_config=resolve(flags={"env": {"name": "matrix"}}).env,
            seat="agent0",
            obs_dim=1,
            device=torch.device("cpu"),
        )


def test_tit_for_tat_against_always_defect_in_the_env():
    env = IpdEnv(IpdEnvConfig(rounds=5), num_envs=1, device="cpu", seed=0)
    runner, gen = Runner(env), torch.Generator().manual_seed(0)
    tft, alld = MemoryOne((1.0, 1.0, 0.0, 1.0, 0.0)), MemoryOne((0.0,) * 5)
    total = torch.zeros(2)
    for _ in range(5):
        actions = [tft.distribution(runner.obs[0]).sample(gen), alld.distribution(runner.obs[1])]
        actions[1] = actions[1].sample(gen)
        step, _ = runner.step(actions)
        total += step.reward[:, 0]
    assert total.tolist() == [-1.0, 2.0]  # suckered once, then mutual defection


@pytest.mark.parametrize("identity", [False, True])
def test_recomputed_log_probs_equal_the_rollouts(identity):
    """Sequences span episode boundaries (10-round episodes, 25-step rollouts) and start
    from a carried hidden state (second rollout); the unroll replays them bit for bit."""
    config = small("ppo.num_steps=25", f"env.identity={str(identity).lower()}")
    algo = build_population([config])
    for _ in range(2):
        seqs = play(algo.runner, algo.nets(), algo.pool, algo.memory, 25, algo.generator, identity)
    assert seqs[0].starts[0].sum() == 0 and seqs[0].starts[5].all()  # mid-episode start
    assert seqs[0].hidden0.abs().sum() > 0
    for i, net in enumerate(algo.nets()):
        seq = seqs[i]
        one = [x.unsqueeze(1) for x in (seq.obs, seq.prev_action, seq.prev_reward, seq.starts)]
        with torch.no_grad():  # a population of one: [T, 1, n]
            logits, values = net.unroll(*one[:3], seq.hidden0, one[3])
        logp = Categorical(logits).log_prob(seq.actions.unsqueeze(1))  # as the update does
        assert torch.equal(logp[:, 0], seq.logp) and torch.equal(values[:, 0], seq.values)
    if identity:  # a learner facing a tabular agent is told its probabilities
        seq = seqs[0]
        told = seq.obs[..., 9:]
        facing = seq.partner_pooled
        assert (told[..., 0] == facing.float()).all() and told[~facing].abs().sum() == 0
        assert torch.allclose(told[-1, facing[-1], 1:], algo.pool.params[facing[-1]])


def test_memory_resets_at_episode_starts():
    """The first step of an episode acts the same whatever came before it."""
    config = small()
    algo = build_population([config])
    net = algo.nets()[0]
    obs = algo.runner.obs[0][:1]
    fresh = Memory.fresh([net], 1, torch.device("cpu"))
    inputs = (obs, fresh.prev_action[0], fresh.prev_reward[0])
    logits_fresh, _, _ = net.step(*(x.unsqueeze(0) for x in inputs), fresh.hidden[0])
    logits_fresh = logits_fresh[0]
    pool = PartnerPool((1.0, 0.0, 0.0), 16, torch.device("cpu"), [make_generator("cpu", 0)])
    memory = Memory.fresh(algo.nets(), 16, torch.device("cpu"))
    seqs = play(algo.runner, algo.nets(), pool, memory, 21, algo.generator, False)
    seq = seqs[0]
    with torch.no_grad():
        for t in (0, 10, 20):  # episode starts
            assert seq.starts[t].all()
            logp = logits_fresh.log_softmax(-1)[0, seq.actions[t]]
            assert torch.allclose(seq.logp[t], logp)


def test_config_errors():
    with pytest.raises(UserError, match="train.partners must be one of"):
        small("train.partners=everyone")
    with pytest.raises(UserError, match="needs --env ipd"):
        resolve(flags={"env": {"name": "matrix"}}, sets=["train.partners=mixed"])
    with pytest.raises(UserError, match="needs --env ipd and a recurrent"):
        small("net.recurrent=0")
    with pytest.raises(UserError, match="train on env ipd only"):
        resolve(presets=["gridworld-ippo"], sets=["net.recurrent=16"])


def test_cli_train_is_reproducible(cli, registry_url):
    args = ["train", "--env", "ipd", "--preset", "ipd-mixed", "--seed", "3", "--steps", "320"]
    sets = ["ppo.num_envs=16", "ppo.num_steps=10", "env.rounds=10", "net.recurrent=16"]
    sets += ["net.embed=8", "run.eval_episodes=4", "run.log_every=1"]
    flags = [x for s in sets for x in ("--set", s)]
    runs = [cli.json(*args, *flags) for _ in range(2)]
    assert runs[0]["env_steps"] == 320
    metrics = [r["metrics"] for r in runs]
    assert metrics[0]["eval/learners/cooperation"] == metrics[1]["eval/learners/cooperation"]
    drop = {"perf/sps"}
    same = {k: v for k, v in metrics[0].items() if k not in drop}
    assert same == {k: v for k, v in metrics[1].items() if k not in drop}
    assert {"eval/tit-for-tat/cooperation", "train/vs_tabular/reward"} <= set(metrics[0])
    with Registry(registry_url) as reg:  # the trained weights come back from the registry
        loaded = load_policy(reg, f"{runs[0]['run_id']}/agent0")
        algo = build_population([resolve(presets=["ipd-mixed"], sets=[*sets, "run.seed=3"])])
        for _ in range(2):
            algo.iterate()
        trained = algo.policy_states()[0]["agent0"]
        assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
