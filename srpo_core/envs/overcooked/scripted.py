"""overcooked-ai's own scripted agents as seats (``scripted:overcooked/NAME``).

The package's agents (``GreedyHumanModel`` and friends, ``overcooked_ai_py.agents.agent``)
choose actions from the full ``OvercookedState`` with the layout's planner, not from an
observation vector. That state lives in the env (in its worker processes), so the agent
runs there: `ScriptedSeat.bind` (called by `srpo_core.rollout` on every seat that has
``bind`` before it acts in an env) attaches the agent to its seat of the env, which then
computes its action after every step and reset, in the workers; ``distribution(obs)``
returns that action as a deterministic (one-hot) Categorical. One agent object per sub-env
and episode, so history-dependent agents (the greedy model's un-sticking) see only their
own episode; their random choices use numpy's global RNG, which the env swaps per sub-env
(see `srpo_core.envs.overcooked.env`), so they are seeded and resumable.

Agents (keyword arguments of the package's classes):

- ``greedy``: ``GreedyHumanModel`` with its defaults: the best-looking subtask (onion to
  the pot, start cooking, fetch a dish, serve), shortest path, random un-sticking when both
  agents stood still. Plays layouts whose only order is a 3-onion soup.
- ``greedy-boltzmann``: the same with Boltzmann-rational choices of subtask goal and step
  (temperature 1), a noisier, more human-like partner.
- ``stay``: ``StayAgent``, never moves (a partner that leaves all the work to you).

(The package's ``RandomAgent`` fails on numpy 2; the generic ``random:overcooked/uniform``
policy plays uniformly random actions.)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

from srpo_core.distributions import Categorical
from srpo_core.envs.family import Scripted
from srpo_core.envs.overcooked.agents import PACKAGE_AGENTS
from srpo_core.envs.overcooked.compat import import_overcooked
from srpo_core.envs.overcooked.env import OvercookedBatchedEnv
from srpo_core.envs.overcooked.torch_env import OvercookedTorchEnv
from srpo_core.errors import UserError


class ScriptedSeat:
    """An overcooked-ai agent in a seat; acts through the env it is bound to."""

    def __init__(self, name: str, env_config: Any) -> None:
        if name not in PACKAGE_AGENTS:
            raise UserError(
                f"unknown overcooked agent '{name}' (known: {', '.join(PACKAGE_AGENTS)})"
            )
        self.name = name
        self.params = PACKAGE_AGENTS[name]
        if self.params["class"] == "GreedyHumanModel":
            layout = import_overcooked("utils").read_layout_dict(env_config.layout)
            orders = [list(o["ingredients"]) for o in layout.get("start_all_orders", [])]
            if orders != [["onion"] * 3]:
                raise UserError(
                    f"scripted:overcooked/{name} plays only layouts whose one order is a "
                    f"3-onion soup, not {env_config.layout}"
                )
        self._env: weakref.ref | None = None
        self._seat = -1

    def bind(self, env: Any, seat: int) -> None:
        """Act in ``env`` from now on, as player ``seat`` (rollout calls this)."""
        if not isinstance(env, (OvercookedBatchedEnv, OvercookedTorchEnv)):
            raise UserError(f"scripted:overcooked/{self.name} plays only overcooked envs")
        env.attach_scripted(seat, self.name, self.params)
        self._env, self._seat = weakref.ref(env), seat

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Categorical:
        env = self._env() if self._env is not None else None
        if env is None:
            raise RuntimeError(
                f"scripted:overcooked/{self.name} is not bound to an env: call bind(env, seat) "
                "first (rollout.collect and rollout.play_episodes do)"
            )
        actions = env.scripted_actions(self._seat, obs).to(obs.device)
        logits = torch.full((len(actions), 6), torch.finfo(torch.float32).min, device=obs.device)
        logits[torch.arange(len(actions), device=obs.device), actions] = 0.0
        return Categorical(logits, mask)


def _agent(name: str) -> Callable[[Any], ScriptedSeat]:
    """overcooked-ai's own agent ``name``, acting inside the env it is bound to."""

    def build(env_config: Any) -> ScriptedSeat:
        return ScriptedSeat(name, env_config)

    return build


SCRIPTED: dict[str, Scripted] = {
    name: Scripted("overcooked", "agent", _agent(name), params)
    for name, params in PACKAGE_AGENTS.items()
}
