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
(see `srpo_core.envs.overcooked`), so they are seeded and resumable.

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
from typing import Any

import torch

from srpo_core.agents.distributions import Categorical
from srpo_core.envs.overcooked_compat import import_overcooked
from srpo_core.errors import UserError

AGENTS: dict[str, dict[str, Any]] = {
    "greedy": {"class": "GreedyHumanModel"},
    "greedy-boltzmann": {
        "class": "GreedyHumanModel",
        "hl_boltzmann_rational": True,
        "ll_boltzmann_rational": True,
        "hl_temp": 1.0,
        "ll_temp": 1.0,
    },
    "stay": {"class": "StayAgent"},
}


def build_agent(name: str, params: dict[str, Any], mlam: Any, seat: int) -> Any:
    """A fresh overcooked-ai agent playing player ``seat`` (runs where the env's state is)."""
    agents = import_overcooked("agents.agent")
    kwargs = {k: v for k, v in params.items() if k != "class"}
    cls = getattr(agents, params["class"])
    agent = cls(mlam, **kwargs) if params["class"] == "GreedyHumanModel" else cls(**kwargs)
    agent.set_agent_index(seat)
    agent.set_mdp(mlam.mdp)
    return agent


def agent_state(agent: Any) -> dict[str, Any]:
    """What an agent remembers between steps, as plain data (checkpoints)."""
    if hasattr(agent, "prev_state"):  # GreedyHumanModel's un-sticking history
        prev = agent.prev_state
        return {"prev_state": None if prev is None else prev.to_dict()}
    return {}


def load_agent_state(agent: Any, state: dict[str, Any], mdp_mod: Any) -> None:
    if "prev_state" in state:
        prev = state["prev_state"]
        agent.prev_state = None if prev is None else mdp_mod.OvercookedState.from_dict(prev)


class ScriptedSeat:
    """An overcooked-ai agent in a seat; acts through the env it is bound to."""

    def __init__(self, name: str, env_config: Any) -> None:
        if name not in AGENTS:
            raise UserError(f"unknown overcooked agent '{name}' (known: {', '.join(AGENTS)})")
        self.name = name
        self.params = AGENTS[name]
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
        from srpo_core.envs.overcooked import OvercookedBatchedEnv
        from srpo_core.envs.overcooked_torch import OvercookedTorchEnv

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
