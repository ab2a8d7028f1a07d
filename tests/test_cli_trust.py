"""The CLI with hostile or careless input: every refusal is one `error:` line with the right
exit code and no traceback, writes nothing, and no credential is stored or printed."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srpo_cli.common import command_line
from srpo_core.config import SEED_MAX, presets_dir, resolve
from srpo_core.errors import UserError
from srpo_core.registry import Registry, RegistryError
from tests.conftest import Cli

SMALL = ["--env", "matrix", "--set", "ppo.num_envs=64", "--set", "run.log_every=5"]
SECRET_URL = "postgresql+psycopg://srpo:hunter2@db.example/srpo"
MASKED_URL = "postgresql+psycopg://srpo:***@db.example/srpo"
NO_DEBUG = " (rerun with --debug for the traceback)"


def db_file(registry_url: str) -> Path:
    return Path(registry_url.removeprefix("sqlite:///"))


def dump(registry_url: str) -> list[str] | None:
    """Every row of the registry as SQL; None when there is no registry file."""
    path = db_file(registry_url)
    if not path.exists():
        return None
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def refused(cli: Cli, registry_url: str, *args: str, code: int = 2) -> str:
    """Run a command that must fail; return its one stderr line."""
    before = dump(registry_url)
    proc = cli(*args, check=False)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert dump(registry_url) == before
    return lines[0]


@pytest.fixture(scope="module")
def populated(tmp_path_factory) -> Path:
    """A registry with one finished run tagged with markup and a URL holding a password, on
    a matrix game whose actions (so metric names) are markup too."""
    root = tmp_path_factory.mktemp("populated")
    tags = ["--tag", "[/x]", "--tag", "[bold]", "--tag", SECRET_URL]
    game = [
        *("--set", "env.reward=[[1, 0], [0, 1]]", "--set", "env.cost=[[0, 0.1], [0, 0.1]]"),
        *("--set", "env.actions=['[/x]', '[bold]']"),
    ]
    proc = Cli(root, f"sqlite:///{root / 'srpo.db'}")(
        "train", *SMALL, "--steps", "640", *tags, *game
    )
    assert "agent0/p/[bold] " in proc.stdout
    return root


@pytest.fixture
def lab(populated, tmp_path, cli) -> Cli:
    """`cli` on a private copy of the populated registry."""
    shutil.copytree(populated, tmp_path, dirs_exist_ok=True)
    return cli


# ---- 1. no tracebacks: internal errors, --debug, interrupts -------------------------------

INJECT = f"""
import sys
import sqlalchemy.exc
from srpo_cli import main

@main.app.command("boom")
def boom(kind: str) -> None:
    if kind == "runtime":
        raise RuntimeError("bad [/x] {SECRET_URL}\\nsecond line")
    if kind == "sqlalchemy":
        raise sqlalchemy.exc.OperationalError("SELECT 1", {{}}, Exception("database is locked"))
    raise KeyboardInterrupt

