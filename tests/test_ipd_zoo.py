"""Recurrent IPD policies outside their training loop: seated in cross-play (memory carried
step to step, reset at episode ends) and as zoo co-players (``train.partners=zoo:NAME``)."""

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSeat
from srpo_core.config import resolve, with_seed
from srpo_core.envs.ipd.env import IpdEnv, IpdEnvConfig
from srpo_core.envs.ipd.memory_one import PROBES, MemoryOne
from srpo_core.registry import Registry
from srpo_core.rollout import Runner, collect
from srpo_core.seeding import make_generator
from srpo_core.train import build_population

SMALL = ["ppo.num_envs=16", "ppo.num_steps=10", "env.rounds=10", "net.recurrent=16"]
SMALL += ["net.embed=8", "run.eval_episodes=4", "run.log_every=1"]


def flags(*sets: str) -> list[str]:
    return [x for s in (*SMALL, *sets) for x in ("--set", s)]


class Recording(RecurrentSeat):
    def __init__(self, net) -> None:
        super().__init__(net)
        self.logits: list[torch.Tensor] = []

    def distribution(self, obs, mask=None):
        dist = super().distribution(obs, mask)
        self.logits.append(dist.logits)
        return dist


def test_recurrent_seat_acts_as_the_training_unroll():
    """25 steps of 10-round episodes: the seat's step-by-step logits (the stored policy, as
    cross-play loads it) equal the training's unroll over the recorded sequence, and every
    episode's first step acts as from a fresh memory."""
    algo = build_population([resolve(presets=["ipd-mixed"], sets=SMALL)])
    trained = algo.nets()[0]
    net = RecurrentActorCritic(trained.spec)
    net.load_state_dict(algo.policy_states()[0]["agent0"])
    seat = Recording(net)
    env = IpdEnv(IpdEnvConfig(rounds=10), num_envs=6, device="cpu", seed=0)
    tit_for_tat = MemoryOne(PROBES["tit-for-tat"])
    batches, _ = collect(
        Runner(env), [seat, tit_for_tat], 25, make_generator("cpu", 0), frozen=(0, 1)
    )
    batch = batches[0]
    starts = torch.zeros(25, 6, dtype=torch.bool)
    starts[0] = True
    starts[1:] = batch["dones"][:-1]
    assert starts[10].all() and starts[20].all() and starts.sum() == 18
    prev_action = torch.full((25, 6), net.no_action)
    prev_action[1:] = batch["actions"][:-1]
    prev_reward = torch.zeros(25, 6)
    prev_reward[1:] = batch["utility"][:-1]
    prev_action[starts], prev_reward[starts] = net.no_action, 0.0
    inputs = [x.unsqueeze(1) for x in (batch["obs"], prev_action, prev_reward, starts)]
    with torch.no_grad():  # the training's population of one: [T, 1, n]
        logits, _ = trained.unroll(*inputs[:3], trained.initial_state(6, "cpu"), inputs[3])
    recorded = torch.stack(seat.logits)
    assert torch.allclose(recorded, logits[:, 0].log_softmax(-1), atol=1e-6)
    first = recorded[starts]
    assert torch.allclose(first, first[:1].expand_as(first), atol=1e-6)
    assert not torch.allclose(recorded[1], recorded[0])  # memory moves within an episode


def make_population(cli, seeds=(0, 1)) -> list[str]:
    runs = []
    for seed in seeds:
        args = ["train", "--preset", "ipd-mixed", "--seed", str(seed), "--steps", "480"]
        runs.append(cli.json(*args, "--tag", "pop", *flags())["run_id"])
    return runs


