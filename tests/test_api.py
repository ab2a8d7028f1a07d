"""The Python API (`srpo_core.api`) and its runnable example, as a user would run them."""

import subprocess
import sys
from pathlib import Path

import pytest

from srpo_core import api
from srpo_core.agents.scripted import CATALOGUE
from srpo_core.errors import UserError

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "first_experiment.py"


def test_the_example_runs_and_srpo_copes_with_a_defector(tmp_path):
    url = f"sqlite:///{tmp_path / 'srpo.db'}"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), url], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("ippo", "0"),
        ("ippo", "1"),
        ("srpo", "0"),
        ("srpo", "1"),
    ]
    # An SRPO agent cooperates with probability near the RQE's 0.794 (srpo-notes section 4):
    # against a partner that always defects its return is about 0.794 * (1 - 0.4) = 0.48.
    for _, _, _, against in rows[2:]:
        assert 0.35 < float(against) < 0.6
    with api.Registry(url, create=False) as reg:
        assert len(reg.list_runs()) == 4


def test_play_is_seeded_and_checks_its_seats(registry_url):
    config = api.resolve(presets=["matrix"], sets=["run.steps=2048", "run.eval_episodes=0"])
    with api.Registry(registry_url) as reg:
        run = api.train(config, reg)
        seats = {"agent0": f"{run.run_id}/agent0", "agent1": "random:matrix/uniform"}
        first = api.play(reg, config.env, seats, episodes=64, seed=1)
        assert first == api.play(reg, config.env, seats, episodes=64, seed=1)
        assert first != api.play(reg, config.env, seats, episodes=64, seed=2)
        assert set(first) >= {"return", "agent0/return", "agent1/cost", "free_riding"}
        at_step = dict(seats, agent0=f"{run.run_id}/agent0@{run.env_steps}")
        assert api.play(reg, config.env, at_step, episodes=64, seed=1) == first
        with pytest.raises(UserError, match="seat agent1 has no policy"):
            api.play(reg, config.env, {"agent0": seats["agent0"]})
        with pytest.raises(UserError, match="no seat 'runner'"):
            api.play(reg, config.env, {**seats, "runner": "x"})


@pytest.fixture
def catalogue():
    """The scripted catalogue, as it was before the test once it ends."""
    before = dict(CATALOGUE)
    yield CATALOGUE
    CATALOGUE.clear()
    CATALOGUE.update(before)


def test_a_partner_added_in_python_plays_and_names_are_unique(registry_url, catalogue):
    class Uniform:
        def distribution(self, obs, mask=None):
            from srpo_core.distributions import Categorical

            return Categorical(obs.new_zeros(*obs.shape[:-1], 2), mask)

    ref = api.add_partner("matrix", "coin", lambda env_config: Uniform(), params={"p": 0.5})
    assert ref == "scripted:matrix/coin" and "matrix/coin" in catalogue
    with pytest.raises(UserError, match="already exists"):
        api.add_partner("matrix", "coin", lambda env_config: Uniform())
    config = api.resolve(presets=["matrix"])
    with api.Registry(registry_url) as reg:
        coin = api.play(reg, config.env, {"agent0": ref, "agent1": ref}, episodes=4000)
        uniform = "random:matrix/uniform"
        same = api.play(reg, config.env, {"agent0": uniform, "agent1": uniform}, episodes=4000)
    # both play each action with probability 1/2: cost 0.4 / 2 each, reward 3/4
    for scores in (coin, same):
        assert scores["team_reward"] == pytest.approx(0.75, abs=0.03)
        assert scores["agent0/cost"] == pytest.approx(0.2, abs=0.02)
