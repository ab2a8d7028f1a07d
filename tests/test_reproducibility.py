"""Every env family: the same seed gives the same metrics; another seed does not."""

import pytest

from srpo_core.config import resolve
from srpo_core.registry import Registry
from srpo_core.train import train

CASES = {
    "gridworld": ["ppo.num_envs=4", "ppo.num_steps=32", "run.eval_episodes=4"],
    "tag": [
        "ppo.num_envs=2",
        "ppo.num_steps=16",
        "run.eval_episodes=2",
        "net.hidden=[16]",
        "env.runner='scripted:tag/flee-noisy'",
    ],
    "quadratic": ["ppo.num_envs=64", "run.eval_episodes=16"],
}


@pytest.mark.parametrize("env", sorted(CASES))
def test_same_seed_same_metrics(registry_url, env):
    def run(seed: int):
        config = resolve(
            flags={
                "env": {"name": env},
                "algo": {"name": "srpo", "tau": 2.0},
                "run": {"seed": seed, "steps": 256},
            },
            sets=CASES[env],
        )
        with Registry(registry_url) as reg:
            frame = reg.metrics(train(config, reg).run_id)
        return frame[~frame.key.str.startswith("perf/")].reset_index(drop=True)

    first = run(1)
    assert first.equals(run(1))
    assert not first.equals(run(2))
