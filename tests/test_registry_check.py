"""`srpo registry check` on a real registry: a clean one passes, and each kind of damage made
to its files or rows by hand is found (exit 1), while the check itself changes nothing."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srpo_core.registry import Registry


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


@pytest.fixture
def trained(cli, tmp_path: Path) -> tuple[Path, str]:
    """A registry file holding one finished matrix run with one checkpoint."""
    args = ["--steps", "2000", "--set", "run.checkpoint_every=0"]
    run_id = cli.json("train", "--env", "matrix", *args)["run_id"]
    return tmp_path / "srpo.db", run_id


def _findings(cli) -> list[dict]:
    proc = cli("registry", "check", "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["ok"] else 1)
    return report["findings"]


def test_a_clean_registry_passes(cli, trained) -> None:
    db, _ = trained
    before = _dump(db)
    proc = cli("registry", "check")
    assert "1 runs, 1 checkpoints, 1 artifact files checked: everything is in order" in proc.stdout
    assert _dump(db) == before


def test_damaged_files_are_found(cli, trained, tmp_path: Path) -> None:
    db, run_id = trained
    artifacts = tmp_path / "srpo-artifacts"
    (blob,) = artifacts.iterdir()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    orphan = b"left behind"
    (artifacts / f"{hashlib.sha256(orphan).hexdigest()}.pt").write_bytes(orphan)
    (artifacts / "notes.txt").write_text("not ours")
    before = _dump(db)

    found = {(f["kind"], f["subject"]) for f in _findings(cli)}
    step = 2048
    assert found == {
        ("corrupt", f"{run_id}@{step}"),
        ("unreferenced", f"{hashlib.sha256(orphan).hexdigest()}.pt"),
        ("stray", "notes.txt"),
    }
    proc = cli("registry", "check", check=False)
    assert proc.returncode == 1 and "3 problem(s)" in proc.stdout
    assert _dump(db) == before

    blob.unlink()
    assert ("missing", f"{run_id}@{step}") in {(f["kind"], f["subject"]) for f in _findings(cli)}


def test_a_checkpoint_that_does_not_fit_its_policy_is_found(cli, trained, registry_url) -> None:
    _, run_id = trained
    with Registry(registry_url) as reg:
        latest = reg.latest_checkpoint(run_id)
        state = torch.load(io.BytesIO(reg.read_checkpoint(latest)), weights_only=True)
        weights = state["policies"]["agent0"]
        name = next(iter(weights))
        weights[name] = torch.zeros(weights[name].shape[0] + 1, *weights[name].shape[1:])
        buffer = io.BytesIO()
        torch.save(state, buffer)
        reg.save_checkpoint(run_id, latest.step + 1, buffer.getvalue())

    found = _findings(cli)
    assert [(f["kind"], f["subject"]) for f in found] == [("structure", f"{run_id}@2049")]
    assert name in found[0]["detail"] and "agent0" in found[0]["detail"]


def test_a_running_run_without_a_live_trainer_is_found(cli, trained, registry_url) -> None:
    # A run created by a process that is gone, as a trainer killed with SIGKILL leaves it.
    create = (
        "import sys; from srpo_core.registry import Registry; "
        "print(Registry(sys.argv[1]).create_run("
        "env='matrix', algo='ippo', tau=0, eps=0, seed=1, config={}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", create, registry_url], capture_output=True, text=True, check=True
    )
    orphan = proc.stdout.strip()
    found = _findings(cli)
    assert [(f["kind"], f["subject"]) for f in found] == [("expired-lease", orphan)]
    assert f"srpo train --resume {orphan}" in found[0]["detail"]
