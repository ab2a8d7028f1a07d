"""What the CLI prints when stdout is a pipe or a file (nohup, cluster logs, `| cat`): plain
progress lines, tables with full values; and `--version`."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

LINE = re.compile(
    r"run (?P<run>[0-9a-f]{12})  (?P<done>[\d,]+)/(?P<budget>[\d,]+) steps \(\d+%\)  "
    r"[\d,]+ SPS  return (-|-?\d+\.\d{3})  elapsed \d+:\d\d:\d\d  ETA (-|\d+:\d\d:\d\d)"
)


def test_a_run_logged_to_a_file_shows_progress_lines(cli) -> None:
    args = ["--env", "matrix", "--steps", "20000", "--set", "ppo.num_envs=64"]
    proc = cli("train", *args, "--log-every-s", "0")
    lines = [LINE.fullmatch(line) for line in proc.stdout.splitlines()]
    progress = [m for m in lines if m]
    assert len(progress) >= 3
    done = [int(m["done"].replace(",", "")) for m in progress]
    assert done[0] == 0 and done == sorted(done) and done[-1] >= 20000
    assert {m["budget"] for m in progress} == {"20,000"}
    (run_id,) = {m["run"] for m in progress}
    assert f"run {run_id} finished: {done[-1]:,} env steps" in proc.stdout


def test_lines_are_spaced_by_log_every_s(cli) -> None:
    proc = cli("train", "--env", "matrix", "--steps", "20000", "--log-every-s", "3600")
    progress = [line for line in proc.stdout.splitlines() if LINE.fullmatch(line)]
    # the first report, then nothing for an hour, except the line of the finished budget
    assert len(progress) == 2


def test_json_output_has_no_progress_lines(cli) -> None:
    assert set(cli.json("train", "--env", "matrix", "--steps", "2000", "--log-every-s", "0"))


def test_log_every_s_must_be_seconds(cli, tmp_path) -> None:
    proc = cli("train", "--env", "matrix", "--log-every-s", "nan", check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: --log-every-s must be a number of seconds >= 0, got nan"
    ]
    assert not (tmp_path / "srpo.db").exists()


def test_piped_tables_keep_full_values(cli) -> None:
    tags = ["--tag", "a-long-tag-that-would-not-fit-in-a-narrow-column"]
    run_id = cli.json("train", "--env", "gridworld", "--steps", "1024", *tags)["run_id"]
    cli.env["COLUMNS"] = "40"  # a narrow terminal setting must not cut a pipe's values
    listing = cli("runs", "list").stdout
    assert run_id in listing and "gridworld" in listing and "finished" in listing
    assert "…" not in listing
    shown = cli("runs", "show", run_id).stdout
    assert "a-long-tag-that-would-not-fit-in-a-narrow-column" in shown and "…" not in shown


def on_a_terminal(cli, columns: int, *args: str) -> str:
    """What ``srpo ARGS`` prints to a terminal ``columns`` wide (a pseudo-terminal)."""
    main, child = pty.openpty()
    env = {**cli.env, "COLUMNS": str(columns), "TERM": "xterm", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srpo_cli.main", *args], cwd=cli.cwd, env=env, stdout=child
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;]*m", "", shown)  # bold headers


def test_a_narrow_terminal_hides_columns_instead_of_cutting_values(cli) -> None:
    args = ["--env", "gridworld", "--steps", "1024", "--set", "algo.eps=0.0123"]
    run_id = cli.json("train", *args)["run_id"]
    wide = on_a_terminal(cli, 200, "runs", "list")
    assert run_id in wide and "0.0123" in wide and "hidden" not in wide
    narrow = on_a_terminal(cli, 60, "runs", "list")
    assert max(len(line) for line in narrow.splitlines()) <= 60
    assert run_id in narrow and "finished" in narrow and "…" not in narrow
    assert "0.0123" not in narrow  # eps, hidden
    assert "hidden to fit the terminal: created, eps" in " ".join(narrow.split())


def test_version(cli) -> None:
    from srpo_core.registry.provenance import package_version

    assert cli("--version").stdout == f"srpo {package_version()}\n"


def test_a_sweep_logged_to_a_file_shows_its_state(cli) -> None:
    grid = ["--env", "matrix", "--tau", "0,10", "--eps", "0.2", "--steps", "2000"]
    proc = cli("ablate", *grid, "--name", "logged", "--workers", "1", "--log-every-s", "0")
    states = [line for line in proc.stdout.splitlines() if line.startswith("ablation logged: ")]
    assert states[-1] == "ablation logged: 2 runs: 2 finished; 4,096 env steps trained"
    assert "pending" in states[0] or "running" in states[0]
    assert "ablation logged" in proc.stdout.split(states[-1])[-1]  # then the final table


@pytest.mark.parametrize(
    ("env", "main_metric"), [("hanabi", "eval/score"), ("ipd", "eval/learners/cooperation")]
)
def test_the_summary_shows_each_envs_main_metric(cli, env: str, main_metric: str) -> None:
    tiny = ["--set", "ppo.num_envs=4", "--set", "ppo.num_steps=8", "--set", "run.eval_episodes=2"]
    proc = cli("train", "--env", env, "--steps", "10", *tiny)
    summary = proc.stdout.splitlines()[-1]
    assert re.search(rf"(^|  ){re.escape(main_metric)} -?\d+\.\d{{4}}(  |$)", summary.strip())


@pytest.mark.parametrize("command", [["runs", "list"], ["ablate"], ["zoo", "delete"], []])
def test_flags_take_no_value_in_help(cli, command) -> None:
    shown = cli(*command, "--help").stdout
    flags = [
        line for line in shown.splitlines() if re.search(r"--(json|dry-run|yes|debug)\b", line)
    ]
    assert flags and not any("<bool>" in line for line in flags)
