"""Do two commits train the same numbers? One short seeded run per env family (and a
population) at each commit, compared by the hashes of what it stored: its metrics (every
row but the wall-clock ``perf/`` keys, floats by their exact repr) and its checkpoints
(the sha256 of each payload). For refactors that must not change behaviour.

    .venv/bin/python docs/benchmarks/same_numbers.py --base 5e040a4 --out same.json

Both sides run with this venv's packages (the checkouts only change the code); the stored
rows are read with sqlite3, not through the code compared. Prints a table and writes JSON.
The LLM debate is left out (it needs a language model download).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import tempfile
from pathlib import Path

from compare_commits import checkouts, run_python

CASES: dict[str, str] = {
    "matrix srpo": "--env matrix --preset matrix --algo srpo --tau 10 --steps 4096 --seed 7",
    "quadratic": "--env quadratic --preset quadratic --steps 4096 --seed 7",
    "gridworld ippo": "--env gridworld --preset gridworld-ippo --steps 20000 --seed 7",
    "gridworld srpo": "--env gridworld --preset gridworld-srpo --steps 20000 --seed 7",
    "gridworld srpo x3": "--env gridworld --preset gridworld-srpo --steps 20000 --seeds 7..9",
    "tag srpo": "--env tag --preset tag-srpo --steps 20000 --seed 7",
    "tag ippo mpe2": "--env tag --preset tag-ippo --steps 10000 --set env.backend='mpe2' --seed 7",
    "hanabi srpo": "--env hanabi --preset hanabi --algo srpo --tau 10 --steps 4000 --seed 7",
    "overcooked torch": "--env overcooked --preset overcooked-srpo --steps 8000 --seed 7",
    "overcooked package": "--env overcooked --preset overcooked-ippo --steps 4000 "
    "--set env.backend='package' --seed 7",
    "ipd recurrent": "--env ipd --preset ipd-mixed --steps 4000 --seed 7",
}
"""`srpo train` options of each case (split on spaces)."""


def digest(registry: Path) -> dict[str, str]:
    """Per run (in creation order): sha256 of its metric rows and of its checkpoints'."""
    with sqlite3.connect(registry) as db:
        runs = [r for (r,) in db.execute("select id from runs order by created_at, id")]
        out = {}
        for index, run in enumerate(runs):
            metrics = hashlib.sha256()
            for step, key, value in db.execute(
                "select step, key, value from metrics where run_id = ? and key not like "
                "'perf/%' order by key, step, id",
                (run,),
            ):
                metrics.update(f"{step}|{key}|{value!r}\n".encode())
            shas = [s for (s,) in db.execute(
                "select step || ':' || sha256 from checkpoints where run_id = ? order by step",
                (run,),
            )]  # fmt: skip
            checkpoints = hashlib.sha256("\n".join(shas).encode()).hexdigest()
            out[f"run{index}"] = f"metrics {metrics.hexdigest()[:16]} ckpt {checkpoints[:16]}"
        return out


def train_digest(code: Path, args: list[str], where: Path) -> dict[str, str]:
    registry = where / "srpo.db"
    run_python(code, "-m", "srpo_cli.main", "train", *args, "--registry", str(registry), "--json")
    return digest(registry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", default="HEAD", help="the commit checked (default HEAD)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: all")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with checkouts({"base": args.base, "head": args.head}, Path(tmp)) as sides:
            for case in args.case or list(CASES):
                found = {}
                for side, code in sides.items():
                    where = Path(tmp) / f"{side}-{case.replace(' ', '-')}"
                    where.mkdir()
                    found[side] = train_digest(code, CASES[case].split(), where)
                same = found["base"] == found["head"]
                rows.append({"case": case, "same": same, **found})
                print(f"{case:20s} {'same' if same else 'DIFFERENT'}  {found['head']}")
    if args.out:
        args.out.write_text(json.dumps({"base": args.base, "head": args.head, "rows": rows},
                                       indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
