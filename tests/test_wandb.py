"""Live W&B runs (``run.wandb``, offline): what a run logs to the registry is what its W&B
run file holds, read back from W&B's own record format (LevelDB log blocks around
serialised `Record` protos)."""

import json
import struct
import sys
from pathlib import Path

import pytest

pytest.importorskip("wandb")
from wandb.proto.wandb_internal_pb2 import Record  # noqa: E402

from srpo_core.config import resolve, with_seed  # noqa: E402
from srpo_core.errors import UserError  # noqa: E402
from srpo_core.registry import Registry  # noqa: E402
from srpo_core.train import train, train_population  # noqa: E402

SMALL = ["run.steps=2048", "run.eval_episodes=4", "ppo.num_envs=8", "ppo.num_steps=64"]
BLOCK = 32768


def records(path: Path):
    """Every Record of a .wandb file: a 7-byte file header, then 32 KiB blocks of chunks
    (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last; 0 pads a block's end)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    at, chunks = 7, b""
    while at + 7 <= len(data):
        left = BLOCK - at % BLOCK
        _, length, kind = struct.unpack("<IHB", data[at : at + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:
            at += left
            continue
        chunks += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):
            yield Record.FromString(chunks)
            chunks = b""


def wandb_run(folder: Path, run_id: str) -> tuple[dict, dict[tuple[int, str], float]]:
    """(config, (step, key) -> value) of the offline W&B run ``run_id`` under ``folder``."""
    (path,) = folder.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    config, scalars = {}, {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "history":
            items = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json)
                for i in record.history.item
            }
            step = items.pop("_step")
            for key, value in items.items():
                if not key.startswith("_"):
                    scalars[(step, key)] = value
    return config, scalars


def registry_scalars(reg: Registry, run_id: str) -> dict[tuple[int, str], float]:
    frame = reg.metrics(run_id)
    return {(int(s), k): v for s, k, v in zip(frame.step, frame.key, frame.value, strict=True)}


@pytest.fixture
def wandb_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return tmp_path


def test_a_run_and_each_population_member_write_what_they_log(registry_url, wandb_dir):
    sets = [*SMALL, "run.wandb='srpo-test'"]
    with Registry(registry_url) as reg:
        single = resolve(presets=["gridworld-srpo"], sets=sets)
        run_id = train(single, reg).run_id
        base = resolve(presets=["gridworld-ippo"], sets=sets)
        members = [r.run_id for r in train_population([with_seed(base, s) for s in (1, 2)], reg)]
        stored = {r: registry_scalars(reg, r) for r in (run_id, *members)}
    assert {key for _, key in stored[run_id]} >= {"eval/return", "agent0/policy_loss"}
    assert stored[members[0]] != stored[members[1]]
    for run, rows in stored.items():
        config, scalars = wandb_run(wandb_dir, run)
        assert scalars == pytest.approx(rows, rel=1e-12)
        assert config["run"]["wandb"] == "srpo-test" and config["run"]["wandb_mode"] == "offline"
    assert wandb_run(wandb_dir, members[1])[0]["run"]["seed"] == 2


def test_missing_wandb_is_one_line_and_writes_nothing(registry_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    config = resolve(presets=["matrix"], sets=["run.wandb='srpo-test'"])
    with Registry(registry_url) as reg:
        with pytest.raises(UserError, match=r"run.wandb needs the wandb package: pip install"):
            train(config, reg)
        assert reg.list_runs() == []
    with pytest.raises(UserError, match="run.wandb_mode = 'cloud': must be one of offline, online"):
        resolve(presets=["matrix"], sets=["run.wandb_mode='cloud'"])


def test_a_log_that_cannot_open_closes_the_ones_already_open(tmp_path, monkeypatch):
    from srpo_core import live_logs, tensorboard

    closed = []
    monkeypatch.setattr(tensorboard.EventFiles, "close", lambda self: closed.append(self))

    def refuse(configs, run_ids):
        raise UserError("run.wandb: W&B refused the run: no such project")

    monkeypatch.setattr(live_logs.wandb_log, "WandbRuns", refuse)
    sets = [f"run.tensorboard='{tmp_path / 'tb'}'", "run.wandb='p'"]
    config = resolve(presets=["matrix"], sets=sets)
    with pytest.raises(UserError, match="W&B refused"):
        live_logs.open_live_logs([config], ["abc"])
    assert len(closed) == 1 and isinstance(closed[0], tensorboard.EventFiles)
