"""Run queries: the small filter language of `--runs`, `--agents` and `--pool`.

A query is comma-separated ``key=value`` filters, all of which must hold::

    algo=srpo,tau=10,seed=0..4,tag=sweep-3
    algo=ippo|srpo,status=finished|imported

``|`` separates alternatives; ``seed`` also takes inclusive ranges ``a..b``. Keys: env,
algo, tau, eps, seed, tag (the run has that tag), run (id or id prefix), status (default
``finished|imported``: only runs whose checkpoints are final).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from srpo_core.errors import UserError
from srpo_core.registry import Registry, RunInfo

KEYS = ("env", "algo", "tau", "eps", "seed", "tag", "run", "status")
DEFAULT_STATUS = ("finished", "imported")


@dataclass(frozen=True)
class RunQuery:
    text: str
    filters: tuple[tuple[str, tuple[str, ...]], ...]

    def matches(self, run: RunInfo) -> bool:
        return all(_TESTS[key](run, values) for key, values in self.filters)

    @property
    def statuses(self) -> tuple[str, ...]:
        for key, values in self.filters:
            if key == "status":
                return values
        return DEFAULT_STATUS


def parse_query(text: str) -> RunQuery:
    filters: list[tuple[str, tuple[str, ...]]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise UserError(f"query part '{part}' is not key=value (in '{text}')")
        if key not in KEYS:
            raise UserError(f"unknown query key '{key}' (known: {', '.join(KEYS)})")
        values = tuple(v.strip() for v in value.split("|") if v.strip())
        for v in values:
            if "=" in v and v.partition("=")[0].strip() in KEYS:
                raise UserError(
                    f"query part '{part}': '|' separates values of one key "
                    f"({key}=A|B), not whole filters"
                )
            _check_value(key, v)
        filters.append((key, values))
    return RunQuery(text, tuple(filters))


def select_runs(registry: Registry, query: RunQuery, *, env: str | None = None) -> list[RunInfo]:
    """Matching runs, oldest first (so tables list seeds in the order they were trained)."""
    runs = [
        run
        for status in query.statuses
        for run in registry.list_runs(env=env, status=status)
        if query.matches(run)
    ]
    return sorted(runs, key=lambda r: (r.created_at, r.id))


def _check_value(key: str, value: str) -> None:
    try:
        if key in ("tau", "eps"):
            float(value)
        elif key == "seed":
            for bound in value.split(".."):
                int(bound)
    except ValueError:
        raise UserError(f"query value '{value}' for {key} is not a number") from None


def _seed(run: RunInfo, values: tuple[str, ...]) -> bool:
    for value in values:
        low, _, high = value.partition("..")
        if int(low) <= run.seed <= int(high or low):
            return True
    return False


_TESTS: dict[str, Callable[[RunInfo, tuple[str, ...]], bool]] = {
    "env": lambda run, values: run.env in values,
    "algo": lambda run, values: run.algo in values,
    "tau": lambda run, values: any(abs(run.tau - float(v)) < 1e-12 for v in values),
    "eps": lambda run, values: any(abs(run.eps - float(v)) < 1e-12 for v in values),
    "seed": _seed,
    "tag": lambda run, values: any(v in run.tags for v in values),
    "run": lambda run, values: any(run.id.startswith(v.lower()) for v in values),
    "status": lambda run, values: run.status in values,
}
