"""Metric history out of the registry (`srpo runs export`) and runs side by side
(`srpo runs compare`).

An export is long format, one row per logged value: ``run, step, key, value`` plus the run's
``env, algo, tau, eps, seed`` so each row (and any slice of the file) says what it belongs to.
Values are written losslessly: floats as their shortest round-trip form (``repr``), a NaN
(stored as NULL) as an empty CSV field or a JSON ``null``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from srpo_core.config import flatten_config
from srpo_core.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from srpo_core.registry import Registry, RunInfo

FORMATS = ("csv", "jsonl", "parquet")
COLUMNS = ("run", "step", "key", "value", "env", "algo", "tau", "eps", "seed")
PARQUET_ENGINES = ("pyarrow", "fastparquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def format_for(fmt: str | None, out: str | None) -> str:
    """The export format: `fmt` if given, else guessed from the suffix of `out`, else csv."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UserError(f"unknown export format '{fmt}' (one of {', '.join(FORMATS)})")
        return fmt
    if out is not None and out != "-":
        return _SUFFIXES.get(Path(out).suffix.lower(), "csv")
    return "csv"


def parquet_engine() -> str:
    """The installed parquet engine for pandas, or a UserError saying what to install."""
    for engine in PARQUET_ENGINES:
        if importlib.util.find_spec(engine) is not None:
            return engine
    raise UserError(
        "--format parquet needs pyarrow or fastparquet, and neither is installed: "
        "pip install pyarrow (or export --format csv or jsonl)"
    )


def metric_rows(
    registry: Registry, runs: Sequence[RunInfo], keys: Sequence[str] | None = None
) -> list[tuple[Any, ...]]:
    """Every logged value of `runs` (only `keys` if given) as tuples in `COLUMNS` order: runs in
    the order given, then by key and step as `Registry.metrics` sorts them. Values are Python
    floats (NaN where NULL was stored)."""
    rows: list[tuple[Any, ...]] = []
    for run in runs:
        frame = registry.metrics(run.id, keys)
        steps = frame["step"].tolist()
        names = frame["key"].tolist()
        values = frame["value"].tolist()
        tail = (run.env, run.algo, float(run.tau), float(run.eps), int(run.seed))
        rows.extend(
            (run.id, int(s), str(k), float(v), *tail)
            for s, k, v in zip(steps, names, values, strict=True)
        )
    return rows


def missing_keys(rows: Iterable[tuple[Any, ...]], keys: Sequence[str]) -> list[str]:
    """The `keys` asked for that none of the exported rows has."""
    found = {row[2] for row in rows}
    return [k for k in dict.fromkeys(keys) if k not in found]


def _csv_float(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def write_csv(rows: Iterable[tuple[Any, ...]], stream: IO[str]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    for run, step, key, value, env, algo, tau, eps, seed in rows:
        writer.writerow(
            (run, step, key, _csv_float(value), env, algo, _csv_float(tau), _csv_float(eps), seed)
        )


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def write_jsonl(rows: Iterable[tuple[Any, ...]], stream: IO[str]) -> None:
    """One JSON object per line; NaN is null (±inf, never produced by training, would be
    written as Python's `Infinity`, which Python and pandas read back)."""
    for row in rows:
        record = dict(zip(COLUMNS, row, strict=True))
        for name in ("value", "tau", "eps"):
            record[name] = _json_float(record[name])
        stream.write(json.dumps(record) + "\n")


def to_frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return frame.astype(
        {
            "run": "string",
            "step": "int64",
            "key": "string",
            "value": "float64",
            "env": "string",
            "algo": "string",
            "tau": "float64",
            "eps": "float64",
            "seed": "int64",
        }
    )


def write_parquet(rows: Sequence[tuple[Any, ...]], path: Path, engine: str) -> None:
    to_frame(rows).to_parquet(path, engine=engine, index=False)


@contextmanager
def replacing(path: Path, *, binary: bool = False) -> Iterator[Path]:
    """A temporary file beside `path` that replaces it only when the block succeeds: an
    interrupted or failed export never leaves a truncated file under the requested name."""
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- compare ---------------------------------------------------------------------------------


_ABSENT = object()


def _canonical(value: Any) -> str:
    """A comparable form of a config value ("absent" differs from an explicit null)."""
    return "<absent>" if value is _ABSENT else json.dumps(value, sort_keys=True, default=str)


def config_diff(runs: Sequence[RunInfo]) -> dict[str, list[Any]]:
    """Flattened config keys whose values are not all equal, each with one value per run
    (None where a run's config lacks the key), sorted by key."""
    flats = [flatten_config(run.config) for run in runs]
    names = sorted(set().union(*flats))
    diff: dict[str, list[Any]] = {}
    for name in names:
        values = [flat.get(name, _ABSENT) for flat in flats]
        if len({_canonical(v) for v in values}) > 1:
            diff[name] = [None if v is _ABSENT else v for v in values]
    return diff


def metric_table(finals: Sequence[Mapping[str, float]]) -> dict[str, list[float | None]]:
    """Metric key → one final value per run (None where a run never logged the key)."""
    names = sorted(set().union(*finals))
    return {name: [final.get(name) for final in finals] for name in names}


def run_label(run: RunInfo, short: int = 8) -> str:
    """``algo tau=.. seed=..`` and the short id: how compare's columns are headed."""
    return f"{run.algo} tau={run.tau:g} seed={run.seed} {run.id[:short]}"
