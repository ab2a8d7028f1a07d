"""Sweeps and cross-play on a real Ray cluster (a head and a second node started here with
`ray start`, see tests/ray_cluster.py) with a real PostgreSQL registry: the sweep survives
its driver killed and a node killed under a training, cross-play on Ray equals local
cross-play, and a SQLite registry is refused on more than one node. All tests of this file
run in one pytest worker (`xdist_group`), which holds one cluster for them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from srpo_core.cluster import (
    Resources,
    check_address,
    check_executor,
    check_shared_registry,
    parse_resources,
)
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.registry.models import Metric
from srpo_core.sweep import plan_sweep
from tests.conftest import Cli, PostgresServer, _unavailable
from tests.ray_cluster import LocalRayCluster, free_port, ray_missing

pytestmark = pytest.mark.xdist_group("ray")

SETS = ["run.eval_episodes=0", "run.checkpoint_every=16384", "run.log_every=4"]
DEADLINE_S = 120


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    """The module's cluster: a head and one worker node, one CPU each."""
    reason = ray_missing()
    if reason:
        _unavailable(reason)
    started = LocalRayCluster(cpus=1, workers=1)
    try:
        yield started
    finally:
        started.stop()


def nodes(cluster: LocalRayCluster, count: int) -> LocalRayCluster:
    """The cluster with exactly ``count`` live nodes (a test before may have killed one)."""
    while 1 + len(cluster.workers()) < count:
        cluster.add_node()
    while 1 + len(cluster.workers()) > count:
        cluster.kill_node(cluster.workers()[-1])
    wait_for(f"{count} live nodes", lambda: cluster.alive() == count)
    return cluster


@pytest.fixture
def pg_cli(tmp_path: Path, postgres: PostgresServer) -> Cli:
    """The CLI on a fresh PostgreSQL registry, its artifacts in tmp_path/artifacts."""
    cli = Cli(tmp_path, postgres.create_database())
    cli.env["SRPO_ARTIFACTS"] = str(tmp_path / "artifacts")
    cli.env["RAY_USAGE_STATS_ENABLED"] = "0"
    return cli


