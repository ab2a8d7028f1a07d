"""Cross-play evaluation and leaderboards against closed forms and hand-computed tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import trim_mean

from srpo_core.config import resolve
from srpo_core.errors import UserError
from srpo_core.evaluation.leaderboard import (
    bootstrap_iqm,
    build_leaderboard,
    iqm,
    to_csv,
    to_markdown,
)
from srpo_core.evaluation.plan import plan_zoo
from srpo_core.evaluation.play import evaluate, play_seating
from srpo_core.evaluation.seatings import Seating, Setup, env_seats
from srpo_core.policy_loading import load_policy
from srpo_core.query import parse_query
from srpo_core.registry import Registry
from srpo_core.train import train
from srpo_core.zoo.build import MemberQuery, build_zoo
from srpo_core.zoo.games import config_hash, env_config_from
from srpo_core.zoo.pinning import Pinned

MATRIX = {"name": "matrix", "game": "collab-defect", "reward": None, "cost": None, "actions": None}
UNIFORM = Pinned("random:matrix/uniform", None, None)


def test_uniform_pair_matches_the_closed_form(registry_url):
    """Both players uniform on collaborate/defect: E[R] = 1 - 1/4, each cost 0.4 / 2."""
    n = 20_000
    with Registry(registry_url) as reg:
        metrics = play_seating(
            reg, Seating(UNIFORM, "agent0", (("agent1", UNIFORM),)), Setup(MATRIX, n, seed=3)
        )
    sd = math.sqrt(0.75 * 0.25 / n)
    assert abs(metrics["team_reward"] - 0.75) < 4 * sd
    assert abs(metrics["agent/cost"] - 0.2) < 4 * 0.2 / math.sqrt(n)
    assert abs(metrics["return"] - (metrics["team_reward"] - 0.2)) < 0.02
    assert len(metrics["episode_returns"]) == n


def test_trained_agent_with_a_uniform_partner_matches_its_probabilities(registry_url):
    """An agent that plays C with probability p, partnered with a uniform player:
    E[R] = 1 - (1 - p)/2, agent cost 0.4 p, partner cost 0.2."""
    n = 20_000
    with Registry(registry_url) as reg:
        config = resolve(
            flags={"env": {"name": "matrix"}, "run": {"seed": 0, "steps": 8192}},
            sets=["run.eval_episodes=0"],
        )
        run = train(config, reg).run_id
        step = reg.latest_checkpoint(run).step
        sha = reg.latest_checkpoint(run).sha256
        net = load_policy(reg, f"{run}/agent1", step=step)
        p = float(net.distribution(torch.ones(1, 1)).probs[0, 0])
        agent = Pinned(f"{run}/agent1", step, sha)
        metrics = play_seating(
            reg, Seating(agent, "agent1", (("agent0", UNIFORM),)), Setup(MATRIX, n, seed=1)
        )
    reward = 1 - (1 - p) / 2
    assert abs(metrics["team_reward"] - reward) < 4 * math.sqrt(reward * (1 - reward) / n)
    assert abs(metrics["agent/cost"] - 0.4 * p) < 4 * 0.2 / math.sqrt(n)
    assert abs(metrics["partner/cost"] - 0.2) < 4 * 0.2 / math.sqrt(n)
    assert metrics["free_riding"] == pytest.approx(
        abs(metrics["agent/cost"] - metrics["partner/cost"])
    )


def test_results_are_stored_reused_and_reproducible(registry_url):
    with Registry(registry_url) as reg:
        runs = []
        for seed in range(3):
            config = resolve(
                flags={"env": {"name": "matrix"}, "run": {"seed": seed, "steps": 2048}},
                sets=["run.eval_episodes=0"],
            )
            runs.append(train(config, reg))
        build_zoo(
            reg,
            "z",
            env="matrix",
            members=MemberQuery(runs=parse_query("seed=2"), random=True),
        )
        zoo = reg.get_zoo("z")
        agents = [reg.get_run(r.run_id) for r in runs[:2]]
        plan = plan_zoo(reg, zoo, agents, env_seats(env_config_from(zoo.env_config)))
        # per agent and seat: its own team (TP), the seed-2 partner, the random partner
        assert len(plan) == 2 * 2 * 3
        assert sum(kind == "tp" for _, _, kind in plan) == 4
        seatings = [s for _, s, _ in plan]
        setup = Setup(zoo.env_config, 64, seed=5)
        first = evaluate(reg, seatings, setup, workers=1)
        assert first.played_episodes == 64 * 12 and first.reused == 0
        again = evaluate(reg, seatings, setup, workers=1)
        assert again.played_episodes == 0 and again.reused == 12
        redo = evaluate(reg, seatings, setup, workers=2, recompute=True)
        assert redo.played_episodes == 64 * 12
        for a, b, c in zip(first.outcomes, again.outcomes, redo.outcomes, strict=True):
            assert a.metrics == b.metrics == c.metrics
        other_seed = evaluate(reg, seatings[:1], Setup(zoo.env_config, 64, seed=6), workers=1)
        assert other_seed.played_episodes == 64  # another protocol is another result
        assert zoo.env_config_hash == config_hash(MATRIX)


def test_stored_results_say_which_runs_played_and_whether_tp_or_cp(registry_url):
    """Each stored result names the run of its agent and of each partner (None for a
    built-in policy) and its kind, as the zoo plan labels its seatings."""
    with Registry(registry_url) as reg:
        runs = []
        for seed in range(2):
            flags = {"env": {"name": "matrix"}, "run": {"seed": seed, "steps": 1024}}
            runs.append(train(resolve(flags=flags, sets=["run.eval_episodes=0"]), reg).run_id)
        members = MemberQuery(runs=parse_query("seed=1"), random=True)
        build_zoo(reg, "z", env="matrix", members=members)
        zoo = reg.get_zoo("z")
        seats = env_seats(env_config_from(zoo.env_config))
        plan = plan_zoo(reg, zoo, [reg.get_run(runs[0])], seats)
        setup = Setup(zoo.env_config, 16, seed=0)
        evaluate(reg, [s for _, s, _ in plan], setup, workers=1)
        stored = reg.crossplay_results(env_config_hash=zoo.env_config_hash, episodes=16, seed=0)
        by_key = {record.key: record for record in stored}
    assert sorted(kind for _, _, kind in plan) == ["cp", "cp", "cp", "cp", "tp", "tp"]
    run_of = {f"{run}/{role}": run for run in runs for role in ("agent0", "agent1")}
    run_of["random:matrix/uniform"] = None
    for _, seating, kind in plan:
        record = by_key[seating.key(setup.env_hash, 16, 0)]
        ((seat, partner),) = seating.partners
        assert (record.kind, record.agent_run) == (kind, runs[0])
        assert record.partner_runs == {seat: run_of[partner.ref]}


def test_iqm_matches_scipy_and_bootstrap_is_deterministic():
    rng = np.random.default_rng(0)
    for n in (1, 3, 4, 7, 20, 101):
        values = rng.normal(size=n)
        assert iqm(values) == pytest.approx(trim_mean(values, 0.25))
    groups = [[0.1, 0.2, 0.9], [0.4, 0.5, 0.6], [0.3, 0.35, 0.8]]
    low, high = bootstrap_iqm(groups)
    assert low <= iqm(sum(groups, [])) <= high
    assert (low, high) == bootstrap_iqm(groups[::-1])  # order of inputs does not matter


def _register_run(reg: Registry, algo: str, tau: float, seed: int) -> str:
    run = reg.create_run(
        env="matrix", algo=algo, tau=tau, eps=0.2, seed=seed, config={"env": MATRIX}
    )
    for role in ("agent0", "agent1"):
        reg.register_policy(run_id=run, role=role, env="matrix", kind="trained", spec={})
    reg.set_status(run, "finished")
    return run


def test_leaderboard_from_hand_made_results(registry_url):
    """Two agents, two zoo members, one seat: every number checked by hand."""
    with Registry(registry_url) as reg:
        a = _register_run(reg, "srpo", 10.0, 0)
        b = _register_run(reg, "ippo", 0.0, 0)
        m1 = _register_run(reg, "ippo", 0.0, 1)
        m2 = _register_run(reg, "ippo", 0.0, 2)
        env_hash = config_hash(MATRIX)
        reg.create_zoo(
            "z", env="matrix", env_config=MATRIX, env_config_hash=env_hash, held_out=True
        )
        reg.add_zoo_members("z", [(f"{m1}/agent1", 10, "s1"), (f"{m2}/agent1", 10, "s2")])

        def store(agent: str, partner: str, step: int, ret: float, free: float) -> None:
            reg.save_crossplay_result(
                {
                    "key": f"{agent}-{partner}@{step}",
                    "env": "matrix",
                    "env_config_hash": env_hash,
                    "agent_ref": f"{agent}/agent0",
                    "agent_step": 10,
                    "agent_sha256": "x",
                    "seat": "agent0",
                    "partners": {"agent1": {"ref": partner, "step": step, "sha256": "y"}},
                    "episodes": 100,
                    "seed": 0,
                    "metrics": {"return": ret, "free_riding": free},
                }
            )

        # (agent, partner) returns: a: 0.6, 0.6 (TP 0.62); b: 0.8, 0.2 (TP 0.7)
        store(a, f"{m1}/agent1", 10, 0.6, 0.0)
        store(a, f"{m2}/agent1", 10, 0.6, 0.1)
        store(a, f"{a}/agent1", 10, 0.62, 0.0)
        store(b, f"{m1}/agent1", 10, 0.8, 0.3)
        store(b, f"{m2}/agent1", 10, 0.2, 0.3)
        store(b, f"{b}/agent1", 10, 0.7, 0.3)
        store(b, f"{m1}/agent1", 99, 0.0, 0.0)  # another checkpoint: not a zoo member

        board = build_leaderboard(reg, reg.get_zoo("z"), episodes=100, seed=0)
        first, second = board.agents
        assert (first.run, first.rank, second.run, second.rank) == (a, 1, b, 2)
        assert first.cp == pytest.approx(0.6) and second.cp == pytest.approx(0.5)
        assert first.tp == pytest.approx(0.62) and first.drop == pytest.approx(0.02)
        assert second.drop == pytest.approx(0.2)
        # best per partner: m1 0.8 (b), m2 0.6 (a) -> a: (0.6/0.8 + 1)/2, b: (1 + 0.2/0.6)/2
        assert first.normalised == pytest.approx((0.75 + 1) / 2)
        assert second.normalised == pytest.approx((1 + 1 / 3) / 2)
        assert first.free_riding == pytest.approx(0.05) and second.pairs == 2
        assert [g.algo for g in board.groups] == ["srpo", "ippo"]
        assert board.groups[1].drop == pytest.approx(0.2) and board.groups[1].drop_std == 0.0
        # regenerating from the stored results changes nothing
        again = build_leaderboard(reg, reg.get_zoo("z"), episodes=100, seed=0)
        assert to_markdown(again) == to_markdown(board) and to_csv(again) == to_csv(board)
        assert to_csv(board).splitlines()[1].startswith(f"1,{a},srpo,10.0,")


def test_a_query_joining_whole_filters_with_a_bar_is_refused():
    """'tag=a|tag=b' would look for a tag literally named 'tag=b' (and quietly match fewer
    runs); '|' separates the values of one key."""
    assert parse_query("tag=a|b,algo=srpo").filters == (("tag", ("a", "b")), ("algo", ("srpo",)))
    with pytest.raises(UserError, match=r"'\|' separates values of one key \(tag=A\|B\)"):
        parse_query("tag=ablation:x|tag=ablation:y")
    assert parse_query("tag=a=b").filters == (("tag", ("a=b",)),)  # not a known key: a value
