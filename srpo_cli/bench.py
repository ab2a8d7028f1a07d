"""`srpo bench`: env-only vs training steps/s, as a table and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from srpo_cli.common import JsonOption, console, print_json, text


def bench(
    env: Annotated[str, typer.Option(help="Env family to measure.")],
    preset: Annotated[
        list[str] | None, typer.Option(help="Preset(s) for the training config.")
    ] = None,
    batch: Annotated[
        str, typer.Option(help="Comma-separated numbers of envs stepped together.")
    ] = "8,64,512",
    algo: Annotated[str, typer.Option(help="ippo or srpo for the training rows.")] = "ippo",
    seconds: Annotated[float, typer.Option(help="Measuring time per row.")] = 5.0,
    population: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated population sizes: training rows of K runs trained together "
            "(1: a run alone), at the config's ppo.num_envs (--batch is not used), measured "
            "in alternation --rounds times.",
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Population mode: alternating rounds.")] = 2,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Config overrides section.key=value.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
    json_: JsonOption = False,
) -> None:
    """Measure env-only and full-training throughput for a few batch sizes."""
    from srpo_core import bench as benchmarks
    from srpo_core import config as cfg
    from srpo_core.errors import UserError

    if not 0 < seconds < math.inf:
        raise UserError(f"--seconds must be finite and > 0, got {seconds}")
    try:
        sizes = [int(b) for b in batch.split(",")]
    except ValueError:
        raise UserError(f"--batch takes comma-separated integers, got '{batch}'") from None
    tau = 10.0 if algo == "srpo" else 0.0
    if population is not None:
        _bench_population(env, preset, algo, tau, population, rounds, seconds, set_, out, json_)
        return
    rows = []
    for size in sizes:
        config = cfg.resolve(
            presets=preset or [],
            flags={"env": {"name": env}, "algo": {"name": algo, "tau": tau}},
            sets=[*(set_ or []), f"ppo.num_envs={size}"],
        )
        rows.append(benchmarks.bench_env(config, size, seconds))
        rows.append(benchmarks.bench_train(config, seconds))
    report = {
        "env": env,
        "algo": algo,
        "device": config.run.device,
        "threads": config.run.threads,
        "env_config": config.to_dict()["env"],  # e.g. the worker processes measured
        "rows": [r.to_dict() for r in rows],
    }
    for env_row, train_row in zip(report["rows"][::2], report["rows"][1::2], strict=True):
        # training throughput as a share of the same env setup stepped alone
        train_row["vs_env"] = round(train_row["steps_per_second"] / env_row["steps_per_second"], 3)
    _write(report, out)
    if json_:
        print_json(report)
        return
    table = Table(
        "kind",
        "envs",
        "steps/rollout",
        "env steps/s",
        "vs env",
        title=f"{text(env)} ({text(algo)}, {config.run.device}, {config.run.threads} thread(s))",
    )
    for r, row in zip(rows, report["rows"], strict=True):
        rollout = "-" if r.kind == "env" else str(r.num_steps)
        share = f"{row['vs_env']:.0%}" if "vs_env" in row else "-"
        table.add_row(r.kind, str(r.num_envs), rollout, f"{r.steps_per_second:,.0f}", share)
    console.print(table)
    if out:
        console.print(f"wrote {text(out)}", highlight=False)


def _write(report: dict, out: Path | None) -> None:
    from srpo_core.errors import UserError

    if out:
        try:
            out.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror}") from None


def _bench_population(env, preset, algo, tau, sizes_spec, rounds, seconds, sets, out, json_):
    """Populations of each size (1: a run alone), alternated ``rounds`` times (this
    machine's speed drifts); each row keeps its best round."""
    from srpo_core import bench as benchmarks
    from srpo_core import config as cfg
    from srpo_core.errors import UserError
    from srpo_core.population.members import check_population

    try:
        sizes = [int(k) for k in sizes_spec.split(",")]
    except ValueError:
        raise UserError(
            f"--population takes comma-separated integers, got '{sizes_spec}'"
        ) from None
    if any(k < 1 for k in sizes) or rounds < 1:
        raise UserError("--population sizes and --rounds must be >= 1")
    config = cfg.resolve(
        presets=preset or [],
        flags={"env": {"name": env}, "algo": {"name": algo, "tau": tau}},
        sets=list(sets or []),
    )
    check_population([cfg.with_seed(config, seed) for seed in range(max(sizes))])
    best: dict[int, benchmarks.BenchRow] = {}
    for _ in range(rounds):
        for k in sizes:
            row = benchmarks.bench_population(config, k, seconds)
            if k not in best or row.steps_per_second > best[k].steps_per_second:
                best[k] = row
    steps = config.run.steps
    report = {
        "env": env,
        "algo": algo,
        "device": config.run.device,
        "threads": config.run.threads,
        "run_steps": steps,
        "rounds": rounds,
        "rows": [],
    }
    for k in sizes:
        row = best[k].to_dict() | {"population": k}
        row["amortised_run_seconds"] = round(steps / best[k].steps_per_second, 1)
        report["rows"].append(row)
    _write(report, out)
    if json_:
        print_json(report)
        return
    table = Table(
        "runs",
        "env steps/s (total)",
        "per run",
        f"s per {steps:,}-step run (amortised)",
        title=f"{text(env)} ({text(algo)}, {config.run.device}, {config.ppo.num_envs} envs "
        f"x {config.ppo.num_steps} steps, best of {rounds} alternated rounds)",
    )
    for row in report["rows"]:
        label = "1 (alone)" if row["population"] == 1 else f"population of {row['population']}"
        table.add_row(
            label,
            f"{row['steps_per_second']:,.0f}",
            f"{row['steps_per_second_per_member']:,.0f}",
            f"{row['amortised_run_seconds']:,.1f}",
        )
    console.print(table)
    if out:
        console.print(f"wrote {text(out)}", highlight=False)
