"""The same small sweep with the local executor and on a local two-node Ray cluster: wall
time and overhead per task, printed as a table and written as JSON.

    .venv/bin/python docs/benchmarks/cluster_overhead.py [--repeats 3] [--steps 2048,100000]
        [--out docs/benchmarks/cluster-overhead.json]

Each variant runs `srpo ablate --env matrix --tau 0,10 --seeds 4 --steps N` (8 runs) into a
fresh database of one PostgreSQL server, with two runs at a time: ``--workers 2`` locally, a
head and a second node of one CPU each on Ray (both started here, as the tests do; needs the
ray and postgres extras and PostgreSQL's server programs). The variants alternate, repeat by
repeat, since this machine's speed drifts. Per sweep:

- wall: the `srpo ablate` command from start to exit (driver start-up included);
- train: the mean time a run spends in its registry row (created to ended), i.e. training;
- overhead per task: (wall x 2 slots - the runs' train time) / runs, i.e. the slot time each
  run costs besides its training: process start, imports, scheduling, the driver's share.

Then Ray's own share, measured directly: a driver's connection to the cluster, and the round
trip of an empty task (the median of 20, one after another, after one to warm up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from srpo_core.registry import Registry  # noqa: E402
from tests.conftest import start_postgres  # noqa: E402
from tests.ray_cluster import LocalRayCluster  # noqa: E402

SLOTS = 2
GRID = ["--env", "matrix", "--tau", "0,10", "--seeds", "4", "--set", "run.eval_episodes=0"]


def sweep(variant: str, steps: int, url: str, artifacts: Path, address: str) -> dict:
    command = [sys.executable, "-m", "srpo_cli.main", "ablate", *GRID, "--steps", str(steps)]
    if variant == "local":
        command += ["--workers", str(SLOTS)]
    else:
        command += ["--executor", "ray", "--address", address]
    env = {**os.environ, "SRPO_REGISTRY": url, "SRPO_ARTIFACTS": str(artifacts)}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    start = time.perf_counter()
    proc = subprocess.run(command + ["--json"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{variant} sweep failed:\n{proc.stderr}")
    with Registry(url) as reg:
        runs = reg.list_runs()
    train = [(r.ended_at - r.created_at).total_seconds() for r in runs]
    return {
        "variant": variant,
        "steps": steps,
        "runs": len(runs),
        "wall_s": round(wall, 2),
        "train_s_mean": round(statistics.fmean(train), 2),
        "overhead_per_task_s": round((wall * SLOTS - sum(train)) / len(runs), 2),
        "command": "srpo " + " ".join(command[3:]),
    }


PROBE = """
import json, logging, statistics, sys, time
start = time.perf_counter()
import ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
connect = time.perf_counter() - start
noop = ray.remote(num_cpus=1)(lambda: None)
ray.get(noop.remote())
trips = []
for _ in range(20):
    start = time.perf_counter()
    ray.get(noop.remote())
    trips.append(time.perf_counter() - start)
print(json.dumps({"connect_s": round(connect, 2),
                  "task_round_trip_ms": round(1000 * statistics.median(trips), 1)}))
"""


def ray_share(address: str) -> dict:
    """A driver's connection (import included) and an empty task's round trip."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, address], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", default="2048,100000")
    parser.add_argument("--out", default=str(ROOT / "docs/benchmarks/cluster-overhead.json"))
    args = parser.parse_args()
    budgets = [int(s) for s in args.steps.split(",")]
    results = []
    cluster = LocalRayCluster(cpus=1, workers=1)
    server = start_postgres()
    try:
        shares = []
        for repeat in range(args.repeats):
            order = ["local", "ray"] if repeat % 2 == 0 else ["ray", "local"]
            for steps in budgets:
                for variant in order:
                    artifacts = cluster.root / f"artifacts-{len(results)}"
                    url = server.create_database()
                    row = sweep(variant, steps, url, artifacts, cluster.address)
                    results.append({"repeat": repeat, **row})
                    print(
                        f"repeat {repeat} {variant:5} steps {steps:>7}: wall {row['wall_s']:6.1f}s"
                        f"  overhead/task {row['overhead_per_task_s']:5.2f}s",
                        flush=True,
                    )
            shares.append(ray_share(cluster.address))
    finally:
        cluster.stop()
        server.remove()
    summary = []
    print(f"\n{'steps':>7} {'executor':8} {'wall s (median)':>16} {'train s/run':>12} "
          f"{'overhead s/task':>16}")  # fmt: skip
    for steps in budgets:
        for variant in ("local", "ray"):
            rows = [r for r in results if r["steps"] == steps and r["variant"] == variant]
            entry = {
                "steps": steps,
                "variant": variant,
                "wall_s_median": statistics.median(r["wall_s"] for r in rows),
                "train_s_median": statistics.median(r["train_s_mean"] for r in rows),
                "overhead_per_task_s_median": statistics.median(
                    r["overhead_per_task_s"] for r in rows
                ),
            }
            summary.append(entry)
            print(
                f"{steps:>7} {variant:8} {entry['wall_s_median']:>16.1f} "
                f"{entry['train_s_median']:>12.2f} {entry['overhead_per_task_s_median']:>16.2f}"
            )
    import ray

    share = {key: statistics.median(s[key] for s in shares) for key in shares[0]}
    print(
        f"\nRay's own share: connecting a driver {share['connect_s']:.2f} s (once per "
        f"command), an empty task's round trip {share['task_round_trip_ms']:.1f} ms"
    )
    report = {
        "what": "srpo ablate, 8 matrix runs, 2 at a time: local executor vs a local 2-node Ray",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ray": ray.__version__,
        "summary": summary,
        "ray_share": {"median": share, "repeats": shares},
        "sweeps": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
