"""`srpo runs tag`, `srpo runs delete` and `srpo zoo delete` on a real SQLite registry, through
the CLI as a real subprocess."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from srpo_core.registry import Registry


def _db(cli) -> Path:
    return cli.cwd / "srpo.db"


def _dump(cli) -> list[str]:
    with closing(sqlite3.connect(_db(cli))) as con:
        return list(con.iterdump())


def _count(cli, table: str, where: str = "1", *args: object) -> int:
    with closing(sqlite3.connect(_db(cli))) as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE {where}", args).fetchone()[0]


def _run_counts(cli, run_id: str) -> dict[str, int]:
    return {
        "runs": _count(cli, "runs", "id = ?", run_id),
        "metrics": _count(cli, "metrics", "run_id = ?", run_id),
        "checkpoints": _count(cli, "checkpoints", "run_id = ?", run_id),
        "policies": _count(cli, "policies", "run_id = ?", run_id),
    }


def _files(cli, run_id: str) -> set[Path]:
    with closing(sqlite3.connect(_db(cli))) as con:
        rows = con.execute("SELECT path FROM checkpoints WHERE run_id = ?", (run_id,))
        return {cli.cwd / "srpo-artifacts" / path for (path,) in rows}


def _train(cli, seed: int) -> str:
    args = ["--steps", "2000", "--seed", str(seed), "--set", "run.checkpoint_every=0"]
    return cli.json("train", "--env", "matrix", *args)["run_id"]


def _off_terminal(cli, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with stdin not a terminal (as in a script or CI job)."""
    return subprocess.run(
        [sys.executable, "-m", "srpo_cli.main", *args],
        cwd=cli.cwd,
        env=cli.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_tag_add_remove_round_trip(cli) -> None:
    run = _train(cli, 0)
    added = cli.json("runs", "tag", run[:6], "baseline", "a[b]", "baseline")
    assert added == {"id": run, "tags": ["baseline", "a[b]"]}
    shown = cli("runs", "tag", run, "x y")
    assert f"run {run} tags: baseline, a[b], x y" in shown.stdout
    assert cli.json("runs", "list", "--tag", "a[b]")[0]["id"] == run
    removed = cli.json("runs", "tag", run, "a[b]", "baseline", "--remove")
    assert removed["tags"] == ["x y"]
    assert cli.json("runs", "show", run)["tags"] == ["x y"]
    before = _dump(cli)
    for bad, needle in [
        (("nope", "--remove"), "has no tag 'nope'"),
        (
            (
                "ok",
                "",
            ),
            "cannot be empty",
        ),
        (("ok", "two\nlines"), "single line"),
        (("ok", "t" * 201), "at most 200"),
    ]:
        _refused(cli("runs", "tag", run, *bad, check=False), needle)
    assert _dump(cli) == before


def test_delete_removes_rows_and_unshared_files(cli) -> None:
    a, twin, other = _train(cli, 1), _train(cli, 1), _train(cli, 2)
    (shared,) = _files(cli, a)
    assert _files(cli, twin) == {shared}  # same seed, same bytes: one content-addressed file
    (own,) = _files(cli, other)
    assert shared.is_file() and own.is_file()
    assert all(_run_counts(cli, a)[t] > 0 for t in ("runs", "metrics", "checkpoints", "policies"))

    done = cli.json("runs", "delete", a[:6], a, "--yes")
    assert done["run_ids"] == [a] and done["files_removed"] == [] and done["files_shared"] == 1
    assert _run_counts(cli, a) == dict.fromkeys(("runs", "metrics", "checkpoints", "policies"), 0)
    assert shared.is_file()  # still the checkpoint of `twin`
    cli.json("runs", "show", twin)

    out = cli("runs", "delete", twin, "--yes")
    assert f"deleted 1 run(s) {twin}" in out.stdout
    assert not shared.exists()
    assert _run_counts(cli, twin) == dict.fromkeys(
        ("runs", "metrics", "checkpoints", "policies"), 0
    )
    assert own.is_file() and _run_counts(cli, other)["checkpoints"] == 1
    assert [r["id"] for r in cli.json("runs", "list")] == [other]


def test_delete_refusals_change_nothing(cli, registry_url: str) -> None:
    a, b = _train(cli, 3), _train(cli, 4)
    before = _dump(cli)
    _refused(_off_terminal(cli, "runs", "delete", a, b), "add --yes to delete 2 runs")
    _refused(_off_terminal(cli, "runs", "delete", a, "ffffffff", "--yes"), "no run 'ffffffff'")
    assert _dump(cli) == before

    cli("zoo", "build", "z", "--env", "matrix", "--policy", f"{a}/agent0")
    cli("crossplay", "--pool", f"run={a}|{b}", "--episodes", "10")
    assert _count(cli, "crossplay_results") > 0
    before = _dump(cli)
    _refused(cli("runs", "delete", a, "--yes", check=False), f"run {a}", "zoo 'z'")
    line = _refused(cli("runs", "delete", b, "--yes", check=False), f"run {b}", "cross-play")
    assert "zoo" not in line
    both = _refused(cli("runs", "delete", b, a, "--yes", check=False), "zoo 'z'", "cross-play")
    assert both.startswith("error: nothing deleted")
    assert _dump(cli) == before

    # A run whose trainer is alive (this process holds its lease) cannot be deleted.
    with Registry(registry_url) as reg:
        live = reg.create_run(env="matrix", algo="ippo", tau=0.0, eps=0.0, seed=9, config={})
        before = _dump(cli)
        _refused(cli("runs", "delete", live, "--yes", check=False), f"run {live}", "training")
        assert _dump(cli) == before


def test_zoo_delete(cli, registry_url: str) -> None:
    run = _train(cli, 5)
    cli("zoo", "build", "z", "--env", "matrix", "--policy", f"{run}/agent0")
    cli("zoo", "build", "y", "--env", "matrix", "--policy", f"{run}/agent0")
    before = _dump(cli)
    _refused(_off_terminal(cli, "zoo", "delete", "z"), "add --yes")
    _refused(cli("zoo", "delete", "nope", "--yes", check=False), "no zoo 'nope'")
    assert _dump(cli) == before

    assert "deleted zoo z (1 members)" in cli("zoo", "delete", "z", "--yes").stdout
    assert _count(cli, "zoos", "name = 'z'") == 0
    assert _count(cli, "zoo_members", "zoo = 'z'") == 0
    assert _count(cli, "zoo_members", "zoo = 'y'") == 1
    assert _count(cli, "policies", "run_id = ?", run) > 0  # members go, policies stay

    cli("zoo", "freeze", "y")
    before = _dump(cli)
    _refused(
        cli("zoo", "delete", "y", "--yes", check=False),
        "frozen zoos are what results and leaderboards are pinned to",
        "--force-frozen",
    )
    assert _dump(cli) == before
    cli("zoo", "delete", "y", "--yes", "--force-frozen")
    assert _count(cli, "zoos") == 0 and _count(cli, "zoo_members") == 0

    # A stored result with one of the run's policies only as a partner still holds it.
    with Registry(registry_url) as reg:
        reg.save_crossplay_result(
            {
                "key": "k" * 64,
                "env": "matrix",
                "env_config_hash": "0" * 64,
                "agent_ref": "random:matrix/agent0",
                "agent_step": None,
                "agent_sha256": None,
                "seat": "agent0",
                "partners": {"agent1": {"ref": f"{run}/agent1", "step": 1, "sha256": None}},
                "episodes": 10,
                "seed": 0,
                "metrics": {},
            }
        )
    before = _dump(cli)
    _refused(cli("runs", "delete", run, "--yes", check=False), "1 stored cross-play result")
    assert _dump(cli) == before
