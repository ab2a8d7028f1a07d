"""A first experiment from Python: IPPO and SRPO on the collaborate/defect matrix game,
then every trained agent against a partner of our own that always defects.

    python docs/examples/first_experiment.py [REGISTRY_URL]

(default: a fresh SQLite file in a temporary folder). Cooperating costs the cooperator 0.4
and the team earns 1 when anyone cooperates (srpo-notes section 4). IPPO agents trained
together learn that one of them may free-ride; SRPO agents (tau 10, eps 0.2) learn to
cooperate with probability near the risk-averse equilibrium (0.79), so a defecting partner
costs them little. The runs are ordinary registry runs: `srpo runs list --registry URL`.
"""

from __future__ import annotations

import sys
import tempfile

import torch

from srpo_core import api
from srpo_core.distributions import Categorical


class AlwaysDefect:
    """A scripted partner: D (action 1) in every state."""

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        logits = torch.tensor([-30.0, 0.0], device=obs.device)
        return Categorical(logits.expand(*obs.shape[:-1], 2), mask)


def main(url: str) -> None:
    defector = api.add_partner("matrix", "always-defect", lambda env_config: AlwaysDefect())
    settings = {
        "ippo": ["algo.name='ippo'"],
        "srpo": ["algo.name='srpo'", "algo.tau=10.0", "algo.eps=0.2"],
    }
    with api.Registry(url) as registry:
        print(f"{'method':6} {'seed':>4} {'self-play':>10} {'vs always-defect':>17}")
        for method, sets in settings.items():
            config = api.resolve(presets=["matrix"], sets=[*sets, "run.steps=100000"])
            runs = api.train_population([api.with_seed(config, s) for s in (0, 1)], registry)
            for seed, run in enumerate(runs):
                own = api.play(
                    registry,
                    config.env,
                    {"agent0": f"{run.run_id}/agent0", "agent1": f"{run.run_id}/agent1"},
                    episodes=1000,
                )
                against = api.play(
                    registry,
                    config.env,
                    {"agent0": f"{run.run_id}/agent0", "agent1": defector},
                    episodes=1000,
                )
                print(
                    f"{method:6} {seed:>4} {own['return']:>10.3f} {against['agent0/return']:>17.3f}"
                )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(f"sqlite:///{folder}/srpo.db")
