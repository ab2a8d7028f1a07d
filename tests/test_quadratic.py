"""Two robots pushing: SRPO's Gaussian policies approach the closed-form RQE."""

import pytest
import torch

from srpo_core.config import resolve
from srpo_core.envs.quadratic.env import QuadraticEnv, rqe_mean
from srpo_core.policy_loading import load_policy
from srpo_core.registry import Registry
from srpo_core.train import train


def test_rewards_by_hand():
    config = resolve(flags={"env": {"name": "quadratic"}})
    env = QuadraticEnv(config.env, num_envs=2, device="cpu", seed=0)
    step = env.step([torch.tensor([[0.5], [1.0]]), torch.tensor([[0.25], [-1.0]])])
    assert step.reward[0].tolist() == pytest.approx([-0.5 * 0.25**2, -0.5])
    assert step.cost[0].tolist() == pytest.approx([0.125, 0.5])
    assert step.cost[1].tolist() == pytest.approx([0.03125, 0.5])


def test_closed_form_from_the_notes():
    # srpo-notes section 4 with target 1, eps 1: tau 0 -> 1/3, tau 1 -> 0.4, tau 1.9 -> 0.4878
    assert rqe_mean(1.0, 0.0, 1.0) == pytest.approx(0.3333, abs=1e-4)
    assert rqe_mean(1.0, 1.0, 1.0) == pytest.approx(0.4)
    assert rqe_mean(1.0, 1.9, 1.0) == pytest.approx(0.4878, abs=1e-4)


@pytest.mark.parametrize("tau", [1.0, 1.9])
def test_srpo_mean_approaches_the_rqe(registry_url, tau):
    config = resolve(
        flags={
            "env": {"name": "quadratic"},
            "algo": {"name": "srpo", "tau": tau, "eps": 1.0},
            "run": {"seed": 0, "eval_episodes": 0},
        },
        sets=["run.log_every=100"],
    )
    target = rqe_mean(1.0, tau, 1.0)
    with Registry(registry_url) as reg:
        run_id = train(config, reg).run_id
        means = []
        for role in ("agent0", "agent1"):
            dist = load_policy(reg, f"{run_id}/{role}").distribution(torch.ones(1, 1))
            means.append(float(dist.mean))
            assert float(dist.log_std.exp() ** 2) == pytest.approx(0.5, rel=0.10)  # eps / 2
    # The pair's mean action is pinned tightly. How the pair splits it is not, near
    # tau * eps = 2: each adversary shifts its partner by tau*eps/2 / (1 - tau*eps/2) (19x
    # at tau 1.9) times the sum's miss, so the sum feels a 20x force (and 20x the sampling
    # noise) while the difference between the agents feels 1x; seeds split 0.4/0.58.
    assert sum(means) / 2 == pytest.approx(target, rel=0.03)
    spread = 0.05 if tau <= 1 else 0.25
    assert means == pytest.approx([target, target], rel=spread)
