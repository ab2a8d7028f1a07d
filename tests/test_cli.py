"""`srpo train`, `runs`, `equilibria` end to end: a real subprocess and a real SQLite file."""

import hashlib
import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.registry import Registry, RegistryError
from tests.conftest import Cli

SMALL = ["--env", "matrix", "--set", "ppo.num_envs=64", "--set", "run.log_every=5"]
REQUIRED_METRICS = [
    "hero_samples",
    "perf/sps",
    "agent0/policy_loss",
    "agent0/value_loss",
    "agent0/entropy",
    "agent0/approx_kl",
    "agent0/clipfrac",
    "agent0/explained_variance",
    "agent0/p/C",
    "agent1/p/D",
    "agent0/adversary/kl_partner",
    "agent0/adversary/policy_loss",
    "eval/return",
    "eval/agent0/cost",
    "eval/free_riding",
]


def train_json(cli, *args: str) -> dict:
    return cli.json("train", *SMALL, *args)


def deterministic_metrics(url: str, run_id: str):
    with Registry(url, create=False) as reg:
        frame = reg.metrics(run_id)
    return frame[~frame.key.str.startswith("perf/")].reset_index(drop=True)


def final_weights(url: str, run_id: str) -> dict:
    with Registry(url, create=False) as reg:
        state = checkpoints.from_bytes(reg.read_checkpoint(reg.latest_checkpoint(run_id)))
    return state["policies"]