def test_zoo_partners_train_and_cross_play(cli, registry_url):
    runs = make_population(cli)
    build = ["zoo", "build", "--env", "ipd", "--preset", "ipd-mixed", "--set", "env.rounds=10"]
    cli(*build, "defectors", "--scripted", "ipd/always-defect")
    # Against a zoo of always-defect, a learner gets -1 when it cooperates and 0 when it
    # defects, and its payoff minus the defector's is -3 per cooperation.
    train = ["train", "--preset", "ipd-mixed", "--seed", "7", "--steps", "320"]
    metrics = cli.json(*train, *flags("train.partners=zoo:defectors"))["metrics"]
    coop = metrics["train/vs_zoo/cooperation"]
    assert 0 < coop < 1
    assert metrics["train/vs_zoo/reward"] == pytest.approx(-coop)
    assert metrics["train/vs_zoo/advantage"] == pytest.approx(-3 * coop)
    assert not any(k.startswith(("train/vs_learners", "train/vs_tabular")) for k in metrics)

    # A zoo of recurrent learners (both seats of run 1) and a random memory-one agent:
    # training against it is reproducible from the seed.
    cli(*build, "mixed", "--runs", "tag=pop,seed=1", "--scripted", "ipd/random-memory1")
    again = [cli.json(*train, *flags("train.partners=zoo:mixed")) for _ in range(2)]
    drop = {"perf/sps"}
    first, second = ({k: v for k, v in r["metrics"].items() if k not in drop} for r in again)
    assert first == second and "train/vs_zoo/cooperation" in first

    # Recurrent policies cross-play: run 0 against the zoo holding run 1's learners.
    result = cli.json("crossplay", "--zoo", "mixed", "--agents", "seed=0", "--episodes", "8")
    assert {s["kind"] for s in result["seatings"]} == {"tp", "cp"}
    assert {s["agent_run"] for s in result["seatings"]} == {runs[0]}


def test_zoo_partner_memory_survives_a_checkpoint(cli, registry_url):
    """Rollouts of 25 steps cut 10-round episodes: the recurrent zoo members' memories are
    part of each member's training state, so a restored population continues exactly."""
    make_population(cli, seeds=(1,))
    build = ["zoo", "build", "--env", "ipd", "--preset", "ipd-mixed", "--set", "env.rounds=10"]
    cli(*build, "learners", "--runs", "seed=1")
    config = resolve(
        presets=["ipd-mixed"],
        sets=[*SMALL, "ppo.num_steps=25", "train.partners=zoo:learners"],
    )
    configs = [config, with_seed(config, 2)]
    with Registry(registry_url) as reg:
        algo = build_population(configs, reg)
        algo.iterate()
        saved = [
            checkpoints.from_bytes(checkpoints.to_bytes(policies, state, {}))
            for policies, state in zip(algo.policy_states(), algo.state_dict(), strict=True)
        ]
        expected = [it.metrics for it in algo.iterate()]
        restored = build_population(configs, reg)
        checkpoints.load_members_state(restored, saved, "a checkpoint")
        assert [it.metrics for it in restored.iterate()] == expected


def test_zoo_partner_errors(cli, registry_url):
    Registry(registry_url).close()  # an empty registry
    build = ["zoo", "build", "--env", "ipd", "--preset", "ipd-mixed"]
    cli(*build, "--set", "env.rounds=10", "heldout", "--scripted", "ipd/tit-for-tat", "--held-out")
    cli(*build, "--set", "env.rounds=20", "longer", "--scripted", "ipd/tit-for-tat")
    identity = ["--set", "env.rounds=10", "--set", "env.identity=true"]
    cli(*build, *identity, "told", "--scripted", "ipd/tit-for-tat")
    train = ["train", "--preset", "ipd-mixed", "--steps", "160"]
    for sets, message in (
        (["train.partners=zoo:heldout"], "zoo 'heldout' is held out"),
        (["train.partners=zoo:longer"], "zoo 'longer' was built for another ipd configuration"),
        (["train.partners=zoo:nowhere"], "nowhere"),
        (["train.partners=zoo:told", "env.identity=true"], "zoo members have none"),
        (["train.partners=zoo:"], "needs a zoo name"),
    ):
        proc = cli(*train, *flags(*sets), check=False)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
    with Registry(registry_url) as reg:
        assert reg.list_runs() == []
