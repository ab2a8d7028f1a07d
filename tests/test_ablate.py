"""`srpo ablate`: the grid, its identity, and resumption after the sweep process is killed."""

from __future__ import annotations

import os
import signal
import time

import pytest

from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.sweep import pending_jobs, plan_sweep


def test_grid_points_and_identity():
    plan = plan_sweep(
        "matrix",
        taus=[0, 10],
        epss=[0.1, 0.2],
        sweeps=["ppo.lr=0.01,0.02"],
        seeds=[0, 1, 2],
        steps=1024,
    )
    assert len(plan.points) == 2 * 2 * 2 * 3
    assert {p.algo for p in plan.points if p.tau == 0} == {"ippo"}
    assert plan.points[0].setting == "ippo tau=0 eps=0.1 ppo.lr=0.01"
    args = plan.train_args(plan.points[-1])
    assert args[:2] == ["train", "--env"] and "--set" in args and "ppo.lr=0.02" in args
    assert f"ablation:{plan.ablation_id}" in args
    again = plan_sweep(
        "matrix", taus=[0, 10], epss=[0.1, 0.2], sweeps=["ppo.lr=0.01,0.02"], seeds=[0, 1, 2],
        steps=1024,
    )  # fmt: skip
    assert again.ablation_id == plan.ablation_id
    other = plan_sweep("matrix", taus=[0, 10], seeds=[0, 1, 2, 3], steps=1024)
    assert other.ablation_id != plan.ablation_id
    for kwargs, message in [
        ({"sweeps": ["lr=1,2"]}, "section.key"),
        ({"sweeps": ["ppo.nope=1,2"]}, "unknown"),
        ({"taus": [-1]}, "tau"),
        ({"sweeps": ["run.seed=5,6"], "seeds": [1, 2]}, "same config"),
    ]:
        with pytest.raises(UserError, match=message):
            plan_sweep("matrix", **kwargs)


def test_tau_defaults_to_the_presets():
    """Without --tau an SRPO preset sweeps SRPO at its tau (10 in gridworld-srpo.toml)."""
    srpo = plan_sweep("gridworld", presets=["gridworld-srpo"], seeds=[0, 1])
    assert [(p.algo, p.tau) for p in srpo.points] == [("srpo", 10.0)] * 2
    assert {p.algo for p in plan_sweep("gridworld", seeds=[0]).points} == {"ippo"}
    assert (
        plan_sweep("gridworld", presets=["gridworld-srpo"], taus=[0], seeds=[0]).points[0].tau == 0
    )


SWEEP = ["ablate", "--env", "matrix", "--tau", "0,10", "--eps", "0.2", "--seeds", "2",
         "--steps", "40000", "--workers", "1", "--set", "run.checkpoint_every=8192",
         "--set", "run.eval_episodes=0"]  # fmt: skip


@pytest.mark.parametrize("population", [False, True], ids=["runs", "populations"])
def test_killed_sweep_resumes_without_losing_or_repeating_runs(cli, registry_url, population):
    """Killed once a run (a population) has finished and the next has a checkpoint; the same
    command again skips the finished ones and resumes the rest (populations as a whole)."""
    command = [*SWEEP, "--population"] if population else SWEEP
    size = 2 if population else None
    plan = plan_sweep(
        "matrix", taus=[0, 10], epss=[0.2], seeds=[0, 1], steps=40000,
        sets=["run.checkpoint_every=8192", "run.eval_episodes=0"],
    )  # fmt: skip
    sweep = cli.popen(*command)
    deadline = time.monotonic() + 300
    try:
        while True:  # kill it once one run has finished and the next has a checkpoint
            assert sweep.poll() is None, sweep.communicate()
            assert time.monotonic() < deadline, "sweep made no progress"
            time.sleep(0.5)
            if not os.path.exists(registry_url.removeprefix("sqlite:///")):
                continue
            with Registry(registry_url) as reg:
                runs = reg.list_runs(tags=[plan.tag])
                started = [r for r in runs if r.status == "running" and reg.checkpoints(r.id)]
                if any(r.status == "finished" for r in runs) and started:
                    break
    finally:
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
    time.sleep(2)  # the orphaned child gets SIGTERM from the kernel and records it
    with Registry(registry_url) as reg:
        before = {r.id: r for r in reg.list_runs(tags=[plan.tag])}
        statuses = sorted(r.status for r in before.values())
        assert "finished" in statuses and "interrupted" in statuses
        assert "running" not in statuses  # no orphan kept training
        jobs, done = pending_jobs(reg, plan, size)
        pending = sum(len(job.points) for job in jobs)
        assert len(done) + pending == 4
        assert any(job.resumes for job in jobs)
        if population:  # each population resumes as one job
            assert len(jobs) == 1 and len(jobs[0].points) == 2

    result = cli.json(*command)
    assert result["skipped"] == len(done) and result["ran"] == pending == 4 - len(done)
    assert result["failed"] == []
    with Registry(registry_url) as reg:
        after = {r.id: r for r in reg.list_runs(tags=[plan.tag])}
        assert len(after) == 4  # interrupted runs resumed, not started again
        assert set(before) <= set(after)
        assert all(r.status == "finished" and r.env_steps >= 40000 for r in after.values())
        for run_id, run in before.items():
            if run.status == "finished":
                assert after[run_id].ended_at == run.ended_at  # untouched
    assert cli.json(*command)["ran"] == 0  # a third time there is nothing left to do
