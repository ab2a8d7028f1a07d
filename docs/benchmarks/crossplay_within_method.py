"""Per setting of a `srpo crossplay --pool ... --json` result: TP's and CP's sparse reward,
and CP with the other seeds of the run's own setting only (return and sparse reward), each a
mean over seeds with a 95% bootstrap interval (`srpo_core.intervals.bootstrap_ci`); given a
`srpo crossplay --zoo ... --json` result instead, the sparse reward with the zoo's members.

    .venv/bin/python docs/benchmarks/crossplay_within_method.py pool.json [zoo.json]
"""

import json
import sys
from collections import defaultdict
from statistics import fmean

from srpo_core.intervals import bootstrap_ci


def show(name: str, values: list[float]) -> str:
    low, high = bootstrap_ci(values)
    return f"{name} {fmean(values):.3g} [{low:.3g}, {high:.3g}]"


def pool(rows: list[dict]) -> None:
    setting = {r["agent_run"]: (r["algo"], r["tau"]) for r in rows}
    cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        cells[(r["agent_run"], r["partner_run"])].append(r)

    def mean(a: str, b: str, key: str) -> float:
        return fmean(r["metrics"][key] if key != "return" else r["return"] for r in cells[(a, b)])

    for group in sorted(set(setting.values())):
        runs = [r for r in setting if setting[r] == group]
        within = {
            key: [fmean(mean(a, b, key) for b in runs if b != a) for a in runs]
            for key in ("return", "sparse_reward")
        }
        tp_sparse = [mean(a, a, "sparse_reward") for a in runs]
        print(
            f"{group[0]} tau={group[1]:g}:",
            show("CP (same method)", within["return"]),
            "|",
            show("sparse TP", tp_sparse),
            "|",
            show("sparse CP (same method)", within["sparse_reward"]),
        )


def zoo(rows: list[dict]) -> None:
    per_run: dict[str, list[float]] = defaultdict(list)
    setting = {}
    for r in rows:
        if r["kind"] == "cp":
            per_run[r["agent_run"]].append(r["metrics"]["sparse_reward"])
            setting[r["agent_run"]] = (r["algo"], r["tau"])
    for group in sorted(set(setting.values())):
        values = [fmean(v) for run, v in per_run.items() if setting[run] == group]
        print(f"{group[0]} tau={group[1]:g}:", show("sparse with the zoo", values))


for path in sys.argv[1:]:
    result = json.load(open(path))
    (zoo if result.get("zoo") else pool)(result["seatings"])