def sweep_args(cluster: LocalRayCluster, *grid: str) -> list[str]:
    sets = [arg for item in SETS for arg in ("--set", item)]
    return ["ablate", "--env", "matrix", *grid, *sets, "--executor", "ray",
            "--address", cluster.address]  # fmt: skip


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def wait_for(what: str, check, proc: subprocess.Popen | None = None):
    """Poll ``check()`` until it returns something true; fail after DEADLINE_S or if
    ``proc`` ends first."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"ended before {what}: {proc.communicate()}")
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S}s"
        time.sleep(0.25)


# ---- refusals and bad input (no cluster needed) ---------------------------------------------


def test_resources_and_addresses_are_checked() -> None:
    assert parse_resources("cpus=2,gpus=0.5,memory=4GiB") == Resources(2.0, 0.5, 4 * 1024**3)
    assert parse_resources("memory=512MB").memory == 512 * 10**6
    assert parse_resources(None) == Resources()
    assert Resources(gpus=2).over(Resources(1.0, 0.0)) == Resources(1.0, 2.0)
    for text, message in [
        ("cpus", "cpus=N"),
        ("tpus=1", "cpus=N"),
        ("cpus=-1", ">= 0"),
        ("gpus=nan", ">= 0"),
        ("memory=lots", "size"),
        ("cpus=1,cpus=2", "twice"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_resources(text)
    for good in (None, "auto", "10.1.2.3:6379", "head.cluster:6379", "[::1]:6379"):
        check_address(good)
    for bad in ("ray://head:10001", "head", "head:99999", "head:"):
        with pytest.raises(UserError, match="auto or HOST:PORT"):
            check_address(bad)
    check_shared_registry("sqlite:///x.db", 1)  # one node may use SQLite
    check_shared_registry("postgresql+psycopg://u:p@h/db", 5)
    with pytest.raises(UserError, match="SQLite") as refused:
        check_shared_registry("sqlite:///x.db", 2)
    assert "\n" not in str(refused.value)


def test_bad_cluster_options_are_one_line(cli: Cli, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--executor takes local or ray"):
        check_executor("dask", None, None)
    with pytest.raises(UserError, match="go with --executor ray"):
        check_executor("local", "auto", None)
    closed = f"127.0.0.1:{free_port()}"
    for command, args, message in [
        (["crossplay", "--pool", "tag=x"], ["--executor", "dask"], "--executor takes"),
        (["ablate", "--env", "matrix"], ["--executor", "ray", "--address", closed],
         f"cannot reach a Ray cluster at {closed}"),
    ]:  # fmt: skip
        assert message in one_error_line(cli(*command, *args, check=False))
    assert list(tmp_path.iterdir()) == []  # no registry was created


# ---- the local executor waits for a run another process trains ------------------------------


def test_rerun_waits_for_a_run_still_training(cli: Cli, registry_url: str) -> None:
    """A point's run trained by another process under a live lease (here a trainer paused
    with SIGSTOP, as a sweep killed a moment ago whose trainer lives on) is neither resumed
    nor started again: the sweep waits for it, and skips it once it has finished."""
    grid = ["--tau", "0", "--seeds", "1", "--steps", "150000"]
    sets = [arg for item in SETS for arg in ("--set", item)]
    plan = plan_sweep("matrix", taus=[0], seeds=[0], steps=150000, sets=SETS)
    trainer = cli.popen(*plan.train_args(plan.points[0]))
    sweep = None
    try:

        def checkpointed():
            if not os.path.exists(registry_url.removeprefix("sqlite:///")):
                return None
            with Registry(registry_url) as reg:
                return [r for r in reg.list_runs(tags=[plan.tag]) if reg.checkpoints(r.id)]

        wait_for("checkpointed run", checkpointed, trainer)
        trainer.send_signal(signal.SIGSTOP)
        sweep = cli.popen("ablate", "--env", "matrix", *grid, *sets, "--json")
        time.sleep(4)  # the sweep finds the run 'running' under a live lease, and waits
        assert sweep.poll() is None, sweep.communicate()
        trainer.send_signal(signal.SIGCONT)
        out, err = sweep.communicate(timeout=DEADLINE_S)
    finally:
        trainer.send_signal(signal.SIGCONT)
        trainer.communicate(timeout=DEADLINE_S)
        if sweep is not None and sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    assert trainer.returncode == 0 and sweep.returncode == 0, err
    assert json.loads(out)["failed"] == []
    with Registry(registry_url) as reg:
        runs = reg.list_runs(tags=[plan.tag])
    assert len(runs) == 1 and runs[0].status == "finished"


# ---- on the cluster -------------------------------------------------------------------------


def test_sqlite_registry_is_refused_on_two_nodes(cluster: LocalRayCluster, tmp_path: Path):
    nodes(cluster, 2)
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'srpo.db'}")
    line = one_error_line(cli(*sweep_args(cluster, "--steps", "4096"), check=False))
    assert "SQLite" in line and "2 nodes" in line
    assert list(tmp_path.iterdir()) == []  # nothing written
    with Registry(str(tmp_path / "srpo.db")):
        pass  # an existing (empty) registry stays byte for byte as it is
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    ray = ["--executor", "ray", "--address", cluster.address]
    line = one_error_line(cli("crossplay", "--pool", "tag=x", *ray, check=False))
    assert "SQLite" in line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_request_no_node_can_grant_is_refused(cluster: LocalRayCluster, pg_cli: Cli):
    """run.device=cuda asks each task for a GPU, which no node here has: one line before
    anything runs (Ray would keep the tasks pending for ever)."""
    nodes(cluster, 2)
    args = sweep_args(cluster, "--steps", "4096", "--set", "run.device=cuda")
    line = one_error_line(pg_cli(*args, check=False))
    assert "can grant cpus=1,gpus=1" in line and "GPU 0" in line
    assert not (Path(pg_cli.cwd) / "artifacts").exists()


def test_crossplay_on_ray_equals_local_crossplay(cluster: LocalRayCluster, pg_cli: Cli):
    """A sweep on the cluster, then its pool's cross-play played as Ray tasks and again
    locally (--recompute): every seating's metrics are the same, bit for bit."""
    nodes(cluster, 2)
    result = pg_cli.json(*sweep_args(cluster, "--tau", "0,10", "--steps", "4096"))
    assert result["failed"] == [] and result["ran"] == 2
    assert {p["status"] for p in result["points"]} == {"finished"}
    pool = ["crossplay", "--pool", f"tag=ablation:{result['ablation']}", "--episodes", "16"]
    on_ray = pg_cli.json(*pool, "--executor", "ray", "--address", cluster.address)
    local = pg_cli.json(*pool, "--recompute", "--workers", "1")
    assert on_ray["played_episodes"] == local["played_episodes"] == 16 * 2 * 2 * 2
    assert [r["metrics"] for r in on_ray["seatings"]] == [r["metrics"] for r in local["seatings"]]
    assert on_ray["summary"] == local["summary"]


