"""Live TensorBoard event files (``run.tensorboard``): what a run logs to the registry is
what its event file holds, read back with the record format TensorBoard reads."""

import struct
import sys
from pathlib import Path

import pytest
from tensorboardX.proto.event_pb2 import Event

from srpo_core.config import resolve, with_seed
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.train import train, train_population

SMALL = ["run.steps=2048", "run.eval_episodes=4", "ppo.num_envs=8", "ppo.num_steps=64"]


def read_scalars(folder: Path) -> dict[tuple[int, str], float]:
    """(step, tag) -> value of every scalar in the event files under ``folder``: TFRecord
    framing (length, its CRC, the data, its CRC) around serialised `Event` protos."""
    scalars = {}
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars[(event.step, value.tag)] = value.simple_value
    return scalars


def registry_scalars(reg: Registry, run_id: str) -> dict[tuple[int, str], float]:
    frame = reg.metrics(run_id)
    return {(int(s), k): v for s, k, v in zip(frame.step, frame.key, frame.value, strict=True)}


def assert_same(events: dict, stored: dict) -> None:
    assert events.keys() == stored.keys()
    for key, value in stored.items():  # event files hold float32
        assert events[key] == pytest.approx(value, rel=1e-6, abs=1e-30), key


def test_a_run_writes_what_it_logs(registry_url, tmp_path):
    board = tmp_path / "tb"
    config = resolve(presets=["gridworld-srpo"], sets=[*SMALL, f"run.tensorboard='{board}'"])
    with Registry(registry_url) as reg:
        run_id = train(config, reg).run_id
        stored = registry_scalars(reg, run_id)
    events = read_scalars(board / run_id)
    assert {key for _, key in stored} >= {"eval/return", "agent0/policy_loss", "perf/sps"}
    assert_same(events, stored)


def test_each_member_of_a_population_has_its_own_file(registry_url, tmp_path):
    board = tmp_path / "tb"
    base = resolve(presets=["gridworld-ippo"], sets=[*SMALL, f"run.tensorboard='{board}'"])
    with Registry(registry_url) as reg:
        results = train_population([with_seed(base, s) for s in (1, 2)], reg)
        stored = [registry_scalars(reg, r.run_id) for r in results]
    assert stored[0] != stored[1]
    for result, rows in zip(results, stored, strict=True):
        assert_same(read_scalars(board / result.run_id), rows)


def test_missing_tensorboardx_or_bad_directory_is_one_line_and_writes_nothing(
    registry_url, tmp_path, monkeypatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = resolve(presets=["matrix"], sets=[f"run.tensorboard='{blocker / 'tb'}'"])
    with Registry(registry_url) as reg:
        with pytest.raises(UserError, match="run.tensorboard: cannot create"):
            train(config, reg)
        monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
        config = resolve(presets=["matrix"], sets=[f"run.tensorboard='{tmp_path / 'tb'}'"])
        with pytest.raises(
            UserError, match=r"needs tensorboardX: pip install 'srpo\[tensorboard\]'"
        ):
            train(config, reg)
        assert reg.list_runs() == []
