"""Which runs a report covers, and how they group into settings.

A *setting* is a run's config without the keys that do not change what is trained
(`NOT_SETTING_KEYS`: the seed, checkpoint and logging cadence, evaluation size, threads,
parallel updates): the runs of one setting are seeds of one experiment, averaged in every
figure. Settings are labelled by the config keys that differ between the selected runs
(``srpo tau=10 eps=0.1``) and ordered by those keys' values, so the same registry always
gives the same order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from srpo_core.canonical import canonical_json
from srpo_core.config import env_config_class, flatten_config
from srpo_core.errors import UserError
from srpo_core.evaluation.leaderboard import Leaderboard, build_leaderboard
from srpo_core.registry import Registry, RunInfo

NOT_SETTING_KEYS = frozenset(
    (
        "run.seed",
        "run.checkpoint_every",
        "run.log_every",
        "run.eval_episodes",
        "run.threads",
        "run.parallel_updates",
        "run.tensorboard",
        "run.wandb",
        "run.wandb_mode",
    )
)
LEADING_KEYS = ("algo.name", "algo.tau", "algo.eps")
"""Differing keys shown first (and sorted on first), in this order."""


@dataclass(frozen=True)
class Selection:
    title: str
    """What the report is about, e.g. "ablation `tau-sweep`"."""
    flag: tuple[str, str]
    """The option and value that selected the runs, e.g. ("--ablation", "tau-sweep")."""
    pool_query: str
    """A `--pool` query naming these runs, for the hint when no cross-play is stored."""
    runs: tuple[RunInfo, ...]
    board: Leaderboard | None
    """With --zoo: that zoo's leaderboard (which also chose the runs)."""


def select(
    registry: Registry,
    *,
    ablation: str | None,
    env: str | None,
    zoo: str | None,
    episodes: int,
    seed: int,
) -> Selection:
    """The runs of one ablation, of one env (finished ones) or with results against one zoo."""
    given = [name for name, value in (("ablation", ablation), ("env", env), ("zoo", zoo)) if value]
    if len(given) != 1:
        raise UserError("give exactly one of --ablation ID, --env ENV or --zoo NAME")
    if ablation is not None:
        tag = f"ablation:{ablation}"
        runs = registry.list_runs(tags=[tag])
        if not runs:
            raise UserError(f"no runs tagged {tag!r} in the registry (unknown ablation id?)")
        return Selection(
            f"ablation `{ablation}`", ("--ablation", ablation), f"tag={tag}", tuple(runs), None
        )
    if env is not None:
        env_config_class(env)  # an unknown env name is its own error
        runs = registry.list_runs(env=env, status="finished")
        if not runs:
            raise UserError(f"no finished {env} runs in the registry")
        return Selection(f"env `{env}`", ("--env", env), f"env={env}", tuple(runs), None)
    assert zoo is not None
    info = registry.get_zoo(zoo)
    board = build_leaderboard(registry, info, episodes=episodes, seed=seed)
    runs = [registry.get_run(row.run) for row in board.agents]
    query = "run=" + "|".join(sorted(run.id for run in runs))
    return Selection(f"zoo `{zoo}`", ("--zoo", zoo), query, tuple(runs), board)


@dataclass(frozen=True)
class Settings:
    keys: tuple[str, ...]
    """Config keys (dotted) whose values differ between the runs, run.seed excepted."""
    runs: tuple[RunInfo, ...]
    """The runs by setting, then seed, then id."""
    label_of: dict[str, str]
    """run id -> its setting's label."""
    order: tuple[str, ...]
    """Setting labels in order."""
    values_of: dict[str, dict[str, Any]]
    """setting label -> the differing keys' values."""

    def runs_of(self, label: str) -> list[RunInfo]:
        return [run for run in self.runs if self.label_of[run.id] == label]


def settings(runs: tuple[RunInfo, ...] | list[RunInfo]) -> Settings:
    flat = {run.id: flatten_config(run.config) for run in runs}
    all_keys = sorted({key for values in flat.values() for key in values} - NOT_SETTING_KEYS)
    keys = [
        key
        for key in all_keys
        if len({canonical_json(values.get(key)) for values in flat.values()}) > 1
    ]
    keys = [k for k in LEADING_KEYS if k in keys] + [k for k in keys if k not in LEADING_KEYS]
    names = short_names(keys)

    def label(run: RunInfo) -> str:
        values = flat[run.id]
        parts = [str(values.get("algo.name", run.algo))]
        parts += [f"{names[k]}={format_value(values.get(k))}" for k in keys if k != "algo.name"]
        return " ".join(parts)

    def order_key(run: RunInfo) -> tuple:
        return (tuple(_sort_value(flat[run.id].get(k)) for k in keys), run.seed, run.id)

    ordered = tuple(sorted(runs, key=order_key))
    label_of = {run.id: label(run) for run in ordered}
    return Settings(
        keys=tuple(keys),
        runs=ordered,
        label_of=label_of,
        order=tuple(dict.fromkeys(label_of[run.id] for run in ordered)),
        values_of={label_of[r.id]: {k: flat[r.id].get(k) for k in keys} for r in ordered},
    )


def short_names(keys: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The last part of each dotted key, or the whole key where that part is ambiguous."""
    last = Counter(key.rsplit(".", 1)[-1] for key in keys)
    return {
        key: key.rsplit(".", 1)[-1] if last[key.rsplit(".", 1)[-1]] == 1 else key for key in keys
    }


def format_value(value: Any) -> str:
    """One spelling per value: integral floats without ".0", others at full precision."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return canonical_json(value)


def _sort_value(value: Any) -> tuple[int, float, str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, canonical_json(value))
