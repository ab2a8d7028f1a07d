"""Learning curves of runs grouped by an ``arm:NAME`` tag, side by side: per arm and
evaluation step the mean of a metric over the arm's runs (seeds), its final value with a
95% bootstrap interval over seeds, the first step where the mean reaches a threshold, and
each run's wall time (the registry's created -> ended).

    .venv/bin/python docs/benchmarks/learning_by_arm.py --registry sqlite:///cnn.db \\
        --metric eval/team_reward --reach 100 --out conv-vs-mlp.json

Prints a table and writes JSON. Not a test: numbers, read by a person.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from srpo_core.intervals import bootstrap_ci
from srpo_core.registry import Registry

ARM = "arm:"


def arms(registry: Registry, metric: str) -> dict[str, dict]:
    """Per arm: its runs' curves of ``metric`` (step -> value) and wall times."""
    out: dict[str, dict] = defaultdict(lambda: {"runs": {}, "wall_s": {}})
    for run in registry.list_runs():
        tag = next((t for t in run.tags if t.startswith(ARM)), None)
        if tag is None or run.status != "finished":
            continue
        frame = registry.metrics(run.id, [metric])
        arm = out[tag[len(ARM) :]]
        arm["runs"][run.id] = dict(
            zip(frame["step"].tolist(), frame["value"].tolist(), strict=True)
        )
        assert run.ended_at is not None
        arm["wall_s"][run.id] = (run.ended_at - run.created_at).total_seconds()
    return dict(out)


def summary(arm: dict, reach: float | None) -> dict:
    curves = list(arm["runs"].values())
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    means = [sum(c[s] for c in curves) / len(curves) for s in steps]
    finals = [c[steps[-1]] for c in curves]
    reached = next((s for s, m in zip(steps, means, strict=True) if reach and m >= reach), None)
    return {
        "seeds": len(curves),
        "steps": steps,
        "mean": means,
        "final_step": steps[-1],
        "final_per_seed": finals,
        "final_mean": sum(finals) / len(finals),
        "final_ci95": bootstrap_ci(finals),
        "first_step_mean_reaches": reached,
        "wall_s_per_run": sorted(arm["wall_s"].values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--metric", default="eval/team_reward")
    parser.add_argument("--reach", type=float, help="report where the mean first reaches this")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with Registry(args.registry, create=False) as registry:
        table = {
            name: summary(arm, args.reach)
            for name, arm in sorted(arms(registry, args.metric).items())
        }
    print(f"{args.metric}: mean over seeds at each evaluation")
    names = list(table)
    steps = sorted(set.intersection(*(set(t["steps"]) for t in table.values())))
    print(f"{'env steps':>10} " + " ".join(f"{n:>10}" for n in names))
    for step in steps:
        row = [table[n]["mean"][table[n]["steps"].index(step)] for n in names]
        print(f"{step:>10,} " + " ".join(f"{v:>10.1f}" for v in row))
    for name, t in table.items():
        low, high = t["final_ci95"]
        print(
            f"{name}: {t['seeds']} seeds, final {t['final_mean']:.1f} [{low:.1f}, {high:.1f}] "
            f"(per seed {', '.join(f'{v:.1f}' for v in t['final_per_seed'])}), mean first "
            f">= {args.reach}: {t['first_step_mean_reaches']}, wall s per run "
            f"{', '.join(f'{w:.0f}' for w in t['wall_s_per_run'])}"
        )
    if args.out:
        report = {"metric": args.metric, "reach": args.reach, "arms": table}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
