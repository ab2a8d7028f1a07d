"""overcooked-ai's layouts: their names and each one's planner (mdp and action manager)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from typing import Any

from srpo_core.envs.overcooked.compat import import_overcooked
from srpo_core.errors import UserError


def layout_names() -> list[str]:
    """Every layout shipped with overcooked-ai."""
    folder = import_overcooked("static").LAYOUTS_DIR
    return sorted(f.removesuffix(".layout") for f in os.listdir(folder) if f.endswith(".layout"))


@functools.lru_cache(maxsize=8)
def layout_planner(layout: str) -> tuple[Any, Any]:
    """(mdp, medium-level action manager) of a layout, shared by every sub-env in a process.

    overcooked-ai pickles planners into its package data folder and prints while computing
    them; here that runs under a file lock (concurrent processes would otherwise read each
    other's half-written pickles) with the prints discarded (they would corrupt --json
    output). A pickle that fails to load is deleted and recomputed."""
    mdp_mod = import_overcooked("mdp.overcooked_mdp")
    planners = import_overcooked("planning.planners")
    mdp = mdp_mod.OvercookedGridworld.from_layout_name(layout)
    if mdp.num_players != 2:
        raise UserError(f"layout '{layout}' has {mdp.num_players} players; srpo supports 2")
    params = planners.NO_COUNTERS_PARAMS
    lock_path = os.path.join(tempfile.gettempdir(), "srpo-overcooked-planners.lock")
    with open(lock_path, "a") as lock, contextlib.redirect_stdout(io.StringIO()):
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                mlam = planners.MediumLevelActionManager.from_pickle_or_compute(mdp, params)
            except OSError as exc:
                raise UserError(
                    f"overcooked-ai could not write its planner cache ({exc}); install it "
                    "where its package data folder is writable (e.g. a virtual environment)"
                ) from None
            except Exception:  # a damaged pickle: drop the layout's files and recompute
                folder = import_overcooked("static").PLANNERS_DIR
                for suffix in ("_am.pkl", "_mp.pkl"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(folder, layout + suffix))
                mlam = planners.MediumLevelActionManager.from_pickle_or_compute(mdp, params)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return mdp, mlam