def test_train_then_inspect(cli, registry_url):
    out = train_json(cli, "--algo", "srpo", "--tau", "10", "--eps", "0.2", "--steps", "3000")
    assert out["status"] == "finished" and out["env_steps"] >= 3000
    assert out["hero_samples"] * 2 == out["env_steps"]  # SRPO: one rollout per hero
    shown = cli.json("runs", "show", out["run_id"][:6])
    assert shown["status"] == "finished" and shown["algo"] == "srpo"
    assert shown["config"]["algo"]["tau"] == 10.0 and shown["config"]["ppo"]["num_envs"] == 64
    for key in REQUIRED_METRICS:
        assert key in shown["final_metrics"], key
    assert shown["policies"] == [f"{out['run_id']}/agent0", f"{out['run_id']}/agent1"]
    steps = [c["step"] for c in shown["checkpoints"]]
    assert len(steps) == 10 and steps[-1] == out["env_steps"]  # by default every tenth
    ckpt = shown["checkpoints"][-1]
    artifact = Path(registry_url.removeprefix("sqlite:///")).parent / "srpo-artifacts"
    data = (artifact / ckpt["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == ckpt["sha256"]
    listed = cli.json("runs", "list")
    assert [r["id"] for r in listed] == [out["run_id"]]
    assert out["run_id"] in cli("runs", "list").stdout


def test_same_seed_same_numbers_and_config_replay(cli, registry_url):
    args = ["--algo", "srpo", "--tau", "2", "--eps", "0.2", "--seed", "3", "--steps", "4000"]
    first, second = train_json(cli, *args), train_json(cli, *args)
    other_seed = train_json(cli, *args[:-4], "--seed", "4", "--steps", "4000")
    replay = cli.json("train", "--config-from", first["run_id"])
    a = deterministic_metrics(registry_url, first["run_id"])
    assert a.equals(deterministic_metrics(registry_url, second["run_id"]))
    assert a.equals(deterministic_metrics(registry_url, replay["run_id"]))
    assert not a.equals(deterministic_metrics(registry_url, other_seed["run_id"]))
    with Registry(registry_url) as reg:
        assert reg.get_run(replay["run_id"]).config == reg.get_run(first["run_id"]).config


def wait_for_checkpoint(url: str, proc, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            with Registry(url, create=False) as reg:
                runs = reg.list_runs()
                if runs and reg.checkpoints(runs[0].id):
                    return runs[0].id
        except RegistryError:  # not created yet
            pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_resume_after_kill_gives_identical_weights(cli, registry_url):
    args = [
        *SMALL,
        "--algo",
        "srpo",
        "--tau",
        "10",
        "--eps",
        "0.2",
        "--seed",
        "5",
        "--steps",
        "20000",
        "--set",
        "run.checkpoint_every=3200",
        "--json",
    ]
    proc = cli.popen("train", *args)
    run_id = wait_for_checkpoint(registry_url, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Registry(registry_url, create=False) as reg:
        run = reg.get_run(run_id)
        assert run.status == "running" and run.env_steps < 20000  # killed mid-way
    resumed = cli.json("train", "--resume", run_id)
    assert resumed["status"] == "finished" and resumed["run_id"] == run_id
    fresh = cli.json("train", *args[:-1])
    a, b = final_weights(registry_url, run_id), final_weights(registry_url, fresh["run_id"])
    for role in a:
        for name, tensor in a[role].items():
            assert torch.equal(tensor, b[role][name]), (role, name)
    assert deterministic_metrics(registry_url, run_id).equals(
        deterministic_metrics(registry_url, fresh["run_id"])
    )


def test_sigterm_marks_the_run_interrupted(cli, registry_url):
    proc = cli.popen("train", *SMALL, "--steps", "10000000", "--set", "run.checkpoint_every=640")
    run_id = wait_for_checkpoint(registry_url, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    with Registry(registry_url, create=False) as reg:
        assert reg.get_run(run_id).status == "interrupted"


def test_concurrent_trainings_share_one_registry(cli, registry_url):
    cli("train", *SMALL, "--steps", "640")  # create the schema first, as a user would
    procs = [cli.popen("train", *SMALL, "--seed", str(s), "--steps", "3200") for s in range(3)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    with Registry(registry_url, create=False) as reg:
        runs = reg.list_runs()
        assert len(runs) == 4 and all(r.status == "finished" for r in runs)
        assert all(reg.checkpoints(r.id)[-1].step == r.env_steps for r in runs)


@pytest.fixture(scope="module")
def populated(tmp_path_factory) -> Path:
    """A registry holding one finished run, copied into each bad-input test."""
    root = tmp_path_factory.mktemp("populated")
    Cli(root, f"sqlite:///{root / 'srpo.db'}")("train", *SMALL, "--steps", "640")
    return root


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--env", "nope"], "unknown env 'nope'"),
        (["train", "--env", "matrix", "--game", "nope"], "unknown game 'nope'"),
        (["train", "--env", "matrix", "--algo", "srpo", "--tau", "-1"], "algo.tau = -1.0: must be"),
        (["train", "--env", "matrix", "--set", "ppo.nope=1"], "unknown key 'ppo.nope'"),
        (["train", "--env", "matrix", "--set", "ppo.lr=fast"], "ppo.lr must be float"),
        (["train", "--env", "matrix", "--algo", "srpo"], "SRPO needs tau > 0"),
        (["train", "--config-from", "feedbeef"], "no run 'feedbeef'"),
        (["train", "--resume", "feedbeef"], "no run 'feedbeef'"),
        (["runs", "show", "feedbeef"], "no run 'feedbeef'"),
        (["train", "--env", "matrix", "--registry", "nope://x"], "registry"),
        (["train", "--env", "matrix", "--registry", "/no/such/dir/srpo.db"], "registry"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(cli, tmp_path, populated, args, message):
    shutil.copytree(populated, tmp_path, dirs_exist_ok=True)
    before = snapshot(tmp_path)
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


def test_bad_input_creates_no_registry(cli, tmp_path):
    proc = cli("runs", "list", check=False)
    assert proc.returncode == 2 and "no registry" in proc.stderr
    proc = cli("train", "--env", "matrix", "--tau", "-1", check=False)
    assert proc.returncode == 2 and "algo.tau = -1.0: must be" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_equilibria_command_prints_the_papers_table(cli):
    out = cli.json("equilibria", "--game", "collab-defect", "--tau", "0.5", "--eps", "0.2")
    p_c = sorted(round(e["strategies"][0][0], 4) for e in out["equilibria"])
    assert p_c == pytest.approx([0.2802, 0.5837, 0.8425], abs=1e-3)
    table = cli("equilibria", "--game", "collab-defect", "--tau", "10").stdout
    assert "C=0.7942" in table


def test_gridworld_run_logs_free_riding_metrics(cli):
    out = cli.json(
        "train",
        "--env",
        "gridworld",
        "--algo",
        "srpo",
        "--tau",
        "10",
        "--steps",
        "2048",
        "--set",
        "ppo.num_envs=4",
        "--set",
        "ppo.num_steps=64",
        "--set",
        "run.eval_episodes=8",
    )
    metrics = out["metrics"]
    for key in (
        "eval/free_riding",
        "eval/team_reward",
        "eval/agent0/cost",
        "eval/agent1/moves",
        "eval/agent0/onions",
        "eval/agent1/deliveries",
        "agent0/p/stay",
    ):
        assert key in metrics, key
    assert metrics["eval/length"] == 50.0
    # the episode means obey the paper's reward and cost rules (srpo-notes, gridworld)
    m = {k.removeprefix("eval/"): v for k, v in metrics.items() if k.startswith("eval/")}
    for i in range(2):
        cost = 0.2 * m[f"agent{i}/moves"] + 2.0 * m[f"agent{i}/bumps"]
        assert m[f"agent{i}/cost"] == pytest.approx(cost, rel=1e-5)
    onions = m["agent0/onions"] + m["agent1/onions"]
    deliveries = m["agent0/deliveries"] + m["agent1/deliveries"]
    assert m["team_reward"] == pytest.approx(onions + 10.0 * deliveries, rel=1e-5)
    assert m["free_riding"] == pytest.approx(abs(m["agent0/cost"] - m["agent1/cost"]), abs=1e-5)


def test_bench_prints_and_writes_json(cli, tmp_path):
    target = tmp_path / "bench.json"
    out = cli.json(
        "bench",
        "--env",
        "gridworld",
        "--batch",
        "4,16",
        "--seconds",
        "0.3",
        "--set",
        "ppo.num_steps=8",
        "--out",
        str(target),
    )
    assert json.loads(target.read_text()) == out
    kinds = [(r["kind"], r["num_envs"]) for r in out["rows"]]
    assert kinds == [("env", 4), ("train", 4), ("env", 16), ("train", 16)]
    assert all(r["steps_per_second"] > 0 for r in out["rows"])
