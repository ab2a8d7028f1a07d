"""Shared fixtures: a real registry file per test, real PostgreSQL servers and the CLI as a
real subprocess."""

from __future__ import annotations

import itertools
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'srpo.db'}"


class Cli:
    def __init__(self, cwd: Path, registry_url: str) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "SRPO_REGISTRY": registry_url, "COLUMNS": "200"}

    def __call__(self, *args: str, check: bool = True, timeout: float = 300):
        proc = subprocess.run(
            [sys.executable, "-m", "srpo_cli.main", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"srpo {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "srpo_cli.main", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(tmp_path: Path, registry_url: str) -> Cli:
    return Cli(tmp_path, registry_url)


# ---- PostgreSQL -----------------------------------------------------------------------------
# Each pytest-xdist worker starts its own server (session fixtures are per worker), in its own
# directory on its own free port, listening on 127.0.0.1 only with password authentication.
# Without the server binaries the tests skip; under CI (CI=true) they fail instead, so a
# broken CI setup is noticed.

PG_USER = "srpo"
PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def pg_bindir() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: beside pg_ctl on PATH, else Debian's."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in PG_PROGRAMS):
            return folder
    return None


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder. As root the programs run as the
    unprivileged `postgres` OS user (initdb refuses root), who owns the folder."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = "pw-" + secrets.token_hex(8)
        self.root = Path(tempfile.mkdtemp(prefix="srpo-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as_user: list[str] = []
        self._names = itertools.count()
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                self.remove()
                _unavailable("running as root, PostgreSQL needs the OS user `postgres`")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", PG_USER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / program), *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed:\n{proc.stdout}\n{proc.stderr}\n{log}")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        name = f"db{next(self._names)}_{secrets.token_hex(4)}"
        conninfo = f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres"
        with psycopg.connect(conninfo, password=self.password, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_postgres() -> PostgresServer:
    bindir = pg_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")
    server = PostgresServer(bindir)
    for attempt in itertools.count(1):
        try:
            server.start()
        except RuntimeError:  # another process may have taken the free port first
            if attempt == 3:
                server.remove()
                raise
            server.port = _free_port()
        else:
            return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """This worker's PostgreSQL server, shared by its tests (each takes fresh databases)."""
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of the test's own, for tests that stop and restart it."""
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh registry URL on each database srpo supports: a SQLite file (its artifacts
    beside it), an empty PostgreSQL database (its artifacts in tmp_path/srpo-artifacts)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'srpo.db'}"
    monkeypatch.setenv("SRPO_ARTIFACTS", str(tmp_path / "srpo-artifacts"))
    return request.getfixturevalue("postgres").create_database()
