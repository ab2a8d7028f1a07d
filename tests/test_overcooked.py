"""overcooked-ai: the batched env against the package's own OvercookedEnv, the private costs in
hand-built situations, seeds, resumes, worker processes, scripted partners and the CLI."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from srpo_core import checkpoints
from srpo_core.config import resolve
from srpo_core.distributions import Categorical
from srpo_core.envs.overcooked.compat import import_overcooked
from srpo_core.envs.overcooked.env import (
    ACTION_LABELS,
    OvercookedBatchedEnv,
    OvercookedEnvConfig,
    _Shard,
)
from srpo_core.envs.overcooked.layouts import layout_planner
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_seat
from srpo_core.registry import Registry
from srpo_core.rollout import Runner, collect, play_episodes
from srpo_core.train import build_population, resume, train

mdp_mod = import_overcooked("mdp.overcooked_mdp")
env_mod = import_overcooked("mdp.overcooked_env")
agent_mod = import_overcooked("agents.agent")
Action = import_overcooked("mdp.actions").Action
DIRECTIONS = Action.INDEX_TO_ACTION[:4]

COSTS = {"move_cost": 0.1, "interact_cost": 0.03, "bump_cost": 1.0}


def reference(layout: str = "cramped_room", horizon: int = 400):
    """A plain overcooked-ai OvercookedEnv (nothing of srpo's but the import shim)."""
    mdp = mdp_mod.OvercookedGridworld.from_layout_name(layout)
    return env_mod.OvercookedEnv.from_mdp(mdp, horizon=horizon, info_level=0)


def walkable(mdp, pos) -> bool:
    x, y = pos
    return (
        0 <= y < len(mdp.terrain_mtx)
        and 0 <= x < len(mdp.terrain_mtx[0])
        and (mdp.terrain_mtx[y][x] == " ")
    )


def expected_costs(mdp, before, after, joint) -> np.ndarray:
    """Each agent's private cost, from the states alone: a move into a free cell that left the
    agent where it was can only have been undone by a collision with the partner."""
    out = np.zeros(2)
    for i, a in enumerate(joint):
        action = Action.INDEX_TO_ACTION[a]
        if action in DIRECTIONS:
            out[i] += COSTS["move_cost"]
            old = before.players[i].position
            target = (old[0] + action[0], old[1] + action[1])
            if walkable(mdp, target) and after.players[i].position == old:
                out[i] += COSTS["bump_cost"]
        elif action == Action.INTERACT:
            out[i] += COSTS["interact_cost"]
    return out


def held(state, i):
    obj = state.players[i].held_object
    return None if obj is None else obj.name


@pytest.mark.parametrize("rule", [True, False])
def test_partial_soups_cook_only_without_the_full_pots_rule(rule):
    """A cook under the pot, facing it, empty-handed, interacts: a full pot (3 onions)
    starts cooking either way; a one-onion pot only under the package's own dynamics."""
    config = dataclasses.asdict(OvercookedEnvConfig(workers=0, cook_full_pots_only=rule))
    interact = Action.ACTION_TO_INDEX[Action.INTERACT]
    stay = Action.ACTION_TO_INDEX[Action.STAY]
    for onions, cooks in ((3, True), (1, not rule)):
        shard = _Shard(config, 1)
        shard.reset([0], [0])
        state, pot = shard.envs[0].state, (2, 0)  # cramped_room's pot
        state.players[0].position, state.players[0].orientation = (2, 1), (0, -1)
        onion = [mdp_mod.ObjectState("onion", pot) for _ in range(onions)]
        state.add_object(mdp_mod.SoupState(pot, ingredients=onion))
        shard.step(np.array([[interact, stay]]))
        assert shard.envs[0].state.get_object(pot).is_cooking == cooks


def test_rewards_costs_obs_and_events_match_the_package():
    """Greedy-ish play (the package's GreedyHumanModel with random actions mixed in, so that
    there are deliveries, bumps and idle interacts) through both the batched env and plain
    OvercookedEnvs; more than one episode, so auto-reset is crossed, and an annealing horizon
    short enough that the shaping weight reaches 0."""
    horizon, envs, anneal = 150, 2, 400
    config = OvercookedEnvConfig(
        horizon=horizon,
        workers=0,
        shaped_reward_scale=0.5,
        shaped_anneal_steps=anneal,
        cook_full_pots_only=False,  # the package's own dynamics
        **COSTS,
    )
    env = OvercookedBatchedEnv(config, envs, "cpu", seed=0)
    obs = env.reset()
    refs = [reference(horizon=horizon) for _ in range(envs)]
    mdp = refs[0].mdp
    _, mlam = layout_planner("cramped_room")
    greedy = [[agent_mod.GreedyHumanModel(mlam) for _ in range(2)] for _ in range(envs)]
    for pair in greedy:
        for i, agent in enumerate(pair):
            agent.set_agent_index(i)
    rng = np.random.default_rng(0)
    np.random.seed(0)
    totals = {"soups": 0.0, "shaped": 0.0, "bumps": 0.0, "events": 0.0}
    for t in range(2 * horizon + 10):
        joint = np.zeros((envs, 2), dtype=np.int64)
        for b, ref in enumerate(refs):
            feats = mdp.featurize_state(ref.state, mlam)
            for i in range(2):
                assert torch.equal(obs[i][b], torch.from_numpy(feats[i].astype(np.float32)))
                action = greedy[b][i].action(ref.state)[0]
                a = Action.ACTION_TO_INDEX[action]
                joint[b, i] = rng.integers(6) if rng.random() < 0.25 else a
        step = env.step([torch.from_numpy(joint[:, i]) for i in range(2)])
        weight = 0.5 * max(0.0, 1.0 - t * envs / anneal)
        for b, ref in enumerate(refs):
            before = ref.state
            _, _, done, info = ref.step([Action.INDEX_TO_ACTION[a] for a in joint[b]])
            after = ref.state
            sparse, shaped = info["sparse_r_by_agent"], info["shaped_r_by_agent"]
            team = sum(sparse) + weight * sum(shaped)
            assert step.reward[:, b].tolist() == pytest.approx([team, team], abs=1e-5)
            costs = expected_costs(mdp, before, after, joint[b])
            assert step.cost[:, b].tolist() == pytest.approx(costs.tolist(), abs=1e-6)
            assert step.info["sparse_reward"][b] == sum(sparse)
            assert step.info["shaped_reward"][b] == sum(shaped)
            for i in range(2):
                action = Action.INDEX_TO_ACTION[joint[b, i]]
                interact = action == Action.INTERACT
                info_i = {
                    k.split("/")[1]: v[b].item()
                    for k, v in step.info.items()
                    if k.startswith(f"agent{i}/")
                }
                assert info_i["moves"] == (action in DIRECTIONS)
                assert info_i["interacts"] == interact
                player = before.players[i]
                front = (
                    player.position[0] + player.orientation[0],
                    player.position[1] + player.orientation[1],
                )
                served = interact and held(before, i) == "soup" and held(after, i) is None
                served = served and front in mdp.get_serving_locations()
                # every soup served counts; only a full (3-onion) one earns the 20
                assert info_i["soups_delivered"] == served
                assert sparse[i] in ((0, 20) if served else (0,))
                picked_dish = interact and held(before, i) is None and held(after, i) == "dish"
                assert info_i["dishes_picked_up"] == picked_dish
                potted = interact and held(before, i) == "onion" and held(after, i) is None
                potted = potted and front in mdp.get_pot_locations()
                assert info_i["onions_potted"] == potted
                totals["events"] += picked_dish + potted + served
            totals["soups"] += sum(sparse) / 20
            totals["shaped"] += sum(shaped)
            totals["bumps"] += step.info["agent0/bumps"][b] + step.info["agent1/bumps"][b]
            assert bool(step.done[b]) == done
            if done:
                ref.reset()
                for agent in greedy[b]:
                    agent.reset()
                    agent.set_agent_index(greedy[b].index(agent))
        obs = step.obs
    # the run exercised what it checks
    assert totals["soups"] >= 2 and totals["shaped"] > 0
    assert totals["bumps"] > 0 and totals["events"] > 0


def place(env: OvercookedBatchedEnv, players: list[tuple]) -> None:
    """Put every sub-env into the state with ``players`` [(position, orientation, held)] and
    no objects, through the public state_dict/load_state_dict."""
    state = env.state_dict()
    template = state["states"][0]
    custom = dict(template, objects=[], timestep=0)
    custom["players"] = [
        {
            "position": pos,
            "orientation": orient,
            "held_object": None if obj is None else {"name": obj, "position": pos},
        }
        for pos, orient, obj in players
    ]
    state["states"] = [custom] * env.num_envs
    env.load_state_dict(state)


N, S, E, W, STAY, INTERACT = range(6)
UP, DOWN, RIGHT, LEFT = (0, -1), (0, 1), (1, 0), (-1, 0)


@pytest.mark.parametrize(
    "players, joint, costs, bumps",
    [
        # cramped_room:  XXPXX / O   O / X   X / XDXSX  (x right, y down)
        ([((1, 2), UP, None), ((3, 1), UP, None)], (N, STAY), (0.1, 0.0), (0, 0)),  # free move
        ([((1, 2), UP, None), ((3, 1), UP, None)], (W, STAY), (0.1, 0.0), (0, 0)),  # into a counter
        ([((1, 2), UP, None), ((3, 1), RIGHT, None)], (STAY, INTERACT), (0.0, 0.03), (0, 0)),
        (
            [((1, 1), UP, None), ((2, 1), UP, None)],
            (E, STAY),
            (1.1, 0.0),
            (1, 0),
        ),  # into a still partner
        ([((1, 1), UP, None), ((2, 1), UP, None)], (E, W), (1.1, 1.1), (1, 1)),  # swap
        ([((1, 1), UP, None), ((2, 2), UP, None)], (E, N), (1.1, 1.1), (1, 1)),  # same cell
        # agent0 walks into a counter and stays, so agent1 following it bumps into it
        ([((1, 1), UP, None), ((2, 1), UP, None)], (W, W), (0.1, 1.1), (0, 1)),
        ([((1, 2), UP, None), ((2, 2), UP, None)], (E, E), (0.1, 0.1), (0, 0)),  # follow the leader
        ([((1, 1), UP, None), ((2, 1), UP, None)], (E, INTERACT), (1.1, 0.03), (1, 0)),
    ],
)
def test_private_costs_hand_checked(players, joint, costs, bumps):
    env = OvercookedBatchedEnv(OvercookedEnvConfig(workers=0, **COSTS), 1, "cpu", seed=0)
    env.reset()
    place(env, players)
    step = env.step([torch.tensor([joint[0]]), torch.tensor([joint[1]])])
    assert step.cost[:, 0].tolist() == pytest.approx(list(costs))
    assert [step.info[f"agent{i}/bumps"].item() for i in range(2)] == list(bumps)
    assert step.reward.abs().sum() == 0  # nothing to reward here


def test_interact_pickup_and_potting_are_counted_and_shaped():
    env = OvercookedBatchedEnv(OvercookedEnvConfig(workers=0, **COSTS), 1, "cpu", seed=0)
    env.reset()
    place(env, [((2, 1), UP, "onion"), ((3, 1), RIGHT, None)])  # agent0 faces the pot (2, 0)
    step = env.step([torch.tensor([INTERACT]), torch.tensor([INTERACT])])
    assert step.info["agent0/onions_potted"].item() == 1
    assert step.reward[:, 0].tolist() == [3.0, 3.0]  # PLACEMENT_IN_POT_REW, weight 1
    assert step.cost[:, 0].tolist() == pytest.approx([0.03, 0.03])


def random_joint(generator: torch.Generator, envs: int) -> list[torch.Tensor]:
    return [torch.randint(6, (envs,), generator=generator) for _ in range(2)]


def trajectory(config: OvercookedEnvConfig, seed: int, steps: int, scripted: str | None = None):
    """(obs, reward, cost, done) of ``steps`` random joint actions for agent0; agent1 random
    or the scripted agent ``scripted`` bound through the rollout code's hook."""
    env = OvercookedBatchedEnv(config, 3, "cpu", seed=seed)
    runner = Runner(env)
    seat = None
    if scripted:
        seat = load_seat(
            None, scripted, env_config=config, seat="agent1", obs_dim=96, device=torch.device("cpu")
        )
        seat.bind(env, 1)
    generator = torch.Generator().manual_seed(123)
    out = []
    for _ in range(steps):
        actions = random_joint(generator, 3)
        if seat is not None:
            actions[1] = seat.distribution(runner.obs[1]).sample(generator)
        step, _ = runner.step(actions)
        out.append((step.obs[0], step.obs[1], step.reward, step.cost, step.done))
    env.close()
    return out, env.episode_seeds


def test_same_seed_same_trajectory_any_workers_different_seed_differs():
    config = dict(horizon=20, random_start=True, **COSTS)
    a, seeds_a = trajectory(
        OvercookedEnvConfig(workers=0, **config), 5, 45, "scripted:overcooked/greedy-boltzmann"
    )
    b, seeds_b = trajectory(
        OvercookedEnvConfig(workers=2, **config), 5, 45, "scripted:overcooked/greedy-boltzmann"
    )
    assert seeds_a == seeds_b
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))
    c, _ = trajectory(
        OvercookedEnvConfig(workers=0, **config), 6, 45, "scripted:overcooked/greedy-boltzmann"
    )
    assert not torch.equal(a[0][0], c[0][0])  # other start positions


