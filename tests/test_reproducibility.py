"""Every env family: the same seed gives the same metrics; another seed does not."""

import pytest
import torch

from srpo_core.config import resolve
from srpo_core.policy_loading import load_policy
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


@pytest.mark.parametrize("algo", ["ippo", "srpo"])
def test_parallel_updates_change_nothing(registry_url, algo):
    # The heroes' updates in threads side by side give the numbers of one after the other,
    # with several minibatches so that every update draws from its RNG.
    def run(parallel: bool):
        config = resolve(
            flags={
                "env": {"name": "gridworld"},
                "algo": {"name": algo, "tau": 2.0 if algo == "srpo" else 0.0},
                "run": {"seed": 3, "steps": 1024, "parallel_updates": parallel},
            },
            sets=[*CASES["gridworld"], "ppo.minibatches=4"],
        )
        with Registry(registry_url) as reg:
            run_id = train(config, reg).run_id
            frame = reg.metrics(run_id)
            weights = [load_policy(reg, f"{run_id}/{role}") for role in ("agent0", "agent1")]
        frame = frame[~frame.key.str.startswith("perf/")].reset_index(drop=True)
        return frame, [w.state_dict() for w in weights]

    (frame, weights), (frame_par, weights_par) = run(False), run(True)
    assert frame.equals(frame_par)
    for a, b in zip(weights, weights_par, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
