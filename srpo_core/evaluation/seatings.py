"""What cross-play plays: a seating (one agent policy in one seat, pinned partners in
the other learning seats), the protocol every seating of one call shares, and the seats
of an env config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from srpo_core.canonical import canonical_json
from srpo_core.envs import env_spec
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.zoo.games import config_hash
from srpo_core.zoo.pinning import Pinned

PROTOCOL = 1
"""Bumped whenever evaluation semantics change, so stale cached results are not reused."""


@dataclass(frozen=True)
class Seating:
    agent: Pinned
    seat: str
    partners: tuple[tuple[str, Pinned], ...]
    """(seat, policy) for every other learning seat."""

    def key(self, env_hash: str, episodes: int, seed: int) -> str:
        return sha256_hex(
            canonical_json(
                {
                    "protocol": PROTOCOL,
                    "env": env_hash,
                    "episodes": episodes,
                    "seed": seed,
                    "seat": self.seat,
                    "agent": self.agent.to_dict(),
                    "partners": {s: p.to_dict() for s, p in self.partners},
                }
            ).encode()
        )

    @property
    def partner_label(self) -> str:
        labels = dict.fromkeys(p.label for _, p in self.partners)
        return "+".join(labels)


@dataclass(frozen=True)
class Setup:
    """The evaluation protocol shared by every seating of one cross-play call."""

    env_values: dict[str, Any]
    episodes: int
    seed: int
    device: str = "cpu"

    @property
    def env_hash(self) -> str:
        return config_hash(self.env_values)


@dataclass(frozen=True)
class EnvSeats:
    agents: tuple[str, ...]
    learning: tuple[str, ...]
    """Seats that hold agents and partners (not frozen by the env config)."""


def env_seats(env_config: Any) -> EnvSeats:
    seats = env_config.SEATS  # a family without a batched env names them
    agents = seats if seats else env_spec(env_config).agents
    frozen = env_config.frozen_seats()
    return EnvSeats(agents, tuple(a for a in agents if a not in frozen))
