"""Matrix games: dynamics by hand, and SRPO / IPPO training against the paper's RQE table."""

import pytest
import torch

from srpo_core.config import resolve
from srpo_core.envs.matrix.env import MatrixEnv
from srpo_core.policy_loading import load_policy
from srpo_core.registry import Registry
from srpo_core.train import train

# srpo-notes section 4, collaborate/defect with eps = 0.2: the unique RQE at tau = 10, and
# the free-riding QRE at tau = 0.
P_C_TAU_10 = 0.7942
FREE_RIDING_TAU_0 = 0.4 * (0.8833 - 0.1952)


def test_collab_defect_payoffs_by_hand():
    config = resolve(flags={"env": {"name": "matrix"}})
    env = MatrixEnv(config.env, num_envs=4, device="cpu", seed=0)
    a0, a1 = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])  # C=0, D=1
    step = env.step([a0, a1])
    utility0 = (step.reward[0] - step.cost[0]).tolist()
    assert utility0 == pytest.approx([0.6, 0.6, 1.0, 0.0])  # (C,C) (C,D) (D,C) (D,D)
    assert step.cost[1].tolist() == pytest.approx([0.4, 0.0, 0.4, 0.0])
    assert step.done.all()


def test_payoff_table_from_a_preset():
    config = resolve(presets=["matrix-stag-hunt"])
    env = MatrixEnv(config.env, num_envs=2, device="cpu", seed=0)
    step = env.step([torch.tensor([0, 1]), torch.tensor([0, 0])])
    assert step.reward[0].tolist() == [4.0, 1.0]
    assert step.cost[0].tolist() == [0.5, 0.0] and step.cost[1].tolist() == [0.5, 0.5]
    assert env.action_spaces[0].labels == ("Stag", "Hare")


def final_p_collaborate(url: str, algo: str, tau: float, seed: int, iterations: int):
    per_iteration = 1024 * (2 if algo == "srpo" else 1)
    config = resolve(
        flags={
            "env": {"name": "matrix", "game": "collab-defect"},
            "algo": {"name": algo, "tau": tau, "eps": 0.2},
            "run": {"seed": seed, "steps": iterations * per_iteration, "eval_episodes": 0},
        },
        sets=["run.log_every=50"],
    )
    with Registry(url) as reg:
        run_id = train(config, reg).run_id
        probs = [
            float(load_policy(reg, f"{run_id}/agent{i}").distribution(torch.ones(1, 1)).probs[0, 0])
            for i in (0, 1)
        ]
    return probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_srpo_reaches_the_risk_averse_equilibrium(registry_url, seed):
    p0, p1 = final_p_collaborate(registry_url, "srpo", 10.0, seed, iterations=300)
    assert abs(p0 - P_C_TAU_10) < 0.05 and abs(p1 - P_C_TAU_10) < 0.05, (p0, p1)


def test_ippo_free_rides_in_most_seeds(registry_url):
    degrees = [
        0.4 * abs(p0 - p1)
        for p0, p1 in (final_p_collaborate(registry_url, "ippo", 0.0, s, 300) for s in range(3))
    ]
    assert sum(d > 0.2 for d in degrees) >= 2, degrees
    assert max(degrees) == pytest.approx(FREE_RIDING_TAU_0, abs=0.05), degrees


def test_checkpoints_land_every_checkpoint_every_steps(registry_url):
    """1024 games per iteration, a checkpoint every 2048 steps: at 2048, 4096, 6144, 8192."""
    config = resolve(
        flags={"env": {"name": "matrix"}, "run": {"steps": 8192}},
        sets=["run.checkpoint_every=2048", "run.eval_episodes=0"],
    )
    with Registry(registry_url) as reg:
        run = train(config, reg).run_id
        assert [c.step for c in reg.checkpoints(run)] == [2048, 4096, 6144, 8192]
