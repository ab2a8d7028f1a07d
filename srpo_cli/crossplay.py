"""`srpo crossplay`: agents with a held-out zoo (--zoo) or all pairs of a population (--pool)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from srpo_cli.cluster_options import (
    AddressOption,
    ExecutorOption,
    ResourcesOption,
    open_cluster,
)
from srpo_cli.common import JsonOption, RegistryOption, console, print_json, print_table, text
from srpo_core.errors import UserError

MAX_PAIR_ROWS = 60
"""Longer per-seating tables are left to --json."""


def crossplay(
    zoo: Annotated[str | None, typer.Option(help="Evaluate agents with this zoo.")] = None,
    agents: Annotated[
        str | None,
        typer.Option(
            help="Agent runs (query, e.g. 'algo=srpo,tag=x'); default: every "
            "finished run on the zoo's env config that is not in the zoo."
        ),
    ] = None,
    pool: Annotated[
        str | None, typer.Option(help="Every pair within these runs (query): TP and CP.")
    ] = None,
    episodes: Annotated[int, typer.Option(help="Episodes per seating.")] = 100,
    seed: Annotated[int, typer.Option(help="Evaluation seed.")] = 0,
    workers: Annotated[
        int, typer.Option(help="Processes; 0 = one per core when there is enough to play.")
    ] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    recompute: Annotated[
        bool, typer.Option("--recompute", metavar="", help="Play again and replace stored results.")
    ] = False,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    resources: ResourcesOption = None,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Play agents with partners they never trained with; results are stored and reused."""
    import torch

    from srpo_core.cluster import (
        check_address,
        check_executor,
        parse_resources,
        seating_resources,
    )
    from srpo_core.evaluation.plan import pool_plan, zoo_plan
    from srpo_core.evaluation.play import evaluate
    from srpo_core.evaluation.pool import pair_returns
    from srpo_core.evaluation.seatings import Setup
    from srpo_core.query import parse_query, select_runs
    from srpo_core.registry import resolve_registry_url

    if (zoo is None) == (pool is None):
        raise UserError("give exactly one of --zoo NAME or --pool QUERY")
    if pool is not None and agents is not None:
        raise UserError("--agents goes with --zoo; --pool already names the population")
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if workers < 0:
        raise UserError(f"--workers must be >= 0, got {workers}")
    check_executor(executor, address, resources)
    check_address(address)
    override = parse_resources(resources)
    torch.set_num_threads(1)
    url = resolve_registry_url(registry)
    request = override.over(seating_resources(device))
    with open_cluster(executor, address) as cluster, _opened(cluster, url, request) as reg:
        if zoo is not None:
            info = reg.get_zoo(zoo)
            env_values = info.env_config
            plan = zoo_plan(reg, info, parse_query(agents) if agents else None)
            seatings = [s for _, s, _ in plan]
        else:
            runs = select_runs(reg, parse_query(pool))
            if len(runs) < 2:
                raise UserError(f"--pool '{pool}' matches {len(runs)} finished run(s); need 2+")
            env_values, pairs = pool_plan(reg, runs)
            seatings = [s for _, _, s in pairs]
        setup = Setup(env_values, episodes, seed, device)
        player = cluster.seating_player(reg, override) if cluster else None
        with _progress(disable=json_) as bar:
            task = bar.add_task("crossplay", total=None)
            played = evaluate(
                reg,
                seatings,
                setup,
                workers=workers,
                recompute=recompute,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                player=player,
            )
    metrics = [o.metrics for o in played.outcomes]
    if zoo is not None:
        rows = [_pair_row(run, s, kind, m) for (run, s, kind), m in zip(plan, metrics, strict=True)]
        summary = _zoo_summary(rows)
    else:
        rows = [
            _pair_row(row, s, "tp" if row.id == col.id else "cp", m, column=col.id)
            for (row, col, s), m in zip(pairs, metrics, strict=True)
        ]
        summary = _pool_summary(pair_returns(pairs, played.outcomes), rows)
    counts = {"played_episodes": played.played_episodes, "reused_results": played.reused}
    if json_:
        print_json(
            {
                "zoo": zoo,
                "pool": pool,
                "episodes": episodes,
                "seed": seed,
                "env_config_hash": setup.env_hash,
                **counts,
                "summary": summary,
                "seatings": rows,
            }
        )
        return
    if len(rows) <= MAX_PAIR_ROWS:
        _print_pairs(rows)
    if pool is not None:
        _print_matrix(rows)
    _print_summary(summary)
    console.print(
        f"{len(rows)} seatings: played {played.played_episodes:,} episodes, reused "
        f"{played.reused} stored results",
        highlight=False,
    )


