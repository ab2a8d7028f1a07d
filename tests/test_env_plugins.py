"""A user's env family in a package of its own, registered through the ``srpo.envs`` entry
point group: `srpo train --env NAME` trains it (a real subprocess, a real installed-package
layout on the path); a bad registration is one error line."""

import os
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Cli

FAMILY = """
from dataclasses import dataclass
from pathlib import Path

from srpo_core.envs.family import EnvConfig, EnvFamily
from srpo_core.envs.matrix.env import MatrixEnv, MatrixEnvConfig


@dataclass
class StagConfig(EnvConfig):
    name: str = "stag"
    hare: float = 0.5


def make(config, num_envs, device, seed):
    reward = [[1.0, 0.0], [config.hare, config.hare]]
    game = MatrixEnvConfig(game="stag", reward=reward, cost=[[0.0, 0.0], [0.0, 0.0]])
    return MatrixEnv(game, num_envs, device, seed)


FAMILY = EnvFamily("stag", StagConfig, make, str(Path(__file__).with_name("stag.toml")))
NOT_A_FAMILY = 42
CLASH = EnvFamily("matrix", StagConfig, make, "matrix")
"""
PRESET = """
[env]
name = "stag"

[algo]
name = "ippo"
tau = 0.0

[run]
steps = 2048
eval_episodes = 16

[ppo]
num_envs = 64
num_steps = 16
"""


def install(site: Path, value: str) -> None:
    """A package `stag_family` and its dist-info with one ``srpo.envs`` entry point, the
    layout pip leaves in site-packages."""
    package = site / "stag_family"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(FAMILY))
    (package / "stag.toml").write_text(PRESET)
    info = site / "stag_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stag-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[srpo.envs]\nstag = {value}\n")


def plugin_cli(tmp_path: Path, value: str) -> Cli:
    site = tmp_path / "site"
    install(site, value)
    cli = Cli(tmp_path, str(tmp_path / "srpo.db"))
    cli.env["PYTHONPATH"] = os.pathsep.join([str(site), cli.env.get("PYTHONPATH", "")])
    return cli


def test_a_registered_family_trains_from_its_own_default_preset(tmp_path):
    cli = plugin_cli(tmp_path, "stag_family:FAMILY")
    out = cli.json("train", "--env", "stag", "--set", "env.hare=0.25", "--seed", "3")
    assert out["status"] == "finished"
    shown = cli("runs", "show", out["run_id"], "--json").stdout
    assert '"hare": 0.25' in shown and '"name": "stag"' in shown


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("stag_family:NOT_A_FAMILY", "is not an EnvFamily"),
        ("stag_family:MISSING", "cannot be loaded: AttributeError"),
        ("stag_family:CLASH", "an env family named matrix exists already"),
    ],
)
def test_a_bad_registration_is_one_error_line(tmp_path, value, message):
    cli = plugin_cli(tmp_path, value)
    proc = cli("train", "--env", "stag", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "srpo.db").exists()
