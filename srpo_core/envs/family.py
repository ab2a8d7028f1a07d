"""What an env family is: its `EnvFamily` record and the `EnvConfig` contract of its config.

A family lives in one package (``srpo_core/envs/<family>/``, or a user's own package
registered through the ``srpo.envs`` entry point group): its config, its env, its scripted
partners, and a ``FAMILY`` record in its ``__init__.py`` that `srpo_core.envs` registers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from srpo_core.envs.base import BatchedEnv, EnvSpec


class EnvConfig:
    """The contract every family's config dataclass keeps (it subclasses this and has a
    ``name`` field); the defaults are those of a family without the feature."""

    NON_GAME_KEYS: ClassVar[tuple[str, ...]] = ()
    """Keys that do not define the game (worker counts, backends): zoos and cross-play
    treat two configs that differ only there as one game."""
    SEATS: ClassVar[tuple[str, ...] | None] = None
    """The seats of a family without a batched env (the LLM debate); None: the env's
    ``agents``."""

    def validate(self) -> None:
        """Refuse (UserError) values that the per-key ranges cannot express."""

    def frozen_seats(self) -> dict[str, str]:
        """Seats played by a policy ref that does not learn in this run (a Tag runner)."""
        return {}

    def notice(self) -> str | None:
        """One line to show before a run starts, for a default the family chose."""
        return None

    def evaluated(self) -> Self:
        """The config evaluations play, where it differs from training's (training
        schedules such as reward shaping run to their end)."""
        return self


@dataclass(frozen=True)
class Scripted:
    """A scripted partner of a family, addressed as ``scripted:ENV/NAME``."""

    env: str
    seat: str
    """The seat (role) it is written for."""
    build: Callable[[Any], Any]
    """build(env_config) -> an object with distribution(obs, mask)."""
    params: dict


@dataclass(frozen=True)
class EnvFamily:
    name: str
    config: type[EnvConfig]
    make: Callable[..., BatchedEnv]
    """make(env_config, num_envs, device, seed) -> BatchedEnv"""
    default_preset: str
    spec: Callable[[Any], EnvSpec] | None = None
    """spec(env_config) -> its seats, observation sizes and action spaces, without building a
    batched env; None: read from a one-env instance (`srpo_core.envs.env_spec`)."""
    scripted: Mapping[str, Scripted] = field(default_factory=dict)
    """Its scripted partners by name (``scripted:ENV/NAME``)."""
    populations: bool = True
    """Whether members of a population can share its env batch (the env splits its random
    numbers by member: `BatchedEnv.rand`, `BatchedEnv.randint`)."""
    population_backend: str | None = None
    """The backend (its config's ``backend``) populations need, where its other backends
    step packages' objects."""
    trainer: str | None = None
    """``module:function`` of a trainer of its own (``function(config) -> (trainer,
    policy specs)``), imported when used: a family without a batched env."""
    play_seating: str | None = None
    """``module:function`` that plays a cross-play seating (``function(registry, seating,
    setup) -> metrics``) for a family without a batched env; imported when used."""

    def hook(self, name: str) -> Callable[..., Any]:
        """The function ``trainer`` or ``play_seating`` names (heavy dependencies such as
        transformers load only here)."""
        module, _, function = getattr(self, name).partition(":")
        return getattr(importlib.import_module(module), function)
