"""Make overcooked-ai 1.1.0 importable on numpy 2 without the `gym` package.

overcooked-ai 1.1.0 (2021) uses ``np.Inf`` (removed in numpy 2) and imports ``gym`` when
the package is imported: ``gym.envs.registration.register`` in its ``__init__`` and
``gym.Env`` / ``gym.spaces`` for its own gym wrapper, which srpo does not use (it is broken
anyway; srpo wraps ``OvercookedEnv`` directly). ``gym`` is not installed here: its pins
clash with the rest of the environment (see README, set-up). ``ensure_importable`` must run
before the first ``overcooked_ai_py`` import; every srpo module that imports overcooked-ai
does so through `import_overcooked`, so the step lives in this one place.

What it changes in the process, and nothing else:
- ``numpy.Inf`` is set to ``numpy.inf`` if numpy lacks it;
- if no ``gym`` module can be imported, a stand-in module named ``gym`` is registered in
  ``sys.modules``: ``gym.Env`` and ``gym.spaces`` are gymnasium's (gym's maintained
  successor, installed with pettingzoo), ``gym.envs.registration.register`` does nothing.
  A real ``gym``, where installed, is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import numpy as np


def _gym_stand_in() -> types.ModuleType:
    import gymnasium

    gym = types.ModuleType("gym")
    gym.__doc__ = "srpo's stand-in for gym, for overcooked-ai 1.1.0 (see overcooked_compat)"
    gym.Env = gymnasium.Env
    gym.spaces = gymnasium.spaces
    envs = types.ModuleType("gym.envs")
    registration = types.ModuleType("gym.envs.registration")
    registration.register = lambda *args, **kwargs: None
    envs.registration = registration
    gym.envs = envs
    return gym


def ensure_importable() -> None:
    """Apply the compatibility step (idempotent)."""
    if not hasattr(np, "Inf"):
        np.Inf = np.inf
    if "gym" not in sys.modules and importlib.util.find_spec("gym") is None:
        gym = _gym_stand_in()
        sys.modules["gym"] = gym
        sys.modules["gym.spaces"] = gym.spaces
        sys.modules["gym.envs"] = gym.envs
        sys.modules["gym.envs.registration"] = gym.envs.registration


def import_overcooked(module: str) -> types.ModuleType:
    """``importlib.import_module("overcooked_ai_py." + module)`` after the compatibility step."""
    ensure_importable()
    return importlib.import_module(f"overcooked_ai_py.{module}")