main.main()
"""


def run_injected(*args: str) -> subprocess.CompletedProcess:
    """The real `main` with an extra command `boom KIND` that fails the way KIND says."""
    return subprocess.run(
        [sys.executable, "-c", INJECT, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "kind, code, line",
    [
        (
            "runtime",
            1,
            f"error: internal error: RuntimeError: bad [/x] {MASKED_URL}{NO_DEBUG}",
        ),
        (
            "sqlalchemy",
            1,
            "error: internal error: OperationalError: (builtins.Exception) database is locked"
            + NO_DEBUG,
        ),
        ("interrupt", 130, "error: interrupted"),
    ],
)
def test_unexpected_errors_are_one_line(kind, code, line):
    proc = run_injected("boom", kind)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.splitlines() == [line]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_debug_shows_the_traceback_before_the_error_line(cli):
    proc = run_injected("--debug", "boom", "runtime")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "hunter2" not in proc.stderr
    assert f"RuntimeError: bad [/x] {MASKED_URL}\nsecond line\n" in proc.stderr
    assert (
        proc.stderr.splitlines()[-1]
        == f"error: internal error: RuntimeError: bad [/x] {MASKED_URL}"
    )
    user_error = cli("--debug", "runs", "list", check=False)
    assert user_error.returncode == 2
    assert "Traceback" in user_error.stderr and "RegistryError" in user_error.stderr
    assert user_error.stderr.splitlines()[-1].startswith("error: no registry at")


def test_sigterm_exits_130_with_one_line_saying_how_to_resume(cli, registry_url):
    checkpoints = ["--set", "run.checkpoint_every=640"]
    proc = cli.popen("train", *SMALL, "--steps", "10000000", *checkpoints, "--json")
    deadline = time.monotonic() + 120
    run_id = None
    while run_id is None and time.monotonic() < deadline:  # training: its first checkpoint
        assert proc.poll() is None, proc.stderr.read()
        try:
            with Registry(registry_url, create=False) as reg:
                runs = reg.list_runs()
                run_id = runs[0].id if runs and reg.checkpoints(runs[0].id) else None
        except RegistryError:  # not created yet
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    with Registry(registry_url, create=False) as reg:
        assert reg.get_run(run_id).status == "interrupted"
        step = reg.latest_checkpoint(run_id).step
    (line,) = stderr.splitlines()
    assert line.startswith(f"error: interrupted: run {run_id} stopped at ")
    assert line.endswith(
        f"(last checkpoint at step {step:,}); continue it with: srpo train --resume {run_id}"
    )
    resumed = cli.popen("train", "--resume", run_id)
    first = resumed.stdout.readline()
    resumed.send_signal(signal.SIGTERM)
    resumed.communicate(timeout=60)
    assert first == f"run {run_id} resumes from its checkpoint at step {step:,}\n"


# ---- 2. secrets ---------------------------------------------------------------------------


def test_stored_command_masks_passwords():
    argv = ["train", "--env", "matrix", "--registry", SECRET_URL, "--tag", "a b"]
    assert command_line(argv) == f"srpo train --env matrix --registry {MASKED_URL} --tag 'a b'"


def test_no_password_stored_or_printed(lab, registry_url):
    (stored,) = lab.json("runs", "list")
    assert SECRET_URL not in stored["command"] and MASKED_URL in stored["command"]
    assert stored["tags"] == ["[/x]", "[bold]", MASKED_URL]
    assert "hunter2" not in "\n".join(dump(registry_url))
    outputs = [
        lab("runs", "show", stored["id"]),
        lab("runs", "show", stored["id"], "--json"),
        lab("ablate", "--env", "matrix", "--dry-run", "--tag", SECRET_URL),
        lab("ablate", "--env", "matrix", "--dry-run", "--tag", SECRET_URL, "--json"),
    ]
    for proc in outputs:
        assert "hunter2" not in proc.stdout + proc.stderr
    assert MASKED_URL in outputs[2].stdout
    line = refused(lab, registry_url, "runs", "show", SECRET_URL)
    assert line.startswith(f"error: no run '{MASKED_URL}'")


def test_train_output_masks_passwords(cli, registry_url):
    proc = cli("train", *SMALL, "--steps", "640", "--tag", SECRET_URL, "--json")
    assert "hunter2" not in proc.stdout + proc.stderr
    assert "hunter2" not in "\n".join(dump(registry_url))


# ---- 3. rich markup in user text -----------------------------------------------------------


def test_runs_tagged_with_markup_list_and_show(lab):
    lab.env["COLUMNS"] = "1000"  # the stored command on one line
    (run,) = lab.json("runs", "list")
    assert run["id"] in lab("runs", "list").stdout
    shown = lab("runs", "show", run["id"])
    assert "--tag '[/x]' --tag '[bold]'" in shown.stdout
    assert "agent0/p/[/x]" in shown.stdout and "agent1/p/[bold]" in shown.stdout
    assert run["id"] in lab("runs", "list", "--tag", "[/x]").stdout


def test_markup_in_arguments_is_a_one_line_error(lab, registry_url):
    assert refused(lab, registry_url, "runs", "show", "[/x]").startswith("error: no run '[/x]'")
    line = refused(lab, registry_url, "train", "--env", "[/bold]")
    assert line.startswith("error: unknown env '[/bold]' (known: ")


def test_markup_in_dry_run_commands_is_printed_verbatim(cli):
    proc = cli("ablate", "--env", "matrix", "--dry-run", "--tag", "[/x]", "--tag", "[bold]")
    assert "--tag '[/x]' --tag '[bold]'" in proc.stdout


# ---- 4. value ranges -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, line",
    [
        (["--tau", "nan"], "algo.tau = nan: must be finite and >= 0"),
        (["--algo", "srpo", "--tau", "inf"], "algo.tau = inf: must be finite and >= 0"),
        (["--eps", "nan"], "algo.eps = nan: must be finite and >= 0"),
        (["--set", "ppo.gamma=inf"], "ppo.gamma = inf: must be in [0, 1]"),
        (["--set", "net.hidden=[0]"], "net.hidden[0] = 0: must be >= 1"),
        (["--set", "net.hidden=[64, -4]"], "net.hidden[1] = -4: must be >= 1"),
        (["--set", "ppo.lr=nan"], "ppo.lr = nan: must be finite and > 0"),
        (["--set", "net.activation='gelu'"], "net.activation = 'gelu': must be one of tanh, relu"),
        (["--seed", str(2**63)], f"run.seed = {2**63}: must be in [0, {SEED_MAX}]"),
        (["--seed", "-1"], f"run.seed = -1: must be in [0, {SEED_MAX}]"),
    ],
)
def test_out_of_range_values_are_refused(cli, registry_url, args, line):
    assert refused(cli, registry_url, "train", *SMALL, *args) == f"error: {line}"
    assert dump(registry_url) is None


@pytest.mark.parametrize(
    "env, key, value, message",
    [
        ("matrix", "run.steps", "0", "run.steps = 0: must be >= 1"),
        ("matrix", "run.threads", "0", "run.threads = 0: must be >= 1"),
        ("matrix", "run.log_every", "0", "run.log_every = 0: must be >= 1"),
        ("matrix", "run.checkpoint_every", "-1", "run.checkpoint_every = -1: must be >= 0"),
        ("matrix", "run.eval_episodes", "-1", "run.eval_episodes = -1: must be >= 0"),
        ("matrix", "run.device", "'tpu'", "run.device = 'tpu': must be one of cpu, cuda, auto"),
        ("matrix", "algo.name", "'ppo'", "algo.name = 'ppo': must be one of ippo, srpo"),
        ("matrix", "algo.tau", "-1", "algo.tau = -1.0: must be finite and >= 0"),
        ("matrix", "algo.eps", "-inf", "algo.eps = -inf: must be finite and >= 0"),
        (
            "matrix",
            "algo.budget",
            "'time'",
            "algo.budget = 'time': must be one of env_steps, hero_samples",
        ),
        ("matrix", "ppo.lr", "0", "ppo.lr = 0.0: must be finite and > 0"),
        ("matrix", "ppo.critic_lr", "-1e-3", "ppo.critic_lr = -0.001: must be finite and >= 0"),
        ("matrix", "ppo.num_envs", "0", "ppo.num_envs = 0: must be >= 1"),
        ("matrix", "ppo.num_steps", "-8", "ppo.num_steps = -8: must be >= 1"),
        ("matrix", "ppo.epochs", "0", "ppo.epochs = 0: must be >= 1"),
        ("matrix", "ppo.minibatches", "0", "ppo.minibatches = 0: must be >= 1"),
        ("matrix", "ppo.gamma", "1.5", "ppo.gamma = 1.5: must be in [0, 1]"),
        ("matrix", "ppo.gae_lambda", "nan", "ppo.gae_lambda = nan: must be in [0, 1]"),
        ("matrix", "ppo.clip", "0", "ppo.clip = 0.0: must be finite and > 0"),
        ("matrix", "ppo.vf_coef", "-0.5", "ppo.vf_coef = -0.5: must be finite and >= 0"),
        ("matrix", "ppo.max_grad_norm", "inf", "ppo.max_grad_norm = inf: must be finite and >= 0"),
        ("matrix", "ppo.adam_eps", "0", "ppo.adam_eps = 0.0: must be finite and > 0"),
        ("matrix", "net.log_std_init", "nan", "net.log_std_init = nan: must be finite"),
        ("matrix", "net.recurrent", "-1", "net.recurrent = -1: must be >= 0"),
        ("matrix", "net.embed", "0", "net.embed = 0: must be >= 1"),
        ("matrix", "train.reward_scale", "0", "train.reward_scale = 0.0: must be finite and > 0"),
        ("quadratic", "env.target", "inf", "env.target = inf: must be finite"),
        ("matrix", "env.reward", "[[1, 0], [0, nan]]", "env.reward[1][1] = nan: must be finite"),
        ("gridworld", "env.bump_cost", "nan", "env.bump_cost = nan: must be finite"),
        ("tag", "env.reward_scale", "nan", "env.reward_scale = nan: must be finite"),
    ],
)
def test_every_key_is_range_checked(env, key, value, message):
    with pytest.raises(UserError) as caught:
        resolve(flags={"env": {"name": env}}, sets=[f"{key}={value}"])
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "sets",
    [
        ["ppo.gamma=0", "ppo.gae_lambda=1", "ppo.critic_lr=0", "ppo.max_grad_norm=0"],
        [f"run.seed={SEED_MAX}", "net.hidden=[1]", "run.checkpoint_every=0"],
        ["net.activation='relu'", "run.eval_episodes=0", "net.log_std_init=-20"],
    ],
)
def test_values_at_the_bounds_are_accepted(sets):
    resolve(flags={"env": {"name": "matrix"}}, sets=sets)


@pytest.mark.parametrize("name", sorted(p.stem for p in presets_dir().glob("*.toml")))
def test_every_preset_still_loads(name, tmp_path):
    # debate needs a model directory, which is all its validation looks at here
    sets = [f"env.model_dir='{tmp_path}'"] if name.startswith("debate") else []
    resolve(presets=[name], sets=sets)


# ---- 5. malformed presets, --set and --limit ------------------------------------------------


@pytest.mark.parametrize(
    "name, content, line",
    [
        (
            "scalar.toml",
            b"env = 5\n",
            "error: preset scalar.toml: 'env' must be a [env] table, got 5",
        ),
        (
            "latin1.toml",
            b'[env]\nname = "caf\xe9"\n',
            "error: preset latin1.toml is not UTF-8 text",
        ),
        ("broken.toml", b"[env\n", "error: preset broken.toml is not valid TOML: "),
    ],
)
def test_malformed_presets_are_one_line(cli, registry_url, tmp_path, name, content, line):
    (tmp_path / name).write_bytes(content)
    assert refused(cli, registry_url, "train", "--preset", name).startswith(line)


def test_a_directory_is_not_a_preset(cli, registry_url, tmp_path):
    (tmp_path / "x.toml").mkdir()
    line = refused(cli, registry_url, "train", "--env", "matrix", "--preset", "x.toml")
    assert line == "error: cannot read preset x.toml: Is a directory"


def test_set_takes_exactly_one_value(cli, registry_url):
    line = refused(cli, registry_url, "train", *SMALL, "--set", "ppo.lr=0.1\nalgo.tau=5")
    assert line == (
        "error: --set expects one section.key=value on one line, got 'ppo.lr=0.1\\nalgo.tau=5'"
    )
    with pytest.raises(UserError, match="one line"):
        resolve(flags={"env": {"name": "matrix"}}, sets=["env.game='a'\r\nalgo.tau=5"])


def test_bench_refuses_bad_seconds_and_unwritable_out(cli, registry_url):
    for seconds in ("nan", "-1", "inf"):
        line = refused(cli, registry_url, "bench", "--env", "matrix", "--seconds", seconds)
        assert line == f"error: --seconds must be finite and > 0, got {float(seconds)}"
    args = ["bench", "--env", "matrix", "--batch", "8", "--seconds", "0.1", "--out", "o[/x].json"]
    line = refused(cli, registry_url, *args)
    assert line == "error: cannot write o[/x].json: No such file or directory"


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_runs_list_limit_must_be_positive(lab, registry_url, limit):
    line = refused(lab, registry_url, "runs", "list", "--limit", limit)
    assert line == f"error: --limit must be >= 1, got {limit}"
