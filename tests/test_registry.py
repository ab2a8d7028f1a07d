"""Registry tests on real SQLite files and real PostgreSQL databases (`db_url`, see
conftest.py): round trips, concurrent writer processes, damaged checkpoint files and
registries that cannot be opened."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from srpo_core.errors import UserError
from srpo_core.registry import (
    CorruptArtifactError,
    MissingArtifactError,
    NotFoundError,
    Registry,
    RegistryError,
    resolve_registry_url,
)
from tests.conftest import PostgresServer

RUN = {"env": "matrix", "algo": "srpo", "tau": 0.5, "eps": 0.1, "seed": 3}


def _new_run(reg: Registry, **overrides: object) -> str:
    fields = {**RUN, "config": {"lr": 3e-4, "net": {"hidden": [64, 64]}}, **overrides}
    return reg.create_run(**fields)  # type: ignore[arg-type]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_resolve_registry_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRPO_REGISTRY", raising=False)
    assert resolve_registry_url(None) == "sqlite:///srpo.db"
    monkeypatch.setenv("SRPO_REGISTRY", "sqlite:///from-env.db")
    assert resolve_registry_url(None) == "sqlite:///from-env.db"
    assert resolve_registry_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert resolve_registry_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path}/x.db"


def test_default_registry_lives_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SRPO_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    with Registry() as reg:
        assert reg.artifact_dir == tmp_path / "srpo-artifacts"
        _new_run(reg)
    assert (tmp_path / "srpo.db").is_file()


def test_round_trip(tmp_path: Path, db_url: str) -> None:
    url = db_url
    with Registry(url) as reg:
        run_id = _new_run(reg, tags=["sweep", "a"], command="srpo train matrix")
        assert len(run_id) == 12 and int(run_id, 16) >= 0

        run = reg.get_run(run_id)
        assert (run.env, run.algo, run.tau, run.eps, run.seed) == ("matrix", "srpo", 0.5, 0.1, 3)
        assert run.config == {"lr": 3e-4, "net": {"hidden": [64, 64]}}
        assert len(run.config_hash) == 64
        assert run.status == "running" and run.ended_at is None and run.error is None
        assert run.tags == ("sweep", "a") and run.command == "srpo train matrix"
        assert run.created_at.tzinfo is not None and run.package_version
        assert reg.get_run(run_id[:4]).id == run_id
        assert reg.get_run(run_id.upper()).id == run_id

        reg.update_progress(run_id, env_steps=300, hero_samples=150)
        reg.log_metrics(run_id, [(100, {"return": 1.0, "loss": 0.5}), (200, {"return": 2.0})])
        reg.log_metrics(run_id, [(300, {"return": 3.0, "loss": math.nan})])
        frame = reg.metrics(run_id)
        assert list(frame.columns) == ["step", "key", "value"]
        assert list(frame["key"]) == ["loss", "loss", "return", "return", "return"]
        assert list(frame["step"]) == [100, 300, 100, 200, 300]
        assert list(reg.metrics(run_id, keys=["return"])["value"]) == [1.0, 2.0, 3.0]
        final = reg.final_metrics(run_id)
        assert final["return"] == 3.0 and math.isnan(final["loss"])

        # Resume from step 200: the rows of step 300 go.
        assert reg.delete_metrics_after(run_id, 200) == 2
        assert reg.final_metrics(run_id) == {"loss": 0.5, "return": 2.0}
        assert reg.metrics(run_id, keys=["nothing"]).empty

        assert reg.latest_checkpoint(run_id) is None
        first = reg.save_checkpoint(run_id, 100, b"weights-100")
        second = reg.save_checkpoint(run_id, 200, b"weights-200")
        assert first.path == f"{first.sha256}.pt" and first.size_bytes == len(b"weights-100")
        assert (reg.artifact_dir / first.path).read_bytes() == b"weights-100"
        assert reg.artifact_dir == tmp_path / "srpo-artifacts"
        assert [c.step for c in reg.checkpoints(run_id)] == [100, 200]
        assert reg.latest_checkpoint(run_id) == second
        assert reg.read_checkpoint(second) == b"weights-200"
        # Saving a step again replaces its checkpoint rather than adding a second one.
        again = reg.save_checkpoint(run_id, 200, b"weights-200b")
        assert [c.sha256 for c in reg.checkpoints(run_id)] == [first.sha256, again.sha256]

        ref = reg.register_policy(
            run_id=run_id, role="agent0", env="matrix", kind="trained", spec={"hidden": [64]}
        )
        assert ref == f"{run_id}/agent0"
        same = reg.register_policy(
            run_id=run_id, role="agent0", env="matrix", kind="trained", spec={"hidden": [64]}
        )
        assert same == ref and len(reg.policies(run_id=run_id)) == 1
        scripted = reg.register_policy(
            run_id=None, role="agent1", env="matrix", kind="scripted", spec={"rule": "always-0"}
        )
        policy = reg.get_policy(ref)
        assert (policy.run_id, policy.role, policy.kind) == (run_id, "agent0", "trained")
        assert policy.spec == {"hidden": [64]}
        assert reg.get_policy(f"{run_id[:5]}/agent0") == policy
        assert reg.get_policy(scripted).run_id is None
        assert [p.id for p in reg.policies(env="matrix")] == [ref, scripted]
        assert reg.policies(env="other") == []

        reg.set_status(run_id, "failed", error="ValueError: boom")
        other = _new_run(reg, env="other", tags=["sweep"])

    # A second handle (another process in real use) sees everything.
    with Registry(url, create=False) as reg:
        run = reg.get_run(run_id)
        assert run.status == "failed" and run.error == "ValueError: boom"
        assert run.ended_at is not None and (run.env_steps, run.hero_samples) == (300, 150)
        assert [r.id for r in reg.list_runs()] == [other, run_id]
        assert [r.id for r in reg.list_runs(limit=1)] == [other]
        assert [r.id for r in reg.list_runs(tags=["sweep"], limit=1)] == [other]
        assert [r.id for r in reg.list_runs(tags=["a", "sweep"])] == [run_id]
        assert [r.id for r in reg.list_runs(env="matrix", status="failed")] == [run_id]
        assert reg.list_runs(algo="ippo") == []
        reg.set_status(run_id, "running")
        assert reg.get_run(run_id).ended_at is None


def test_identical_checkpoints_are_stored_once(db_url: str) -> None:
    with Registry(db_url) as reg:
        a, b = _new_run(reg), _new_run(reg)
        info_a = reg.save_checkpoint(a, 10, b"same bytes")
        info_b = reg.save_checkpoint(b, 20, b"same bytes")
        assert info_a.path == info_b.path
        assert _listing(reg.artifact_dir) == {info_a.path}
        assert reg.read_checkpoint(info_b) == b"same bytes"


def test_lookup_errors(db_url: str) -> None:
    with Registry(db_url) as reg:
        first, second = _new_run(reg), _new_run(reg)
    # Give both runs the same 4-character prefix, straight in the database.
    engine = create_engine(db_url)
    with engine.begin() as con:
        update = text("UPDATE runs SET id = :new WHERE id = :old")
        con.execute(update, {"new": "abcd00000001", "old": first})
        con.execute(update, {"new": "abcd00000002", "old": second})
    engine.dispose()
    with Registry(db_url) as reg:
        with pytest.raises(RegistryError, match="matches 2 runs"):
            reg.get_run("abcd")
        assert reg.get_run("abcd00000002").id == "abcd00000002"
        assert reg.get_run("abcd00000001").id == "abcd00000001"
        with pytest.raises(NotFoundError, match="no run 'ffff'"):
            reg.get_run("ffff")
        with pytest.raises(NotFoundError, match="at least 4"):
            reg.get_run("abc")
        with pytest.raises(NotFoundError, match="no policy"):
            reg.get_policy("abcd00000001/agent0")
        with pytest.raises(NotFoundError):
            reg.log_metrics("000000000000", [(1, {"x": 1.0})])
        with pytest.raises(RegistryError, match="unknown run status"):
            reg.list_runs(status="done")
        with pytest.raises(RegistryError, match="a limit of -1 runs makes no sense"):
            reg.list_runs(limit=-1)
        with pytest.raises(RegistryError, match="seed 9223372036854775808 does not fit"):
            _new_run(reg, seed=2**63)
        assert reg.get_run(_new_run(reg, seed=2**63 - 1)).seed == 2**63 - 1  # 64 bits anywhere
        with pytest.raises(ValueError):
            reg.set_status("abcd00000001", "done")
    assert issubclass(NotFoundError, UserError)


def test_damaged_checkpoint_files_are_refused(db_url: str) -> None:
    with Registry(db_url) as reg:
        run_id = _new_run(reg)
        info = reg.save_checkpoint(run_id, 5, b"original weights")
        file = reg.artifact_dir / info.path
        file.write_bytes(b"original weightz")
        with pytest.raises(CorruptArtifactError, match="failed its sha256 check") as caught:
            reg.read_checkpoint(info)
        assert f"of run {run_id}" in str(caught.value) and "\n" not in str(caught.value)

        # Saving the same content again repairs the file.
        assert reg.save_checkpoint(run_id, 5, b"original weights") == reg.checkpoints(run_id)[0]
        assert reg.read_checkpoint(info) == b"original weights"

        file.unlink()
        with pytest.raises(MissingArtifactError, match="is missing"):
            reg.read_checkpoint(info)

        file.mkdir()  # a directory where the file was: one line, for reads and writes
        with pytest.raises(RegistryError, match=f"cannot be read from {file}: Is a directory"):
            reg.read_checkpoint(info)
        with pytest.raises(RegistryError, match="cannot store a checkpoint of run"):
            reg.save_checkpoint(run_id, 5, b"original weights")
        assert reg.checkpoints(run_id)[0].sha256 == info.sha256


def test_create_false_never_creates_a_registry(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no registry at"):
        Registry(str(tmp_path / "missing.db"), create=False)
    with pytest.raises(RegistryError, match="no registry at"):
        Registry(str(tmp_path / "no-dir" / "missing.db"), create=False)
    sqlite3.connect(tmp_path / "foreign.db").close()  # a database, but not a registry
    with pytest.raises(RegistryError, match="not an srpo registry"):
        Registry(str(tmp_path / "foreign.db"), create=False)
    assert _listing(tmp_path) == {"foreign.db"}
    assert (tmp_path / "foreign.db").read_bytes() == b""


def test_create_false_never_creates_a_postgres_schema(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with pytest.raises(RegistryError, match="is not an srpo registry .it has no tables."):
        Registry(url, create=False)
    engine = create_engine(url)
    with engine.connect() as con:
        tables = text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert con.execute(tables).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchdialect://host/db", "cannot open registry"),
        ("{tmp}/no-such-dir/reg.db", "does not exist"),
        ("{tmp}/notes.txt", "cannot open registry"),
        ("{tmp}", "is a directory"),
        ("sqlite://", "is an in-memory SQLite database, lost when the command exits"),
        ("sqlite:///:memory:", "is an in-memory SQLite database"),
        ("sqlite:///file:reg?mode=memory&uri=true", "is an in-memory SQLite database"),
        ("postgresql://u:s3cret@[::1", r"invalid registry URL postgresql://u:\*\*\*@"),
    ],
)
def test_unusable_registry_urls(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("these are not the tables you are looking for\n" * 200)
    before = _listing(tmp_path)
    with pytest.raises(RegistryError, match=message) as caught:
        Registry(target.format(tmp=tmp_path))
    assert "\n" not in str(caught.value) and "s3cret" not in str(caught.value)
    assert _listing(tmp_path) == before
    assert (tmp_path / "notes.txt").read_text().startswith("these are not")


def test_sqlite_registry_files_use_wal(tmp_path: Path) -> None:
    db = tmp_path / "reg.db"
    with Registry(str(db)) as reg:
        _new_run(reg)
        with reg._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with sqlite3.connect(db) as con:  # WAL is a property of the file, seen by any client
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# Each writer opens the (fresh) registry at the same moment as the others, then commits many
# small transactions: metric rows, progress updates and checkpoints, one shared by all.
_WRITER = """
import sys, time
from pathlib import Path
from srpo_core.registry import Registry

