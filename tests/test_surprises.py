"""Silent surprises a user review found, now said out loud or refused: `zoo build --at`
fractions that all land on the final checkpoint, budgets rounded up to whole iterations, and
`srpo train --env tag` without a runner (now the scripted one, with a note)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from srpo_core.config import resolve
from srpo_core.registry import Registry
from srpo_core.train import budget_notice, iteration_size, notices, train

FAST_TAG = ["--set", "ppo.num_envs=2", "--set", "ppo.num_steps=8", "--set", "run.eval_episodes=0"]


def dump(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "srpo.db") as db:
        return list(db.iterdump())


def error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def matrix_run(cli, *sets: str) -> str:
    args = ["train", "--env", "matrix", "--seed", "0", "--steps", "4096"]
    args += ["--set", "run.eval_episodes=0", *(x for s in sets for x in ("--set", s))]
    return cli.json(*args)["run_id"]


# ---- zoo build --at ------------------------------------------------------------------------


def test_at_fractions_without_earlier_checkpoints_are_refused(cli, tmp_path):
    run_id = matrix_run(cli, "run.checkpoint_every=0")  # the final checkpoint only
    before = dump(tmp_path)
    build = ["zoo", "build", "fcp", "--env", "matrix", "--runs", "seed=0"]
    line = error_line(cli(*build, "--at", "0.25,0.5,1", check=False))
    assert line == (
        f"error: run {run_id} has no checkpoint near 25% of its 4,096 steps (it has: 4,096); "
        "train with --set run.checkpoint_every=N to keep earlier ones, or ask for fewer "
        "fractions with --at"
    )
    # one fraction below 1 on its own is refused too; the same fraction twice as well
    assert "near 50% of its 4,096 steps" in error_line(cli(*build, "--at", "0.5", check=False))
    assert "0.5 is given twice" in error_line(cli(*build, "--at", "0.5,0.5", check=False))
    assert dump(tmp_path) == before  # nothing written
    cli(*build, "--at", "1")  # the final checkpoint is there
    assert [m["step"] for m in cli.json("zoo", "show", "fcp")["members"]] == [4096, 4096]


def test_the_default_cadence_gives_early_mid_and_final_partners(cli):
    matrix_run(cli)  # a checkpoint every tenth of the budget, 1024 env steps an iteration
    cli("zoo", "build", "fcp", "--env", "matrix", "--runs", "seed=0", "--at", "0.25,0.5,1")
    steps = [m["step"] for m in cli.json("zoo", "show", "fcp")["members"]]
    assert steps == [1024, 1024, 2048, 2048, 4096, 4096]  # per fraction both seats


def test_at_fractions_pin_distinct_early_checkpoints(cli, tmp_path):
    run_id = matrix_run(cli, "run.checkpoint_every=1024")  # 1024 env steps an iteration
    build = ["zoo", "build", "fcp", "--env", "matrix", "--runs", "seed=0"]
    # 0.1 and 0.2 of 4096 both pick step 1024: refused, naming what the run has
    before = dump(tmp_path)
    line = error_line(cli(*build, "--at", "0.1,0.2,1", check=False))
    assert f"run {run_id} has no checkpoint near 10% of its 4,096 steps" in line
    assert "(it has: 1,024, 2,048, 3,072, 4,096)" in line
    assert dump(tmp_path) == before
    cli(*build, "--at", "0.25,0.5,1")
    members = cli.json("zoo", "show", "fcp")["members"]
    pinned = [(m["policy"], m["step"]) for m in members]
    assert pinned == [(f"{run_id}/agent{i}", s) for s in (1024, 2048, 4096) for i in (0, 1)]
    assert len({m["sha256"] for m in members}) == 3  # three distinct checkpoints of the run


# ---- budgets rounded up to whole iterations --------------------------------------------------


def config(env: str, *sets: str, algo: str | None = None, steps: int | None = None):
    return resolve(
        flags={
            "env": {"name": env},
            "algo": {"name": algo, "tau": 10.0 if algo == "srpo" else None},
            "run": {"steps": steps},
        },
        sets=list(sets),
    )


def test_iteration_size_by_hand():
    # ipd-mixed: 4096 envs x 100 steps
    ipd = config("ipd", steps=50_000)
    assert iteration_size(ipd) == 4096 * 100
    assert budget_notice(ipd) == (
        "note: the budget of 50,000 env steps is rounded up to whole iterations of 409,600: "
        "the run trains 409,600"
    )
    small = config("ipd", "ppo.num_envs=128", steps=50_000)
    assert iteration_size(small) == 12_800
    assert budget_notice(small) == (
        "note: the budget of 50,000 env steps is rounded up to whole iterations of 12,800: "
        "the run trains 51,200"
    )
    assert budget_notice(config("ipd", steps=819_200)) is None  # two whole iterations
    # matrix: 1024 one-step games; SRPO plays one rollout per hero (2) in env steps ...
    assert iteration_size(config("matrix", algo="ippo")) == 1024
    assert iteration_size(config("matrix", algo="srpo")) == 2 * 1024
    # ... but its hero samples count one
    assert iteration_size(config("matrix", "algo.budget='hero_samples'", algo="srpo")) == 1024
    assert iteration_size(config("matrix", "algo.share_policy=true", algo="srpo")) == 1024
    # tag: 64 envs x 128 steps; two learning chasers (the runner is frozen), or three roles
    assert iteration_size(config("tag", algo="srpo")) == 2 * 64 * 128
    assert iteration_size(config("tag", "env.role='runner'", algo="srpo")) == 3 * 64 * 128
    # debate: a batch of problems, one debate per hero for SRPO (a stand-in config: a real
    # one needs a model directory)
    for algo, budget, size in [("ippo", "env_steps", 256), ("srpo", "env_steps", 512)]:
        debate = SimpleNamespace(
            env=SimpleNamespace(name="debate", batch_size=256),
            algo=SimpleNamespace(name=algo, budget=budget),
        )
        assert iteration_size(debate) == size
    debate.algo.budget = "hero_samples"
    assert iteration_size(debate) == 256
    notice = budget_notice(config("tag", "algo.budget='hero_samples'", steps=10_000))
    assert notice == (
        "note: the budget of 10,000 hero samples is rounded up to whole iterations of 8,192: "
        "the run trains 16,384"
    )


@pytest.mark.parametrize(
    ("env", "algo", "sets"),
    [
        ("matrix", "srpo", ["ppo.num_envs=16"]),
        ("tag", "srpo", ["ppo.num_envs=2", "ppo.num_steps=8"]),
        ("tag", "ippo", ["ppo.num_envs=2", "ppo.num_steps=8", "algo.budget='hero_samples'"]),
    ],
)
def test_iteration_size_is_what_a_run_trains(registry_url, env, algo, sets):
    """A budget of 1 trains exactly one iteration; the notice changes nothing in the run."""
    made = config(env, *sets, "run.eval_episodes=0", algo=algo, steps=1)
    before = made.to_dict()
    size = iteration_size(made)
    assert budget_notice(made) == (
        f"note: the budget of 1 {made.algo.budget.replace('_', ' ')} is rounded up to whole "
        f"iterations of {size:,}: the run trains {size:,}"
    )
    assert made.to_dict() == before
    with Registry(registry_url) as reg:
        result = train(made, reg)
    trained = result.env_steps if made.algo.budget == "env_steps" else result.hero_samples
    assert trained == size


# ---- tag: a scripted runner by default -------------------------------------------------------


def test_tag_trains_by_default_against_the_scripted_runner(cli):
    out = cli.json("train", "--env", "tag", "--steps", "16", *FAST_TAG)
    assert out["status"] == "finished"
    run = json.loads(cli("runs", "show", out["run_id"], "--json").stdout)
    assert run["config"]["env"]["runner"] == "scripted:tag/flee"
    tag_note = (
        "note: the runner is scripted:tag/flee (the default); the paper's chasers meet a "
        "trained runner: train one with --role runner, then --set env.runner=RUN_ID/runner"
    )
    assert notices(config("tag", "ppo.num_envs=2", "ppo.num_steps=8", steps=16)) == [tag_note]
    # a runner given, or runners learning, need no note
    assert notices(config("tag", "env.runner='scripted:tag/flee-slow'", steps=64 * 128)) == []
    assert notices(config("tag", "env.role='runner'", steps=64 * 128)) == []
    assert notices(config("tag", "env.runner='abc/runner'", steps=64 * 128)) == []
