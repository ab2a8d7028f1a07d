"""`srpo ablate`: sweep tau / eps / any config key over seeds, resumably, with a live table."""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from srpo_cli.cluster_options import (
    AddressOption,
    ExecutorOption,
    ResourcesOption,
    open_cluster,
)
from srpo_cli.common import (
    JsonOption,
    RegistryOption,
    check_seconds,
    command_line,
    console,
    err_console,
    print_json,
    text,
)
from srpo_core.errors import UserError

if TYPE_CHECKING:
    from srpo_core.dispatch import Dispatcher

POLL_SECONDS = 1.0


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--{name} takes comma-separated numbers, got '{text}'") from None


def _interrupt(signum, frame):  # SIGTERM stops the sweep like Ctrl-C
    raise KeyboardInterrupt


def ablate(
    env: Annotated[str, typer.Option(help="Env family.")],
    preset: Annotated[list[str] | None, typer.Option(help="Preset(s) of every run.")] = None,
    tau: Annotated[
        str | None,
        typer.Option(help="Comma-separated tau values; 0 runs IPPO. Default: the presets' tau."),
    ] = None,
    eps: Annotated[str | None, typer.Option(help="Comma-separated eps values.")] = None,
    sweep: Annotated[
        list[str] | None, typer.Option(help="Also sweep a key: section.key=v1,v2 (repeatable).")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per setting.")] = 1,
    first_seed: Annotated[int, typer.Option(help="Seeds are first_seed, first_seed+1, ...")] = 0,
    steps: Annotated[int | None, typer.Option(help="Budget of every run (run.steps).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="section.key=value for every run.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Extra tag on every run.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Ablation id to use instead of a hash of the grid.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Runs (or populations) at a time; 0 = one per core (local), as many as the "
            "cluster fits (ray)."
        ),
    ] = 0,
    population: Annotated[
        bool,
        typer.Option(
            "--population",
            metavar="",
            help="Train the seeds of each setting as one population (one batched "
            "computation per child process) instead of one process per run.",
        ),
    ] = False,
    population_size: Annotated[
        int | None,
        typer.Option(help="With --population: at most this many runs per population."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", metavar="", help="Print the grid and its commands; run nothing."),
    ] = False,
    crossplay: Annotated[
        bool,
        typer.Option(
            "--crossplay", metavar="", help="Then cross-play the whole population (TP/CP)."
        ),
    ] = False,
    episodes: Annotated[int, typer.Option(help="Cross-play episodes per seating.")] = 100,
    log_every_s: Annotated[
        float,
        typer.Option(
            "--log-every-s",
            help="When stdout is not a terminal: a line with the sweep's state every this many "
            "seconds.",
        ),
    ] = 30.0,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    resources: ResourcesOption = None,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Run a grid of trainings (resumable: rerun the same command to continue it)."""
    check_seconds(log_every_s, "--log-every-s")
    import os

    from srpo_core import sweep as sw
    from srpo_core.cluster import check_address, check_executor, parse_resources
    from srpo_core.registry import Registry, resolve_registry_url

    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    if workers < 0:
        raise UserError(f"--workers must be >= 0, got {workers}")
    if population_size is not None and (not population or population_size < 1):
        raise UserError("--population-size needs --population and a size >= 1")
    check_executor(executor, address, resources)
    check_address(address)
    override = parse_resources(resources)
    plan = sw.plan_sweep(
        env,
        presets=preset or [],
        taus=_floats(tau, "tau") if tau is not None else None,
        epss=_floats(eps, "eps") if eps else [None],
        sweeps=sweep or [],
        seeds=range(first_seed, first_seed + seeds),
        steps=steps,
        sets=set_ or [],
        tags=tag or [],
        name=name,
    )
    size = (population_size or seeds) if population else None
    if population:
        _check_population_sweep(plan)
    if dry_run:
        _print_dry_run(plan, json_, size)
        return
    url = resolve_registry_url(registry)
    signal.signal(signal.SIGTERM, _interrupt)
    with open_cluster(executor, address) as cluster:
        if cluster is not None:  # refused before the registry is opened: nothing written
            cluster.check_registry(url)
            cluster.check_fits(override.over(p.resources) for p in plan.points)
        with Registry(url) as reg:
            jobs, done = sw.pending_jobs(reg, plan, size)
            if cluster is None:
                runner, limit = sw.LocalExecutor(), workers or os.cpu_count() or 1
            else:
                runner, limit = cluster.executor(reg, override), workers or None
            dispatched = _run(
                reg, plan, jobs, runner, limit, size, quiet=json_, every_s=log_every_s
            )
            failures = dispatched.failures
            runs = sw.point_runs(reg, plan)
            rows = [sw.summary_row(reg, p, runs.get(p.key)) for p in plan.points]
            pool = None
            if crossplay and not failures:
                player = cluster.seating_player(reg, override) if cluster else None
                chosen = [runs[p.key] for p in plan.points]
                pool = _crossplay(reg, plan, chosen, episodes, json_, player)
    if json_:
        print_json(
            {
                "ablation": plan.ablation_id,
                "skipped": len(done),
                "ran": sum(len(j.points) for j in jobs),
                "resubmitted": dispatched.resubmitted,
                "failed": [
                    {"setting": p.setting, "seed": p.seed, "error": e}
                    for j, e in failures
                    for p in j.points
                ],
                "points": rows,
                "crossplay": pool,
            }
        )
    else:
        console.print(
            f"ablation [bold]{text(plan.ablation_id)}[/bold] (tag {text(plan.tag)}): "
            f"{len(plan.points)} runs, {len(done)} already finished, "
            f"{sum(len(j.points) for j in jobs)} run now",
            highlight=False,
        )
        if dispatched.resubmitted:
            console.print(
                f"{dispatched.resubmitted} job(s) submitted again after their node or worker "
                "died (their runs resumed from their checkpoints)",
                highlight=False,
            )
        for job, error in failures:
            err_console.print(f"failed: {text(job.label)}: {text(error)}", highlight=False)
    if failures:
        raise typer.Exit(1)


def _run(
    reg,
    plan,
    jobs,
    executor,
    workers: int | None,
    population_size: int | None,
    quiet: bool,
    every_s: float,
) -> Dispatcher:
    """Run the jobs (at most ``workers`` at a time; None: all), showing the grid from the
    registry as runs train: a live table on a terminal, a line every ``every_s`` seconds in
    a log."""
    from srpo_core import sweep as sw
    from srpo_core.dispatch import Dispatcher

    dispatcher = Dispatcher(
        reg, plan, jobs, executor, workers=workers, population_size=population_size
    )
    on_terminal = not quiet and console.is_terminal
    live = Live(console=console, auto_refresh=False, transient=False) if on_terminal else None
    next_line = 0.0
    try:
        if live:
            live.start()
        while dispatcher.active:
            dispatcher.step()
            if not quiet:
                runs = sw.point_runs(reg, plan)
                rows = [sw.summary_row(reg, p, runs.get(p.key)) for p in plan.points]
                if live:
                    live.update(_table(plan, rows), refresh=True)
                elif time.monotonic() >= next_line or not dispatcher.active:
                    next_line = time.monotonic() + every_s
                    console.print(_state_line(plan, rows), highlight=False, soft_wrap=True)
            time.sleep(POLL_SECONDS if dispatcher.active else 0)
    except KeyboardInterrupt:
        dispatcher.stop()
        raise
    finally:
        if live:
            live.stop()
    if not quiet and not on_terminal:
        runs = sw.point_runs(reg, plan)
        console.print(_table(plan, [sw.summary_row(reg, p, runs.get(p.key)) for p in plan.points]))
    return dispatcher


def _state_line(plan, rows: list[dict]) -> str:
    """One log line: how many runs are in each state and the steps trained so far."""
    states = Counter(r["status"] for r in rows)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    steps = sum(r["env_steps"] for r in rows)
    return f"ablation {plan.ablation_id}: {len(rows)} runs: {counts}; {steps:,} env steps trained"


def _table(plan, rows: list[dict]) -> Table:
    table = Table(
        "setting",
        "seed",
        "run",
        "state",
        "env steps",
        "SPS",
        "return",
        title=f"ablation {text(plan.ablation_id)}",
    )
    for r in rows:
        table.add_row(
            text(r["setting"]),
            str(r["seed"]),
            text(r["run"] or "-"),
            text(r["status"]),
            f"{r['env_steps']:,}",
            "-" if r["sps"] is None else f"{r['sps']:,.0f}",
            "-" if r["return"] is None else f"{r['return']:.3f}",
        )
    return table


def _check_population_sweep(plan) -> None:
    """Refuse (one line, before anything runs) a grid whose settings cannot train as
    populations."""
    from srpo_core.config import resolve
    from srpo_core.population.members import check_population

    args = plan.train_args(plan.points[0])
    env = args[args.index("--env") + 1]
    check_population([resolve(flags={"env": {"name": env}}, presets=list(plan.presets))])


def _print_dry_run(plan, json_: bool, population_size: int | None) -> None:
    if population_size is None:
        commands = [command_line(plan.train_args(p)) for p in plan.points]
    else:
        settings: dict[str, list] = {}
        for point in plan.points:
            settings.setdefault(point.setting, []).append(point)
        commands = [
            command_line(plan.population_args(points[i : i + population_size]))
            for points in settings.values()
            for i in range(0, len(points), population_size)
        ]
    if json_:
        print_json({"ablation": plan.ablation_id, "commands": commands})
        return
    runs = f"{len(plan.points)} runs"
    if population_size is not None:
        runs += f" in {len(commands)} populations"
    console.print(f"ablation {text(plan.ablation_id)}: {runs}", highlight=False)
    for command in commands:
        console.print(text(command), highlight=False, soft_wrap=True)


def _crossplay(reg, plan, runs, episodes: int, quiet: bool, player=None) -> list[dict[str, Any]]:
    """All pairs of the sweep's runs: TP and CP per setting (seatings played by ``player``
    where given: on the sweep's cluster)."""
    from srpo_core.evaluation.plan import pool_plan
    from srpo_core.evaluation.play import evaluate
    from srpo_core.evaluation.pool import pair_returns, tp_cp
    from srpo_core.evaluation.seatings import Setup

    env_values, pairs = pool_plan(reg, runs)
    played = evaluate(reg, [s for _, _, s in pairs], Setup(env_values, episodes, 0), player=player)
    returns = pair_returns(pairs, played.outcomes)
    setting = {run.id: point.setting for run, point in zip(runs, plan.points, strict=True)}
    groups = tp_cp(returns, setting)
    out = [
        {"setting": name, "runs": g.runs, "tp": g.tp, "cp": g.cp, "drop": g.drop}
        for name, g in groups.items()
    ]
    if not quiet:
        table = Table(
            "setting",
            "runs",
            "TP",
            "CP",
            "TP-CP",
            title=f"cross-play of the population ({episodes} episodes per seating)",
        )
        for r in out:
            table.add_row(
                text(r["setting"]), str(r["runs"]), *(_num(r[k]) for k in ("tp", "cp", "drop"))
            )
        console.print(table)
    return out


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