def test_resume_continues_exactly_with_a_scripted_partner():
    config = OvercookedEnvConfig(horizon=30, random_start=True, workers=2, **COSTS)
    seat = load_seat(
        None,
        "scripted:overcooked/greedy-boltzmann",
        env_config=config,
        seat="agent1",
        obs_dim=96,
        device=torch.device("cpu"),
    )
    generator = torch.Generator().manual_seed(0)
    env = OvercookedBatchedEnv(config, 4, "cpu", seed=1)
    runner = Runner(env)
    seat.bind(env, 1)
    for _ in range(17):
        runner.step(
            [
                torch.randint(6, (4,), generator=generator),
                seat.distribution(runner.obs[1]).sample(generator),
            ]
        )
    buffer = io.BytesIO()
    torch.save(runner.state_dict(), buffer)  # the checkpoint path: weights_only must load it
    saved = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    gen_state = generator.get_state()

    def play(runner: Runner, seat, generator) -> list:
        out = []
        for _ in range(40):  # past an episode end
            actions = [
                torch.randint(6, (4,), generator=generator),
                seat.distribution(runner.obs[1]).sample(generator),
            ]
            step, _ = runner.step(actions)
            out.append((step.obs[0], step.reward, step.cost, actions[1]))
        return out

    expected = play(runner, seat, generator)
    env.close()
    # a fresh env in this process (workers = 0) picks up the worker env's state
    fresh = OvercookedBatchedEnv(dataclasses.replace(config, workers=0), 4, "cpu", seed=99)
    resumed = Runner(fresh)
    resumed.load_state_dict(saved)
    seat2 = load_seat(
        None,
        "scripted:overcooked/greedy-boltzmann",
        env_config=config,
        seat="agent1",
        obs_dim=96,
        device=torch.device("cpu"),
    )
    seat2.bind(fresh, 1)  # already attached by the state: a no-op
    generator.set_state(gen_state)
    got = play(resumed, seat2, generator)
    for x, y in zip(expected, got, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def test_scripted_partner_plays_full_episodes_through_the_rollout_code():
    config = OvercookedEnvConfig(workers=2, backend="package")
    seats = [
        load_seat(
            None,
            "scripted:overcooked/greedy",
            env_config=config,
            seat=f"agent{i}",
            obs_dim=96,
            device=torch.device("cpu"),
        )
        for i in range(2)
    ]
    env = OvercookedBatchedEnv(config, 2, "cpu", seed=0)
    episodes = play_episodes(env, seats, torch.Generator().manual_seed(0))
    assert episodes.count == 2 and episodes.length.tolist() == [400, 400]
    summary = episodes.summary(env.agents)
    assert summary["sparse_reward"] >= 100  # the package's greedy pair serves soups
    assert (
        summary["agent0/soups_delivered"] + summary["agent1/soups_delivered"]
        == summary["sparse_reward"] / 20
    )
    # its distribution is the package agent's action, one-hot
    dist = seats[1].distribution(env._obs[1])
    assert isinstance(dist, Categorical) and torch.all(dist.probs.max(-1).values == 1)
    with pytest.raises(ValueError, match="current state only"):
        seats[1].distribution(torch.zeros(2, 96))
    env.close()


@pytest.mark.parametrize("backend", ["package", "torch"])
def test_a_learner_trains_with_a_frozen_scripted_partner(backend):
    config = resolve(
        flags={"env": {"name": "overcooked"}, "run": {"steps": 256}},
        sets=[
            "env.partner='scripted:overcooked/greedy'",
            f"env.backend='{backend}'",
            "env.workers=0",
            "env.horizon=40",
            "ppo.num_envs=2",
            "ppo.num_steps=64",
            "ppo.minibatches=1",
            "run.eval_episodes=0",
        ],
    )
    population = build_population([config])
    assert set(population.heroes) == {0} and set(population.frozen) == {1}
    runner, seats = population.runners[0], population.seats()
    _, episodes = collect(runner, seats, 64, population.generator, frozen=range(2))
    assert episodes.count == 2  # one 40-step episode per env
    assert episodes.info["agent1/moves"].sum() > 0  # the greedy partner gets going
    (iteration,) = population.iterate()
    assert iteration.env_steps == 128
    population.close()


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="unknown overcooked layout 'kitchen'"):
        OvercookedEnvConfig(layout="kitchen").validate()
    with pytest.raises(UserError, match="env.obs"):
        OvercookedEnvConfig(obs="pixels").validate()
    with pytest.raises(UserError, match="3-onion soup"):
        load_seat(
            None,
            "scripted:overcooked/greedy",
            env_config=OvercookedEnvConfig(layout="counter_circuit"),
            seat="agent1",
            obs_dim=96,
            device=torch.device("cpu"),
        )