url, index, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
(folder / f"ready-{index}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
with Registry(url) as reg:
    run_id = reg.create_run(env="matrix", algo="srpo", tau=0.5, eps=0.1, seed=index, config={})
    for step in range(1, 201):
        reg.log_metrics(run_id, [(step, {"return": float(index * 1000 + step)})])
        if step % 10 == 0:
            reg.update_progress(run_id, env_steps=step, hero_samples=step // 2)
        if step % 50 == 0:
            reg.save_checkpoint(run_id, step, f"{index}-{step}".encode())
            reg.save_checkpoint(run_id, step + 1, b"shared")
    reg.register_policy(run_id=run_id, role="agent0", env="matrix", kind="trained", spec={})
    reg.set_status(run_id, "finished")
print(run_id)
"""


def test_concurrent_writer_processes(tmp_path: Path, db_url: str) -> None:
    """Eight processes (a sweep's trainers on a cluster) open a fresh registry (an empty file
    or database) at the same moment: one creates the schema, the others wait for it
    (finding: on PostgreSQL, concurrent CREATE TABLE failed with a duplicate key in
    pg_type)."""
    url = db_url
    writers = 8
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(i), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < writers and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert err == ""
    run_ids = {out.strip() for out, _ in outputs}

    with Registry(url, create=False) as reg:
        assert {r.id for r in reg.list_runs()} == run_ids
        for run_id in run_ids:
            run = reg.get_run(run_id)
            assert run.status == "finished" and (run.env_steps, run.hero_samples) == (200, 100)
            frame = reg.metrics(run_id)
            assert list(frame["step"]) == list(range(1, 201))
            assert list(frame["value"]) == [float(run.seed * 1000 + s) for s in range(1, 201)]
            checkpoints = reg.checkpoints(run_id)
            assert len(checkpoints) == 8
            for info in checkpoints:
                expected = f"{run.seed}-{info.step}" if info.step % 50 == 0 else "shared"
                assert reg.read_checkpoint(info) == expected.encode()
            assert reg.get_policy(f"{run_id}/agent0").run_id == run_id
        # 4 distinct payloads per writer plus the one every writer shares.
        assert len(list(reg.artifact_dir.glob("*.pt"))) == writers * 4 + 1
        assert not list(reg.artifact_dir.glob(".tmp-*"))
