"""`srpo runs export` and `srpo runs compare` against a real registry with real trained runs."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from pathlib import Path

import pytest

from srpo_cli.common import fmt
from srpo_core.registry import Registry
from tests.conftest import Cli

HAS_PARQUET = any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str, list[str]]:
    """Two tiny finished matrix runs (seeds 0 and 1), the first with a NaN metric logged on
    top (stored as NULL). Module-scoped: the tests below only read."""
    folder = tmp_path_factory.mktemp("export")
    url = f"sqlite:///{folder / 'srpo.db'}"
    cli = Cli(folder, url)
    ids = [
        cli.json("train", "--env", "matrix", "--steps", "2000", "--seed", str(seed))["run_id"]
        for seed in (0, 1)
    ]
    with Registry(url) as reg:
        reg.log_metrics(ids[0], [(4096, {"x": float("nan")}), (5000, {"x": 1.5})])
    return cli, url, ids


def expected_rows(url: str, ids: list[str], keys: list[str] | None = None) -> list[tuple]:
    """(run, step, key, value, env, algo, tau, eps, seed) straight from `Registry.metrics`."""
    rows = []
    with Registry(url) as reg:
        for run_id in ids:
            info = reg.get_run(run_id)
            frame = reg.metrics(run_id, keys)
            for step, key, value in frame.itertuples(index=False):
                rows.append(
                    (run_id, int(step), key, float(value), info.env, info.algo)
                    + (info.tau, info.eps, info.seed)
                )
    return rows


def same(a: list[tuple], b: list[tuple]) -> bool:
    """Row lists equal exactly, NaN equal to NaN."""

    def norm(row: tuple) -> tuple:
        return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row)

    return [norm(r) for r in a] == [norm(r) for r in b]


def parse_csv(data: str) -> list[tuple]:
    reader = csv.DictReader(io.StringIO(data))
    assert reader.fieldnames == ["run", "step", "key", "value", "env", "algo", "tau", "eps", "seed"]
    return [
        (
            r["run"],
            int(r["step"]),
            r["key"],
            float(r["value"]) if r["value"] != "" else math.nan,
            r["env"],
            r["algo"],
            float(r["tau"]),
            float(r["eps"]),
            int(r["seed"]),
        )
        for r in reader
    ]


def parse_jsonl(data: str) -> list[tuple]:
    rows = []
    for line in data.splitlines():
        r = json.loads(line)
        value = math.nan if r["value"] is None else r["value"]
        rows.append(
            (r["run"], r["step"], r["key"], float(value), r["env"], r["algo"])
            + (r["tau"], r["eps"], r["seed"])
        )
    return rows


def test_export_csv_round_trips_registry_metrics(trained) -> None:
    cli, url, ids = trained
    proc = cli("runs", "export", "env=matrix")
    rows = parse_csv(proc.stdout)
    want = expected_rows(url, ids)
    assert same(rows, want)
    assert {r[0] for r in rows} == set(ids)
    nan_rows = [r for r in rows if r[2] == "x" and r[1] == 4096]
    assert len(nan_rows) == 1 and math.isnan(nan_rows[0][3])
    assert f"{ids[0]},4096,x,,matrix" in proc.stdout  # NaN is an empty field


def test_export_jsonl_round_trips_with_null_for_nan(trained) -> None:
    cli, url, ids = trained
    proc = cli("runs", "export", "env=matrix", "--format", "jsonl")
    assert same(parse_jsonl(proc.stdout), expected_rows(url, ids))
    nan_line = next(line for line in proc.stdout.splitlines() if '"step": 4096' in line)
    assert '"value": null' in nan_line


def test_export_to_file_with_keys_and_query(trained, tmp_path: Path) -> None:
    cli, url, ids = trained
    out = tmp_path / "seed1.jsonl"  # format from the suffix
    proc = cli("runs", "export", "seed=1", "--out", str(out), "--key", "eval/return")
    assert proc.stdout == ""
    rows = parse_jsonl(out.read_text())
    assert rows and same(rows, expected_rows(url, [ids[1]], ["eval/return"]))
    assert [p.name for p in tmp_path.iterdir()] == ["seed1.jsonl"]  # no temporary left behind


def test_export_query_matching_nothing_is_a_user_error(trained) -> None:
    cli, _, _ = trained
    proc = cli("runs", "export", "seed=7", check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "finished|imported" in lines[0]


def test_export_unknown_key_is_a_user_error(trained) -> None:
    cli, _, _ = trained
    proc = cli("runs", "export", "", "--key", "no/such", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "no/such" in proc.stderr


@pytest.mark.skipif(HAS_PARQUET, reason="a parquet engine is installed")
def test_export_parquet_without_engine_says_what_to_install(trained, tmp_path: Path) -> None:
    cli, _, _ = trained
    out = tmp_path / "m.parquet"
    proc = cli("runs", "export", "", "--format", "parquet", "--out", str(out), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "pyarrow" in lines[0]
    assert not out.exists()


@pytest.mark.skipif(not HAS_PARQUET, reason="no parquet engine (pyarrow, fastparquet)")
def test_export_parquet_round_trips(trained, tmp_path: Path) -> None:
    import pandas as pd

    cli, url, ids = trained
    out = tmp_path / "m.parquet"
    cli("runs", "export", "", "--out", str(out))
    frame = pd.read_parquet(out)
    rows = [
        (r.run, int(r.step), r.key, float(r.value), r.env, r.algo, r.tau, r.eps, int(r.seed))
        for r in frame.itertuples(index=False)
    ]
    assert same(rows, expected_rows(url, ids))


def test_export_parquet_needs_out(trained) -> None:
    cli, _, _ = trained
    proc = cli("runs", "export", "", "--format", "parquet", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error:")


def test_compare_prints_final_metrics_and_config_diff(trained) -> None:
    cli, url, ids = trained
    with Registry(url) as reg:
        finals = [reg.final_metrics(run_id) for run_id in ids]
    prefixes = [run_id[:6] for run_id in ids]

    data = cli.json("runs", "compare", *prefixes)
    assert [r["id"] for r in data["runs"]] == ids
    returns = {run_id: final["eval/return"] for run_id, final in zip(ids, finals, strict=True)}
    assert data["metrics"]["eval/return"] == returns
    assert data["metrics"]["x"] == {ids[0]: 1.5, ids[1]: None}  # the second never logged x
    assert data["config_diff"]["run.seed"] == {ids[0]: 0, ids[1]: 1}
    assert "algo.name" not in data["config_diff"]  # equal keys are left out

    out = cli("runs", "compare", *prefixes).stdout
    row = next(line for line in out.splitlines() if "eval/return " in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [
        "eval/return",
        *(fmt(f["eval/return"]) for f in finals),
    ]
    seed_row = next(line for line in out.splitlines() if "run.seed" in line)
    assert seed_row.split() == ["│", "run.seed", "│", "0", "│", "1", "│"]
    assert "ippo tau=0 seed=0" in out and ids[0][:8] in out and ids[1][:8] in out


def test_compare_needs_two_distinct_runs(trained) -> None:
    cli, _, ids = trained
    for args in ([ids[0]], [ids[0], ids[0][:6]]):
        proc = cli("runs", "compare", *args, check=False)
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error:")
