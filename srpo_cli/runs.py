"""`srpo runs list|show|export|compare`: what the registry holds."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from srpo_cli.common import (
    JsonOption,
    RegistryOption,
    YesOption,
    console,
    fmt,
    print_json,
    print_table,
    text,
)
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
    print_table(table, drop=("created", "eps", "env steps", "env"))


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


@app.command("export")
def export(
    query: Annotated[
        str,
        typer.Argument(
            help="Runs to export (query, e.g. 'algo=srpo,tau=10,seed=0..4'; '' for all). "
            "Keys: env, algo, tau, eps, seed, tag, run, status. status defaults to "
            "finished|imported; add e.g. status=finished|running to include live runs.",
            show_default=False,
        ),
    ],
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv, jsonl or parquet (parquet needs pyarrow or fastparquet and --out). "
            "Default: from the --out suffix, else csv.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(help="Write here (replaced only once complete); default: stdout."),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Only this metric key (repeatable), e.g. eval/return."),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Metric history as long-format rows: run, step, key, value, env, algo, tau, eps, seed.

    Only finished or imported runs unless the query names a status.

    NaN (stored as NULL) is empty in csv, null in jsonl; floats read back exactly as stored.
    """
    from srpo_core import export as ex
    from srpo_core.query import parse_query, select_runs
    from srpo_core.registry import Registry

    kind = ex.format_for(format_, out)
    to_stdout = out is None or out == "-"
    engine = ""
    if kind == "parquet":
        if to_stdout:
            raise UserError("--format parquet writes a binary file: give --out FILE")
        engine = ex.parquet_engine()
    parsed = parse_query(query)
    with Registry(registry, create=False) as reg:
        runs = select_runs(reg, parsed)
        if not runs:
            statuses = "|".join(parsed.statuses)
            raise UserError(f"query '{query}' matches no run with status {statuses}")
        rows = ex.metric_rows(reg, runs, key)
    if key:
        missing = ex.missing_keys(rows, key)
        if missing:
            raise UserError(
                f"no metric {', '.join(repr(k) for k in missing)} in the {len(runs)} "
                "selected run(s)"
            )
    write = ex.write_csv if kind == "csv" else ex.write_jsonl
    if out is not None and not to_stdout:
        with ex.replacing(Path(out)) as tmp:
            if kind == "parquet":
                ex.write_parquet(rows, tmp, engine)
            else:
                with tmp.open("w", encoding="utf-8", newline="") as stream:
                    write(rows, stream)
        return
    try:
        write(rows, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `srpo runs export ... | head`: the reader has all it wants
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


@app.command("compare")
def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids or unique id prefixes.")],
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Runs side by side: final metrics, and the config keys whose values differ."""
    from srpo_core import export as ex
    from srpo_core.registry import Registry

    if len(runs) < 2:
        raise UserError(f"compare needs at least 2 runs, got {len(runs)}")
    with Registry(registry, create=False) as reg:
        infos = [reg.get_run(r) for r in runs]
        seen: dict[str, str] = {}
        for given, info in zip(runs, infos, strict=True):
            if info.id in seen:
                raise UserError(f"'{seen[info.id]}' and '{given}' are the same run {info.id}")
            seen[info.id] = given
        finals = [reg.final_metrics(info.id) for info in infos]
    metrics = ex.metric_table(finals)
    diff = ex.config_diff(infos)
    if json_:
        print_json(
            {
                "runs": [
                    {
                        "id": i.id,
                        "label": ex.run_label(i),
                        "env": i.env,
                        "algo": i.algo,
                        "tau": i.tau,
                        "eps": i.eps,
                        "seed": i.seed,
                        "status": i.display_status,
                    }
                    for i in infos
                ],
                "metrics": {k: _by_run(infos, v) for k, v in metrics.items()},
                "config_diff": {k: _by_run(infos, v) for k, v in diff.items()},
            }
        )
        return
    table = Table(Column("metric", no_wrap=True), *_run_columns(infos), title="final metrics")
    for name, values in metrics.items():
        table.add_row(text(name), *(fmt(v) for v in values))
    console.print(table)
    if not diff:
        console.print("config: identical", highlight=False)
        return
    cfg = Table(
        Column("config key", no_wrap=True), *_run_columns(infos), title="config keys that differ"
    )
    for name, values in diff.items():
        cfg.add_row(text(name), *(fmt(v) for v in values))
    console.print(cfg)


def _run_columns(infos: list[Any]) -> list[Column]:
    """One column per run headed `algo tau=.. seed=..` over its short id (new Column objects
    per table: rich keeps a table's cells in its columns)."""
    return [
        Column(text(f"{i.algo} tau={fmt(i.tau)} seed={i.seed}\n{i.id[:8]}"), justify="right")
        for i in infos
    ]


def _by_run(infos: list[Any], values: list[Any]) -> dict[str, Any]:
    """{run id: value} for JSON, NaN as null (JSON has no NaN)."""
    return {
        i.id: None if isinstance(v, float) and math.isnan(v) else v
        for i, v in zip(infos, values, strict=True)
    }


@app.command("tag")
def tag(
    run: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    tags: Annotated[list[str], typer.Argument(help="Tags (single lines, at most 200 characters).")],
    remove: Annotated[
        bool,
        typer.Option(
            "--remove", metavar="", help="Take these tags off instead (each must be there)."
        ),
    ] = False,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Add tags to a run, or take them off with --remove; prints the run's tags after."""
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        info = reg.tag_run(run, tags, remove=remove)
    if json_:
        print_json({"id": info.id, "tags": list(info.tags)})
        return
    shown = ", ".join(text(t) for t in info.tags) if info.tags else "(none)"
    console.print(f"run {text(info.id)} tags: {shown}", highlight=False)


@app.command("delete")
def delete(
    runs: Annotated[list[str], typer.Argument(help="Run ids or unique id prefixes.")],
    yes: YesOption = False,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Delete runs with their metrics, checkpoints and policies.

    Refused, for all the runs given, while one of them is still training, has a policy in a
    zoo, or has a policy in stored cross-play results. Checkpoint files shared with other
    runs (same content) are kept.
    """
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        infos = reg.check_delete_runs(runs)
        if not yes:
            what = f"{len(infos)} run{'s' if len(infos) != 1 else ''}"
            if not sys.stdin.isatty():
                raise UserError(f"add --yes to delete {what}")
            listed = ", ".join(text(i.id) for i in infos)
            if not typer.confirm(f"delete {what} ({listed}) and their checkpoints?"):
                raise UserError("not confirmed: nothing deleted")
        done = reg.delete_runs([i.id for i in infos])
    if json_:
        print_json(asdict(done))
    else:
        console.print(
            f"deleted {len(done.run_ids)} run(s) {text(', '.join(done.run_ids))}: "
            f"{done.metrics} metric rows, {done.checkpoints} checkpoints, "
            f"{done.policies} policies, {len(done.files_removed)} checkpoint files "
            f"({done.files_shared} kept, shared with other runs)",
            highlight=False,
        )
    if done.files_failed:
        from srpo_cli.common import err_console

        err_console.print(
            f"warning: could not remove {len(done.files_failed)} checkpoint file(s): "
            f"{text(', '.join(done.files_failed))}",
            highlight=False,
        )
