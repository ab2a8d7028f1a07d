"""Scripted policies: fixed heuristics that sit in a seat like any trained policy.

They are addressed as ``scripted:ENV/NAME`` and registered in the registry on first use,
so zoos and cross-play can treat them as partners or opponents. Each env family brings its
own (`EnvFamily.scripted`); `srpo_core.api.add_partner` adds a user's.
"""

from __future__ import annotations

from srpo_core.envs import ENVS
from srpo_core.envs.family import Scripted

CATALOGUE: dict[str, Scripted] = {
    f"{env}/{name}": scripted
    for env, family in ENVS.items()
    for name, scripted in family.scripted.items()
}
