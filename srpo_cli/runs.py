"""`srpo runs list|show`: what the registry holds."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Column, Table

from srpo_cli.common import JsonOption, RegistryOption, console, fmt, print_json, text
from srpo_core.errors import UserError

app = typer.Typer(help="List and inspect runs in the registry.", no_args_is_help=True)


@app.command("list")
def list_runs(
    env: Annotated[str | None, typer.Option(help="Only runs of this env.")] = None,
    algo: Annotated[str | None, typer.Option(help="Only runs of this algorithm.")] = None,
    status: Annotated[
        str | None, typer.Option(help="running, finished, failed, interrupted.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only runs with this tag.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many (newest first).")] = None,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Runs, newest first."""
    from srpo_core.registry import Registry

    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    with Registry(registry, create=False) as reg:
        runs = reg.list_runs(env=env, algo=algo, status=status, tags=tag, limit=limit)
    if json_:
        print_json([{k: v for k, v in asdict(r).items() if k != "config"} for r in runs])
        return
    table = Table("env", "algo", "tau", "eps", "seed", "status", "env steps", "created")
    table.columns.insert(0, Column("id", no_wrap=True))
    for r in runs:
        table.add_row(
            text(r.id),
            text(r.env),
            text(r.algo),
            fmt(r.tau),
            fmt(r.eps),
            str(r.seed),
            text(r.display_status),
            f"{r.env_steps:,}",
            r.created_at.strftime("%m-%d %H:%M"),
        )
    console.print(table)


@app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """One run: status, resolved config, final metrics, checkpoints, policies."""
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        info = reg.get_run(run)
        final = reg.final_metrics(info.id)
        checkpoints = reg.checkpoints(info.id)
        policies = reg.policies(run_id=info.id)
    data = asdict(info) | {
        "final_metrics": final,
        "checkpoints": [asdict(c) for c in checkpoints],
        "policies": [p.id for p in policies],
    }
    if json_:
        print_json(data)
        return
    console.print(
        f"[bold]run {text(info.id)}[/bold]  {text(info.env)} / {text(info.algo)}  "
        f"status {text(info.display_status)}"
    )
    for key in (
        "tau",
        "eps",
        "seed",
        "env_steps",
        "hero_samples",
        "package_version",
        "git_commit",
        "command",
        "created_at",
        "ended_at",
        "error",
    ):
        if data[key] not in (None, ""):
            console.print(f"  {key}: {fmt(data[key])}", highlight=False)
    console.print(f"  policies: {text(', '.join(data['policies']))}", highlight=False)
    table = Table("step", "sha256", "size", title="checkpoints")
    for c in checkpoints:
        table.add_row(f"{c.step:,}", text(c.sha256), f"{c.size_bytes:,}")
    console.print(table)
    metrics = Table("metric", "final value", title="final metrics")
    for key, value in sorted(final.items()):
        metrics.add_row(text(key), fmt(value))
    console.print(metrics)