@contextmanager
def _opened(cluster, url: str, request) -> Iterator[Any]:
    """The registry, once the cluster (if any) is known to share it and to grant a
    seating's ``request``."""
    from srpo_core.registry import Registry

    if cluster is not None:
        cluster.check_registry(url)
        cluster.check_fits([request])
    with Registry(url, create=False) as reg:
        yield reg


def _pair_row(run, seating, kind: str, m: dict, column: str | None = None) -> dict[str, Any]:
    row = {
        "agent_run": run.id,
        "algo": run.algo,
        "tau": run.tau,
        "agent": seating.agent.label,
        "seat": seating.seat,
        "partner": seating.partner_label,
        "kind": kind,
        "return": m["return"],
        "team_reward": m["team_reward"],
        "agent_cost": m.get("agent/cost"),
        "partner_cost": m.get("partner/cost"),
        "free_riding": m.get("free_riding"),
        "metrics": m,
    }
    if column is not None:
        row["partner_run"] = column
    return row


def _zoo_summary(rows: list[dict]) -> list[dict[str, Any]]:
    from srpo_core.evaluation.pool import run_tp_cp

    label = {r["agent_run"]: (r["algo"], r["tau"]) for r in rows}
    means = run_tp_cp((r["agent_run"], r["kind"], r["return"]) for r in rows)
    return [
        {
            "run": run,
            "algo": label[run][0],
            "tau": label[run][1],
            "tp": tp,
            "cp": cp,
            "drop": tp - cp,
        }
        for run, (tp, cp) in means.items()
    ]


def _pool_summary(returns: dict, rows: list[dict]) -> list[dict[str, Any]]:
    """Per (algo, tau) of the row runs: TP = diagonal entries, CP = the row runs with every
    other run of the pool (both methods pooled as partners, as in the paper)."""
    from srpo_core.evaluation.pool import tp_cp

    groups = tp_cp(returns, {r["agent_run"]: (r["algo"], r["tau"]) for r in rows})
    return [
        {
            "algo": algo,
            "tau": tau,
            "runs": g.runs,
            "tp": g.tp,
            "tp_std": g.tp_std,
            "cp": g.cp,
            "cp_std": g.cp_std,
            "drop": g.drop,
        }
        for (algo, tau), g in sorted(groups.items())
    ]


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else text(value)


def _print_pairs(rows: list[dict]) -> None:
    table = Table(
        "agent",
        "seat",
        "partner",
        "",
        "return",
        "team reward",
        "agent cost",
        "partner cost",
        "free-riding",
        title="seatings",
    )
    for r in rows:
        table.add_row(
            text(r["agent"]),
            text(r["seat"]),
            text(r["partner"]),
            r["kind"].upper(),
            _f(r["return"]),
            _f(r["team_reward"]),
            _f(r["agent_cost"]),
            _f(r["partner_cost"]),
            _f(r["free_riding"]),
        )
    print_table(table, drop=("partner cost", "agent cost", "team reward"))


def _print_matrix(rows: list[dict]) -> None:
    from srpo_core.evaluation.pool import cell_means

    runs = list(dict.fromkeys(r["agent_run"] for r in rows))
    cell = cell_means((r["agent_run"], r["partner_run"], r["return"]) for r in rows)
    table = Table(
        "row run \\ partner run", *[text(r[:8]) for r in runs], title="mean return (diagonal = TP)"
    )
    for row in runs:
        table.add_row(text(row[:8]), *[_f(cell[(row, col)]) for col in runs])
    console.print(table)


def _print_summary(summary: list[dict]) -> None:
    if not summary:
        return
    keys = list(summary[0])
    table = Table(*keys, title="summary")
    for s in summary:
        table.add_row(*[f"{s[k]:g}" if k == "tau" else _f(s[k]) for k in keys])
    console.print(table)


def _progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]cross-play"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("seatings"),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
    )
