"""Training throughput of one run at two commits, side by side: `srpo bench`'s train row
(one run's whole iterations at the preset's ``ppo.num_envs``) from a checkout of each
commit, alternated ``--rounds`` times because this machine's speed drifts; each keeps its
best round. Both sides run with this venv's packages (the checkouts only change the code).

    .venv/bin/python docs/benchmarks/compare_commits.py --base fe4ee7c \\
        --case gridworld:gridworld-ippo:ippo --case hanabi:hanabi:srpo --out cmp.json

Prints a table and writes JSON. Not a test: numbers, read by a person.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def checkouts(commits: dict[str, str], where: Path) -> Iterator[dict[str, Path]]:
    """Detached worktrees under ``where``, by name (``{"base": commit, ...}``), removed on
    exit."""
    paths: dict[str, Path] = {}
    try:
        for name, commit in commits.items():
            paths[name] = where / name
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(paths[name]),
                 commit],
                check=True,
            )  # fmt: skip
        yield paths
    finally:
        for path in paths.values():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
            )


def run_python(code: Path, *args: str) -> str:
    """The stdout of ``python ARGS`` with ``code`` first on the import path."""
    done = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "PYTHONPATH": str(code)},
        cwd=code,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"python {' '.join(args)} failed in {code}:\n{done.stderr.strip()}")
    return done.stdout


def train_row(code: Path, env: str, preset: str, algo: str, seconds: float) -> dict:
    """`srpo bench`'s train row, the code imported from ``code``."""
    args = ["bench", "--env", env, "--preset", preset, "--algo", algo, "--json"]
    args += ["--seconds", str(seconds), "--batch", str(num_envs(code, env, preset, algo))]
    out = run_python(code, "-m", "srpo_cli.main", *args)
    return [row for row in json.loads(out)["rows"] if row["kind"] == "train"][0]


def num_envs(code: Path, env: str, preset: str, algo: str) -> int:
    """The preset's ``ppo.num_envs`` as the benchmarked code resolves it."""
    snippet = (
        "from srpo_core.config import resolve;"
        f"print(resolve(presets=['{preset}'], flags={{'env': {{'name': '{env}'}}, "
        f"'algo': {{'name': '{algo}'}}}}).ppo.num_envs)"
    )
    return int(run_python(code, "-c", snippet).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", default="HEAD", help="the commit measured (default HEAD)")
    parser.add_argument(
        "--case", action="append", required=True, help="ENV:PRESET:ALGO, repeatable"
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        commits = {"base": args.base, "head": args.head}
        with checkouts(commits, Path(tmp)) as sides:
            best: dict[tuple[str, str], float] = {}
            for _ in range(args.rounds):
                for case in args.case:
                    env, preset, algo = case.split(":")
                    for name, code in sides.items():
                        sps = train_row(code, env, preset, algo, args.seconds)["steps_per_second"]
                        best[case, name] = max(best.get((case, name), 0.0), sps)
    rows = [
        {
            "case": case,
            "base_sps": best[case, "base"],
            "head_sps": best[case, "head"],
            "head_vs_base": round(best[case, "head"] / best[case, "base"], 3),
        }
        for case in args.case
    ]
    report = {"base": args.base, "head": args.head, "seconds": args.seconds,
              "rounds": args.rounds, "rows": rows}  # fmt: skip
    print(f"{'case':<34} {'base steps/s':>13} {'head steps/s':>13} {'head/base':>10}")
    for row in rows:
        print(
            f"{row['case']:<34} {row['base_sps']:>13,.0f} {row['head_sps']:>13,.0f} "
            f"{row['head_vs_base']:>10.2f}"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
