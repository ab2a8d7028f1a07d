"""What the registry refuses and how it fails, on real SQLite files, real PostgreSQL servers
and the CLI as a real subprocess: schema versions, foreign databases, in-memory SQLite,
database failures mid-run, run leases. Every refusal is one `error:` line (exit 2) and
leaves the database as it was."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from srpo_core.registry import LeaseLostError, Registry, RegistryError
from srpo_core.registry.migrations import head
from srpo_core.registry.models import Base
from tests.conftest import Cli, PostgresServer

# 1024 env steps an iteration, a metric row each, a checkpoint every 10.
TRAIN = ["--env", "matrix", "--set", "run.eval_episodes=0", "--set", "run.checkpoint_every=10240"]
LONG = "1000000000"
HOST = socket.gethostname()

# The schema srpo wrote before it was versioned (revision 0001), as sqlite_master held it.
OLD_FIRST_TABLES = """
CREATE TABLE runs (id VARCHAR(12) NOT NULL, env VARCHAR(200) NOT NULL,
    algo VARCHAR(100) NOT NULL, tau FLOAT NOT NULL, eps FLOAT NOT NULL, seed INTEGER NOT NULL,
    config TEXT NOT NULL, config_hash VARCHAR(64) NOT NULL,
    package_version VARCHAR(100) NOT NULL, git_commit VARCHAR(100),
    status VARCHAR(20) NOT NULL, error TEXT, tags TEXT NOT NULL, command TEXT NOT NULL,
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, ended_at DATETIME,
    env_steps BIGINT NOT NULL, hero_samples BIGINT NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_runs_status ON runs (status);
CREATE INDEX ix_runs_created_at ON runs (created_at);
CREATE INDEX ix_runs_config_hash ON runs (config_hash);
CREATE INDEX ix_runs_env_algo ON runs (env, algo);
CREATE TABLE metrics (id INTEGER NOT NULL, run_id VARCHAR(12) NOT NULL, step BIGINT NOT NULL,
    "key" VARCHAR(200) NOT NULL, value FLOAT, PRIMARY KEY (id),
    FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, "key", step);
CREATE TABLE checkpoints (id INTEGER NOT NULL, run_id VARCHAR(12) NOT NULL,
    step BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL, path VARCHAR(500) NOT NULL,
    size_bytes BIGINT NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id),
    CONSTRAINT uq_checkpoints_run_step UNIQUE (run_id, step),
    FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE INDEX ix_checkpoints_sha256 ON checkpoints (sha256);
CREATE TABLE policies (id VARCHAR(300) NOT NULL, run_id VARCHAR(12), role VARCHAR(100) NOT NULL,
    env VARCHAR(200) NOT NULL, kind VARCHAR(20) NOT NULL, spec TEXT NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (id), FOREIGN KEY(run_id) REFERENCES runs (id));
CREATE INDEX ix_policies_run_id ON policies (run_id);
CREATE INDEX ix_policies_env ON policies (env);
"""
OLD_ZOO_TABLES = """
CREATE TABLE zoos (name VARCHAR(100) NOT NULL, env VARCHAR(200) NOT NULL,
    env_config TEXT NOT NULL, env_config_hash VARCHAR(64) NOT NULL, held_out BOOLEAN NOT NULL,
    description TEXT NOT NULL, created_at DATETIME NOT NULL, frozen_at DATETIME,
    manifest_sha256 VARCHAR(64), PRIMARY KEY (name));
CREATE TABLE crossplay_results ("key" VARCHAR(64) NOT NULL, env VARCHAR(200) NOT NULL,
    env_config_hash VARCHAR(64) NOT NULL, agent_ref VARCHAR(300) NOT NULL, agent_step BIGINT,
    agent_sha256 VARCHAR(64), seat VARCHAR(100) NOT NULL, partners TEXT NOT NULL,
    episodes INTEGER NOT NULL, seed BIGINT NOT NULL, metrics TEXT NOT NULL,
    package_version VARCHAR(100) NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY ("key"));
CREATE INDEX ix_crossplay_agent ON crossplay_results (agent_ref);
CREATE TABLE zoo_members (id INTEGER NOT NULL, zoo VARCHAR(100) NOT NULL,
    position INTEGER NOT NULL, policy_ref VARCHAR(300) NOT NULL, step BIGINT,
    sha256 VARCHAR(64), PRIMARY KEY (id),
    CONSTRAINT uq_zoo_members UNIQUE (zoo, policy_ref, step),
    FOREIGN KEY(zoo) REFERENCES zoos (name), FOREIGN KEY(policy_ref) REFERENCES policies (id));
CREATE INDEX ix_zoo_members_policy_ref ON zoo_members (policy_ref);
CREATE INDEX ix_zoo_members_zoo ON zoo_members (zoo);
"""
OLD_ROWS = """
INSERT INTO runs VALUES ('0123456789ab', 'matrix', 'srpo', 10.0, 0.2, 7, '{"run":{"seed":7}}',
    'hash', '0.0.9', NULL, 'finished', NULL, '["old"]', 'srpo train', '2025-01-02 03:04:05',
    '2025-01-02 03:04:05', '2025-01-02 03:05:00', 640, 320);
INSERT INTO metrics (run_id, step, "key", value) VALUES ('0123456789ab', 640, 'eval/return', 1.5);
"""


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migration_diff(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match models.py."""
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def sql(url: str, *statements: str) -> list:
    """Run statements straight on the database; the rows of the last one."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            result = conn.execute(text(statement))
        rows = list(result) if result.returns_rows else []
    engine.dispose()
    return rows


def old_registry(path: Path, *ddl: str) -> str:
    with sqlite3.connect(path) as con:
        con.executescript("".join(ddl) + OLD_ROWS)
    con.close()
    return f"sqlite:///{path}"


def wait_for_checkpoint(url: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    """The id of the run `proc` trains, once it has a checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with Registry(url, create=False) as reg:
                for run in reg.list_runs():
                    if reg.checkpoints(run.id):
                        return run.id
        except RegistryError:  # not created yet
            pass
        time.sleep(0.1)
    raise AssertionError("no checkpoint appeared")


def logged_steps(url: str, run_id: str) -> tuple[list[int], int]:
    """Steps of one metric key and the step of the run's latest checkpoint."""
    with Registry(url, create=False) as reg:
        frame = reg.metrics(run_id, keys=["perf/sps"])
        latest = reg.latest_checkpoint(run_id)
    return list(frame["step"]), latest.step if latest else 0


def assert_rows_intact(url: str, run_id: str) -> None:
    """Each logged step once, none missing up to the latest checkpoint."""
    steps, checkpointed = logged_steps(url, run_id)
    assert len(steps) == len(set(steps)), steps
    every = steps[0]
    assert [s for s in steps if s <= checkpointed] == list(range(every, checkpointed + 1, every))


def pg_cli(tmp_path: Path, url: str, **env: str) -> Cli:
    cli = Cli(tmp_path, url)
    cli.env |= {"SRPO_ARTIFACTS": str(tmp_path / "srpo-artifacts"), **env}
    return cli


# ---- schema versions (finding B) --------------------------------------------------------------


def test_fresh_registry_is_created_at_head_and_matches_the_models(db_url: str) -> None:
    Registry(db_url).close()
    assert sql(db_url, "SELECT version_num FROM alembic_version") == [(head(),)]
    assert head() == "0003"
    assert migration_diff(db_url) == []


OLD_RESULTS = """
INSERT INTO policies VALUES ('0123456789ab/agent0', '0123456789ab', 'agent0', 'matrix',
    'trained', '{}', '2025-01-02 03:05:00');
INSERT INTO policies VALUES ('0123456789ab/agent1', '0123456789ab', 'agent1', 'matrix',
    'trained', '{}', '2025-01-02 03:05:00');
INSERT INTO policies VALUES ('random:matrix/uniform', NULL, 'agent', 'matrix', 'random', '{}',
    '2025-01-02 03:05:00');
INSERT INTO crossplay_results VALUES ('own', 'matrix', 'h', '0123456789ab/agent0', 640, 's',
    'agent0', '{"agent1":{"ref":"0123456789ab/agent1","sha256":"s","step":640}}', 8, 0,
    '{"return":1.0}', '0.0.9', '2025-01-02 03:06:00');
INSERT INTO crossplay_results VALUES ('random', 'matrix', 'h', '0123456789ab/agent0', 640,
    's', 'agent0', '{"agent1":{"ref":"random:matrix/uniform","sha256":null,"step":null}}', 8,
    0, '{"return":0.5}', '0.0.9', '2025-01-02 03:06:00');
INSERT INTO crossplay_results VALUES ('scripted-agent', 'matrix', 'h', 'random:matrix/uniform',
    NULL, NULL, 'agent1', '{"agent0":{"ref":"0123456789ab/agent0","sha256":"s","step":640}}',
    8, 0, '{"return":0.5}', '0.0.9', '2025-01-02 03:06:00');
"""


def test_upgrade_fills_in_the_runs_and_kind_of_stored_crossplay_results(tmp_path: Path) -> None:
    url = old_registry(tmp_path / "srpo.db", OLD_FIRST_TABLES, OLD_ZOO_TABLES, OLD_RESULTS)
    Cli(tmp_path, url)("registry", "upgrade")
    assert migration_diff(url) == []
    with Registry(url, create=False) as reg:
        stored = reg.crossplay_results(env_config_hash="h", episodes=8, seed=0)
    found = {r.key: (r.agent_run, r.partner_runs, r.kind) for r in stored}
    run = "0123456789ab"
    assert found == {
        "own": (run, {"agent1": run}, "tp"),
        "random": (run, {"agent1": None}, "cp"),
        "scripted-agent": (None, {"agent0": run}, "cp"),
    }


@pytest.mark.parametrize("zoo_tables", [True, False], ids=["unversioned", "before-zoos"])
def test_unversioned_registry_is_refused_read_only_and_migrated_by_a_writer(
    tmp_path: Path, zoo_tables: bool
) -> None:
    db = tmp_path / "srpo.db"
    url = old_registry(db, OLD_FIRST_TABLES, OLD_ZOO_TABLES if zoo_tables else "")
    before = digest(db)
    cli = Cli(tmp_path, url)
    line = one_error_line(cli("runs", "list", check=False))
    assert line == (
        f"error: registry {url} has an unversioned schema, older than this srpo's (0003), and "
        "this command does not change it: upgrade it with `srpo registry upgrade` "
        "or any command that creates runs"
    )
    assert digest(db) == before and sorted(p.name for p in tmp_path.iterdir()) == ["srpo.db"]

    if zoo_tables:  # upgraded by hand
        out = cli("registry", "upgrade").stdout
        assert out == f"registry {url} has schema version 0003\n"
    else:  # upgraded by the first command that writes
        cli("train", *TRAIN, "--steps", "1024")
    assert migration_diff(url) == []
    with Registry(url, create=False) as reg:
        old = reg.get_run("0123456789ab")
        assert (old.status, old.seed, old.tags, old.env_steps) == ("finished", 7, ("old",), 640)
        assert old.config == {"run": {"seed": 7}} and not old.lease_expired
        assert reg.final_metrics(old.id) == {"eval/return": 1.5}
        assert reg.zoos() == []
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_future_schema_version_is_refused(tmp_path: Path, db_url: str) -> None:
    with Registry(db_url) as reg:
        shown = reg.shown
        run_id = reg.create_run(env="matrix", algo="ippo", tau=0, eps=0, seed=0, config={})
    sql(db_url, "UPDATE alembic_version SET version_num = '0099'")
    message = (
        f"registry {shown} has schema version 0099, newer than this srpo supports (0003): "
        "upgrade srpo"
    )
    for create in (True, False):
        with pytest.raises(RegistryError) as caught:
            Registry(db_url, create=create)
        assert str(caught.value) == message
    cli = pg_cli(tmp_path, db_url)
    assert (
        one_error_line(cli("train", *TRAIN, "--steps", "1024", check=False)) == f"error: {message}"
    )
    assert sql(db_url, "SELECT version_num FROM alembic_version") == [("0099",)]
    assert sql(db_url, "SELECT id FROM runs") == [(run_id,)]


# ---- databases that are not srpo registries (findings C, D) ----------------------------------


def test_foreign_sqlite_file_is_refused_and_left_byte_for_byte(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, distance_km REAL)")
        con.execute("INSERT INTO runs VALUES (1, 5.2)")
    con.close()
    before, listing = digest(db), sorted(os.listdir(tmp_path))
    cli = Cli(tmp_path, "unused")
    expected = (
        f"error: sqlite:///{db} is not an srpo registry (it has other tables: runs); "
        "srpo leaves it as it is"
    )
    for args in (["runs", "list"], ["train", "--env", "matrix", "--steps", "1000"]):
        assert one_error_line(cli(*args, "--registry", str(db), check=False)) == expected
        assert digest(db) == before and sorted(os.listdir(tmp_path)) == listing
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    con.close()


def test_foreign_postgres_database_is_refused_and_left_as_it_is(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    sql(url, "CREATE TABLE runs (id serial PRIMARY KEY, distance_km real)")
    for create in (True, False):
        with pytest.raises(
            RegistryError, match="is not an srpo registry .it has other tables: runs"
        ):
            Registry(url, create=create)
    tables = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    assert sql(url, tables) == [("runs",)]


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(tmp_path: Path, url: str) -> None:
    cli = Cli(tmp_path, url)
    line = one_error_line(cli("train", *TRAIN, "--steps", "1024", check=False))
    assert line == (
        f"error: registry {url} is an in-memory SQLite database, lost when the command exits: "
        "give a file path"
    )
    assert list(tmp_path.iterdir()) == []


# ---- database failures (finding E) ------------------------------------------------------------


def test_sqlite_lock_held_mid_run_ends_with_one_line(tmp_path: Path, registry_url: str) -> None:
    cli = Cli(tmp_path, registry_url)
    cli.env |= {"SRPO_DB_TIMEOUT_S": "0.3", "SRPO_DB_RETRY_S": "1"}
    proc = cli.popen("train", *TRAIN, "--steps", LONG)
    run_id = wait_for_checkpoint(registry_url, proc)
    locker = sqlite3.connect(tmp_path / "srpo.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another program holding the write lock
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        locker.rollback()
        locker.close()
    line = one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", err))
    assert line == (
        f"error: registry {registry_url}: database is locked (gave up after 1 s of retries)"
    )
    with Registry(registry_url, create=False) as reg:
        run = reg.get_run(run_id)  # it could not be marked failed: the lock was still held
        assert run.display_status == "running (lease expired)" and run.lease_pid == proc.pid
    assert_rows_intact(registry_url, run_id)


def test_corrupt_sqlite_page_ends_with_one_line(tmp_path: Path, cli: Cli, registry_url) -> None:
    run_id = cli.json("train", *TRAIN, "--steps", "1024")["run_id"]
    db = tmp_path / "srpo.db"
    with sqlite3.connect(db) as con:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
    con.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(bytes(range(256)) * (page_size // 256))
    for args in (["runs", "list"], ["runs", "show", run_id], ["train", *TRAIN, "--steps", "1024"]):
        line = one_error_line(cli(*args, check=False))
        assert line == f"error: registry {registry_url}: database disk image is malformed"


def test_postgres_server_gone_mid_run(tmp_path: Path, own_postgres: PostgresServer) -> None:
    url = own_postgres.create_database()
    cli = pg_cli(tmp_path, url, SRPO_DB_RETRY_S="2")
    proc = cli.popen("train", *TRAIN, "--steps", LONG)
    run_id = wait_for_checkpoint(url, proc)
    own_postgres.stop()
    _, err = proc.communicate(timeout=120)
    line = one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", err))
    shown = url.replace(own_postgres.password, "***")
    assert line.startswith(f"error: registry {shown}: ") and "Connection refused" in line
    assert line.endswith("(gave up after 2 s of retries)")
    assert own_postgres.password not in err
    own_postgres.start()
    with Registry(url, create=False) as reg:  # nobody could mark it: it shows its trainer gone
        assert reg.get_run(run_id).display_status == "running (lease expired)"
    assert_rows_intact(url, run_id)


def test_postgres_restart_within_the_retry_window(
    tmp_path: Path, own_postgres: PostgresServer
) -> None:
    url = own_postgres.create_database()
    cli = pg_cli(tmp_path, url, SRPO_DB_RETRY_S="60")
    proc = cli.popen("train", *TRAIN, "--steps", "102400")
    run_id = wait_for_checkpoint(url, proc)
    own_postgres.stop()
    time.sleep(2)
    own_postgres.start()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and err == "", err
    with Registry(url, create=False) as reg:
        run = reg.get_run(run_id)
        assert run.status == "finished" and run.env_steps == 102400
    steps, last = logged_steps(url, run_id)
    assert sorted(set(steps)) == list(range(1024, 102401, 1024)) and last == 102400


def test_passwords_never_reach_the_terminal(tmp_path: Path, postgres: PostgresServer) -> None:
    cli = Cli(tmp_path, postgres.url("no_such_db"))
    line = one_error_line(cli("runs", "list", check=False))
    assert 'database "no_such_db" does not exist' in line and postgres.password not in line
    assert line.startswith("error: cannot open registry postgresql+psycopg://srpo:***@127.0.0.1")
    wrong = postgres.create_database().replace(postgres.password, "wrong-pw-41")
    line = one_error_line(cli("runs", "list", "--registry", wrong, check=False))
    assert "password authentication failed" in line and "wrong-pw-41" not in line


def test_seed_beyond_64_bits_is_refused(tmp_path: Path, cli: Cli, registry_url: str) -> None:
    line = one_error_line(cli("train", *TRAIN, "--seed", str(2**63), check=False))
    assert "seed" in line and str(2**63) in line
    if (tmp_path / "srpo.db").exists():
        with Registry(registry_url, create=False) as reg:
            assert reg.list_runs() == []


# ---- leases (finding F) -----------------------------------------------------------------------


def test_lease_is_compare_and_set(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRPO_LEASE_TTL_S", "1")
    with Registry(db_url) as trainer, Registry(db_url) as other:
        run_id = trainer.create_run(env="matrix", algo="ippo", tau=0, eps=0, seed=0, config={})
        trainer.log_metrics(run_id, [(1, {"x": 1.0})])
        still = rf"run {run_id} is still training \(pid {os.getpid()} on host {re.escape(HOST)}, "
        with pytest.raises(RegistryError, match=still + r"heartbeat 0s ago\); stop that process"):
            other.acquire_lease(run_id)
        with pytest.raises(RegistryError, match=still):
            other.delete_metrics_after(run_id, 0)  # resume drops no rows of a live run
        assert len(other.metrics(run_id)) == 1 and not other.get_run(run_id).lease_expired

        time.sleep(1.2)  # no heartbeat within the TTL: the lease expired
        assert other.get_run(run_id).display_status == "running (lease expired)"
        other.acquire_lease(run_id)
        taken = f"run {run_id} was taken over by pid {os.getpid()} on host {HOST}: "
        with pytest.raises(LeaseLostError, match=re.escape(taken)):
            trainer.log_metrics(run_id, [(2, {"x": 2.0})])
        with pytest.raises(LeaseLostError):
            trainer.set_status(run_id, "failed", error="must not land")
        run = other.get_run(run_id)
        assert run.status == "running" and not run.lease_expired and len(other.metrics(run_id)) == 1

        # A trainer on this host that is gone holds nothing, whatever its last heartbeat.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        fresh = trainer.create_run(env="matrix", algo="ippo", tau=0, eps=0, seed=1, config={})
        sql(db_url, f"UPDATE runs SET lease_pid = {int(dead.stdout)} WHERE id = '{fresh}'")
        assert other.get_run(fresh).lease_expired
        other.acquire_lease(fresh)


def test_resume_of_a_run_still_training_is_refused(cli: Cli, registry_url: str) -> None:
    proc = cli.popen("train", *TRAIN, "--steps", LONG)
    try:
        run_id = wait_for_checkpoint(registry_url, proc)
        line = one_error_line(cli("train", "--resume", run_id, check=False))
        assert re.fullmatch(
            rf"error: run {run_id} is still training \(pid {proc.pid} on host {re.escape(HOST)}, "
            r"heartbeat \d+s ago\); stop that process, or resume once its lease expires "
            r"\(120s without a heartbeat\)",
            line,
        )
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    with Registry(registry_url, create=False) as reg:
        assert reg.get_run(run_id).status == "interrupted"
    assert_rows_intact(registry_url, run_id)


def test_killed_trainer_shows_lease_expired_and_resumes(cli: Cli, registry_url: str) -> None:
    proc = cli.popen("train", *TRAIN, "--steps", "102400")
    run_id = wait_for_checkpoint(registry_url, proc)
    proc.kill()
    proc.wait()
    (listed,) = cli.json("runs", "list")
    assert listed["status"] == "running" and listed["lease_expired"] is True

    # Finding G: a checkpoint file replaced by a directory is one line, and nothing changes.
    with Registry(registry_url, create=False) as reg:
        file = reg.artifact_dir / reg.latest_checkpoint(run_id).path
    file.rename(file.with_suffix(".bak"))
    file.mkdir()
    line = one_error_line(cli("train", "--resume", run_id, check=False))
    assert line.endswith(f"cannot be read from {file}: Is a directory")
    file.rmdir()
    file.with_suffix(".bak").rename(file)

    resumed = cli.json("train", "--resume", run_id)
    assert resumed["status"] == "finished" and resumed["env_steps"] == 102400
    assert_rows_intact(registry_url, run_id)


def _suspend_outside_a_transaction(proc: subprocess.Popen, db: Path) -> None:
    """SIGSTOP the trainer at a moment it holds no SQLite write lock."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(db, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            probe.close()
    raise AssertionError("the trainer always held the write lock")


def test_trainer_whose_lease_was_taken_over_stops(
    tmp_path: Path, cli: Cli, registry_url: str
) -> None:
    cli.env["SRPO_LEASE_TTL_S"] = "2"
    first = cli.popen("train", *TRAIN, "--steps", "307200")
    run_id = wait_for_checkpoint(registry_url, first)
    _suspend_outside_a_transaction(first, tmp_path / "srpo.db")
    try:
        time.sleep(2.5)  # suspended: no heartbeat for longer than the lease TTL
        (listed,) = cli.json("runs", "list")
        assert listed["lease_expired"] is True
        second = cli.popen("train", "--resume", run_id, "--json")
        deadline = time.monotonic() + 120
        while True:
            assert second.poll() is None and time.monotonic() < deadline, second.communicate()
            with Registry(registry_url, create=False) as reg:
                if reg.get_run(run_id).lease_pid == second.pid:
                    break
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    line = one_error_line(subprocess.CompletedProcess(first.args, first.returncode, "", err))
    assert line == (
        f"error: run {run_id} was taken over by pid {second.pid} on host {HOST}: this process "
        "sent no heartbeat for over 2s, so its lease expired; it stops training the run"
    )
    assert second.wait(timeout=300) == 0, second.communicate()
    with Registry(registry_url, create=False) as reg:
        assert reg.get_run(run_id).status == "finished"
    assert_rows_intact(registry_url, run_id)


# ---- small ones (finding G) -------------------------------------------------------------------


def test_negative_limit_and_broken_url_are_one_line(cli: Cli) -> None:
    Registry(cli.env["SRPO_REGISTRY"]).close()
    line = one_error_line(cli("runs", "list", "--limit", "-1", check=False))
    assert "limit" in line and "-1" in line  # the CLI or the registry refuses it
    line = one_error_line(
        cli("runs", "list", "--registry", "postgresql://u:s3cret@[::1", check=False)
    )
    assert line.startswith("error: invalid registry URL postgresql://u:***@[::1: ")
    assert "s3cret" not in line