def test_sweep_resumes_after_its_driver_is_killed(cluster: LocalRayCluster, pg_cli: Cli):
    """SIGKILL the driver once a run has finished and another has a checkpoint: its tasks
    die with it (no trainer lives on), and the same command finishes every point exactly
    once, resuming the interrupted runs."""
    nodes(cluster, 2)
    grid = ["--tau", "0", "--seeds", "3", "--steps", "60000"]
    plan = plan_sweep("matrix", taus=[0], seeds=[0, 1, 2], steps=60000, sets=SETS)
    url = pg_cli.env["SRPO_REGISTRY"]
    driver = pg_cli.popen(*sweep_args(cluster, *grid))
    try:

        def midway():
            with Registry(url) as reg:
                runs = reg.list_runs(tags=[plan.tag])
                started = [r for r in runs if r.status == "running" and reg.checkpoints(r.id)]
                return any(r.status == "finished" for r in runs) and started

        wait_for("finished run beside a checkpointed one", midway, driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()

    def trainers_gone():
        with Registry(url) as reg:
            runs = reg.list_runs(tags=[plan.tag])
        return runs if not any(r.status == "running" and not r.lease_expired for r in runs) else []

    before = {r.id: r for r in wait_for("trainers gone with their driver", trainers_gone)}
    assert any(r.status == "finished" for r in before.values())
    assert any(r.status != "finished" for r in before.values())

    result = pg_cli.json(*sweep_args(cluster, *grid))
    finished_before = sum(r.status == "finished" for r in before.values())
    assert result["failed"] == [] and result["skipped"] == finished_before
    assert result["ran"] == 3 - finished_before
    with Registry(url) as reg:
        after = {r.id: r for r in reg.list_runs(tags=[plan.tag])}
    assert len(after) == 3 and set(before) <= set(after)  # resumed, none started twice
    points = [next(t for t in r.tags if t.startswith("point:")) for r in after.values()]
    assert sorted(points) == sorted(f"point:{p.key}" for p in plan.points)
    assert all(r.status == "finished" and r.env_steps >= 60000 for r in after.values())
    for run_id, run in before.items():
        if run.status == "finished":
            assert after[run_id].ended_at == run.ended_at  # untouched


def test_run_on_a_killed_node_resumes_elsewhere(cluster: LocalRayCluster, pg_cli: Cli):
    """Two runs, one per node; the worker node is killed (every process of it, the trainer
    too) once its run has a checkpoint. The driver submits that job again, and the run
    resumes on the head from that checkpoint: the metric rows up to it are the ones written
    before the kill, the later ones were written after."""
    nodes(cluster, 2)
    worker = cluster.workers()[0]
    grid = ["--tau", "0", "--seeds", "2", "--steps", "100000"]
    plan = plan_sweep("matrix", taus=[0], seeds=[0, 1], steps=100000, sets=SETS)
    url = pg_cli.env["SRPO_REGISTRY"]
    driver = pg_cli.popen(*sweep_args(cluster, *grid), "--json")
    try:

        def on_worker_with_checkpoint():
            with Registry(url) as reg:
                for run in reg.list_runs(tags=[plan.tag]):
                    if run.status == "running" and run.lease_pid and reg.checkpoints(run.id):
                        if cluster.session_of(run.lease_pid) == worker:
                            return run
            return None

        victim = wait_for("checkpointed run on the worker node", on_worker_with_checkpoint, driver)
        cluster.kill_node(worker)
        with Registry(url) as reg:
            step = reg.latest_checkpoint(victim.id).step
            with reg._engine.connect() as conn:
                last_id = conn.execute(select(Metric.id).order_by(Metric.id.desc())).first()[0]
        out, err = driver.communicate(timeout=DEADLINE_S)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    assert out.startswith("{"), (out[:3000], err)
    result = json.loads(out)
    assert result["failed"] == [] and result["resubmitted"] == 1
    with Registry(url) as reg:
        runs = reg.list_runs(tags=[plan.tag])
        assert len(runs) == 2 and {r.status for r in runs} == {"finished"}
        resumed = reg.get_run(victim.id)
        assert resumed.env_steps >= 100000 and resumed.created_at == victim.created_at
        with reg._engine.connect() as conn:
            rows = conn.execute(
                select(Metric.id, Metric.step).where(Metric.run_id == victim.id)
            ).all()
    assert step > 0
    assert {i <= last_id for i, s in rows if s <= step} == {True}
    assert {i > last_id for i, s in rows if s > step} == {True}


def test_one_node_may_use_sqlite(cluster: LocalRayCluster, tmp_path: Path) -> None:
    nodes(cluster, 1)
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'srpo.db'}")
    cli.env["RAY_USAGE_STATS_ENABLED"] = "0"
    result = cli.json(*sweep_args(cluster, "--steps", "4096"))
    assert result["failed"] == [] and result["ran"] == 1
    assert {p["status"] for p in result["points"]} == {"finished"}
