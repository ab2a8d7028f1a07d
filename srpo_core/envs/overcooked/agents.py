"""overcooked-ai's own agents (``GreedyHumanModel`` and friends), built and checkpointed
where the env's state is: the env steps them (`srpo_core.envs.overcooked.scripted` seats
them)."""

from __future__ import annotations

from typing import Any

from srpo_core.envs.overcooked.compat import import_overcooked

PACKAGE_AGENTS: dict[str, dict[str, Any]] = {
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