def test_action_labels_follow_the_package_order():
    # x grows to the right, y downwards: north is up
    expected = {"up": (0, -1), "down": (0, 1), "right": (1, 0), "left": (-1, 0)}
    expected |= {"stay": (0, 0), "interact": "interact"}
    assert [expected[label] for label in ACTION_LABELS] == Action.INDEX_TO_ACTION


def test_lossless_obs_and_other_layouts():
    config = OvercookedEnvConfig(layout="forced_coordination", obs="lossless", workers=0)
    env = OvercookedBatchedEnv(config, 2, "cpu", seed=0)
    obs = env.reset()
    ref = reference("forced_coordination")
    masks = ref.mdp.lossless_state_encoding(ref.state, 400)
    assert env.obs_dims == (5 * 5 * 26,) * 2
    for i in range(2):
        assert torch.equal(obs[i][0], torch.from_numpy(masks[i].astype(np.float32).ravel()))


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (a test's registry URL)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(int(pid))
    return found


@needs_proc
def test_cli_train_then_no_worker_is_left(cli, registry_url):
    small = ["--steps", "256", "--set", "ppo.num_envs=4", "--set", "ppo.num_steps=32"]
    small += ["--set", "run.eval_episodes=1", "--set", "env.horizon=50"]
    small += ["--set", "env.backend='package'"]  # the backend with worker processes
    ippo = cli.json("train", "--env", "overcooked", "--set", "env.layout='cramped_room'", *small)
    assert ippo["env_steps"] == 256 and "eval/sparse_reward" in ippo["metrics"]
    assert "eval/free_riding" in ippo["metrics"] and "eval/agent1/onions_potted" in ippo["metrics"]
    assert processes_with(registry_url) == []  # every worker process stopped with its run


def test_srpo_trains_on_a_coordination_preset(registry_url):
    config = resolve(
        presets=["overcooked-forced-coordination-srpo"],
        flags={"run": {"steps": 256}},
        sets=["env.workers=1", "env.horizon=50", "ppo.num_envs=4", "ppo.num_steps=32"]
        + ["run.eval_episodes=1"],
    )
    assert (config.env.move_cost, config.env.bump_cost) == (0.05, 0.5)  # costs on
    with Registry(registry_url) as reg:
        result = train(config, reg)
    assert result.env_steps == 256 and result.hero_samples == 128
    assert "agent0/adversary/kl_partner" in result.metrics
    assert result.metrics["eval/agent0/cost"] > 0


@needs_proc
def running(registry_url: str) -> bool:
    """The trainer has created its run row (the registry may not even exist yet)."""
    if not Path(registry_url.removeprefix("sqlite:///")).exists():
        return False
    try:
        with Registry(registry_url, create=False) as reg:
            return [r.status for r in reg.list_runs()] == ["running"]
    except UserError:  # tables still being created
        return False


def test_ctrl_c_stops_training_and_its_workers(cli, registry_url):
    # A terminal's Ctrl-C: SIGINT at its default disposition, even where this test runs in
    # the background (a non-interactive shell starts background jobs with SIGINT ignored,
    # which Python then keeps ignoring), with stdout drained to /dev/null.
    proc = subprocess.Popen(
        [sys.executable, "-m", "srpo_cli.main", "train", "--env", "overcooked"]
        + ["--steps", "10000000", "--set", "run.eval_episodes=0"]
        + ["--set", "env.backend='package'"],  # the backend with worker processes
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(processes_with(registry_url)) < 3:  # trainer + 2 workers
        time.sleep(0.2)
    assert len(processes_with(registry_url)) >= 3
    while time.time() < deadline and not running(registry_url):  # the run row exists
        time.sleep(0.2)
    assert running(registry_url)
    proc.send_signal(signal.SIGINT)
    try:  # generous: a loaded CI machine finishes the current update before it stops
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    with Registry(registry_url) as reg:  # stopped by Ctrl-C, not by the kill above
        assert [r.status for r in reg.list_runs()] == ["interrupted"]
    deadline = time.time() + 30  # workers exit on their own once the pipe closes; slow if loaded
    while time.time() < deadline and processes_with(registry_url):
        time.sleep(0.2)
    assert processes_with(registry_url) == []


def test_cli_bad_layout_one_line_exit_2(cli, tmp_path):
    proc = cli("train", "--env", "overcooked", "--set", "env.layout='nope'", check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown overcooked layout 'nope'" in lines[0]
    assert not list(tmp_path.iterdir())  # no registry written


def test_bench_reports_env_and_training_for_the_same_workers(tmp_path):
    from srpo_cli.bench import bench

    target = tmp_path / "bench.json"
    sets = ["ppo.num_steps=8", "ppo.minibatches=1", "env.workers=0", "env.backend='package'"]
    bench(env="overcooked", batch="2", seconds=0.3, set_=sets, out=target, json_=True)
    out = json.loads(target.read_text())
    assert out["env_config"]["workers"] == 0
    env_row, train_row = out["rows"]
    assert (env_row["kind"], train_row["kind"]) == ("env", "train")
    ratio = train_row["steps_per_second"] / env_row["steps_per_second"]
    assert train_row["vs_env"] == pytest.approx(ratio, abs=1e-3)


def test_interrupted_run_resumes_to_the_same_weights(registry_url):
    """Mid-episode checkpoints (scripted partner, random starts, the shaping clock) through
    the training loop: interrupt after a checkpoint, resume, and end with the weights of an
    uninterrupted run."""
    sets = [
        "env.partner='scripted:overcooked/greedy-boltzmann'",
        "env.random_start=true",
        "env.workers=1",
        "env.backend='package'",
        "env.horizon=100",
        "env.shaped_anneal_steps=500",
        "env.move_cost=0.05",
        "ppo.num_envs=2",
        "ppo.num_steps=64",
        "ppo.minibatches=2",
        "run.checkpoint_every=128",
        "run.log_every=1",
        "run.eval_episodes=0",
    ]
    config = resolve(
        flags={"env": {"name": "overcooked"}, "run": {"seed": 3, "steps": 384}}, sets=sets
    )

    def final_weights(reg: Registry, run_id: str) -> dict:
        state = checkpoints.from_bytes(reg.read_checkpoint(reg.latest_checkpoint(run_id)))
        return state["policies"]["agent0"]

    def stop(progress) -> None:
        if progress.env_steps >= 256:  # before the 256-step checkpoint is written
            raise KeyboardInterrupt

    with Registry(registry_url) as reg:
        full = train(config, reg)
        with pytest.raises(KeyboardInterrupt):
            train(config, reg, on_progress=stop)
        (interrupted,) = [r.id for r in reg.list_runs() if r.id != full.run_id]
        assert reg.latest_checkpoint(interrupted).step == 128
        resumed = resume(interrupted, reg)
        assert resumed.env_steps == full.env_steps == 384
        expected, got = final_weights(reg, full.run_id), final_weights(reg, interrupted)
        assert all(torch.equal(expected[k], got[k]) for k in expected)
