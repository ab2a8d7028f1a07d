"""Frozen seats: a Tag runner trained in one run and frozen in another, scripted runners."""

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.agents.scripted import CATALOGUE
from srpo_core.config import resolve
from srpo_core.distributions import Categorical
from srpo_core.envs.tag.env import TagEnv
from srpo_core.envs.tag.runners import FleeRunner
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.rollout import play_episodes
from srpo_core.train import train

TINY = ["ppo.num_envs=2", "ppo.num_steps=16", "run.eval_episodes=2", "net.hidden=[16]"]


def tag_config(*sets: str, algo: str = "ippo", tau: float = 0.0):
    return resolve(
        flags={"env": {"name": "tag"}, "algo": {"name": algo, "tau": tau}, "run": {"steps": 64}},
        sets=[*TINY, *sets],
    )


def test_runner_pretrained_then_frozen_for_chasers(registry_url):
    with Registry(registry_url) as reg:
        pretrain = train(tag_config("env.role='runner'"), reg)
        roles = [p.role for p in reg.policies(run_id=pretrain.run_id)]
        assert roles == ["chaser0", "chaser1", "runner"]
        ref = f"{pretrain.run_id}/runner"
        chasers = train(tag_config(f"env.runner='{ref}'", algo="srpo", tau=10.0), reg)
        assert [p.role for p in reg.policies(run_id=chasers.run_id)] == ["chaser0", "chaser1"]
        state = checkpoints.from_bytes(reg.read_checkpoint(reg.latest_checkpoint(chasers.run_id)))
        assert set(state["policies"]) == {"chaser0", "chaser1"}  # the runner never learned
        # SRPO replaced only the partner chaser, never the frozen runner
        assert set(state["algo"]["adversaries"][0]) == {1}
        assert chasers.env_steps == 2 * chasers.hero_samples  # one rollout per hero


@pytest.mark.parametrize(
    "runner, message",
    [
        ("", "needs a frozen runner"),
        ("scripted:tag/nope", "unknown scripted policy"),
        ("feedbeef/runner", "no policy"),
    ],
)
def test_bad_runner_refs_are_refused(registry_url, runner, message):
    with Registry(registry_url) as reg, pytest.raises(UserError, match=message):
        train(tag_config(f"env.runner='{runner}'"), reg)


def test_a_chaser_policy_does_not_fit_the_runner_seat(registry_url):
    with Registry(registry_url) as reg:
        pretrain = train(tag_config("env.role='runner'"), reg)
        with pytest.raises(UserError, match="expects 14 observations"):
            train(tag_config(f"env.runner='{pretrain.run_id}/chaser0'"), reg)
        assert len(reg.list_runs()) == 1  # nothing recorded for the refused run


def test_flee_runner_moves_away_from_the_nearest_chaser():
    runner = FleeRunner(num_obstacles=2, num_chasers=2, noise=0.0, activity=1.0)
    obs = torch.zeros(1, 12)
    obs[0, 8:10] = torch.tensor([0.3, 0.05])  # chaser 0 to the right (x+), close
    obs[0, 10:12] = torch.tensor([0.0, 0.9])  # chaser 1 far above
    assert runner.distribution(obs).probs[0].argmax() == 1  # left: away from chaser 0
    obs[0, 8:10] = torch.tensor([0.0, -0.2])  # chaser 0 below
    assert runner.distribution(obs).probs[0].argmax() == 4  # up


class Idle:
    def distribution(self, obs, mask=None):
        return Categorical(torch.zeros(obs.shape[0], 5))


def test_scripted_runner_plays_full_episodes_and_is_registered(registry_url):
    config = tag_config("env.runner='scripted:tag/flee-noisy'")
    with Registry(registry_url) as reg:
        result = train(config, reg)
        scripted = reg.get_policy("scripted:tag/flee-noisy")
        assert scripted.kind == "scripted" and scripted.spec["params"]["noise"] == 0.3
        assert result.metrics["eval/length"] == 100.0
    env = TagEnv(config.env, num_envs=3, device="cpu", seed=0)
    flee = CATALOGUE["tag/flee"].build(config.env)
    episodes = play_episodes(env, [Idle(), Idle(), flee], torch.Generator().manual_seed(0))
    assert episodes.count == 3 and bool((episodes.length == 100).all())
