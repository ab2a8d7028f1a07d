"""`srpo leaderboard`: agents ranked by their stored results with a zoo's partners."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from srpo_cli.common import JsonOption, RegistryOption, print_json, print_table, text
from srpo_core.errors import UserError

FORMATS = ("table", "md", "csv", "json")


def leaderboard(
    zoo: Annotated[str | None, typer.Option(help="The partner zoo.")] = None,
    env: Annotated[
        str | None, typer.Option(help="Without --zoo: one board per held-out zoo of this env.")
    ] = None,
    episodes: Annotated[int, typer.Option(help="Episodes per seating of the results.")] = 100,
    seed: Annotated[int, typer.Option(help="Evaluation seed of the results.")] = 0,
    format_: Annotated[str, typer.Option("--format", help="table, md, csv or json.")] = "table",
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Rank agents by mean return with held-out partners (plus IQM, TP-CP drop, normalised
    score), from stored cross-play results only."""
    from srpo_core.evaluation import leaderboard as lb
    from srpo_core.registry import Registry

    format_ = "json" if json_ else format_
    if format_ not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got '{format_}'")
    with Registry(registry, create=False) as reg:
        if zoo is not None:
            zoos = [reg.get_zoo(zoo)]
            if env is not None and zoos[0].env != env:
                raise UserError(f"zoo {zoo!r} is a {zoos[0].env} zoo, not {env}")
        elif env is not None:
            zoos = [z for z in reg.zoos(env=env) if z.held_out]
            if not zoos:
                raise UserError(f"no held-out {env} zoo in the registry")
        else:
            raise UserError("give --zoo NAME (or --env ENV for every held-out zoo of it)")
        boards = [lb.build_leaderboard(reg, z, episodes=episodes, seed=seed) for z in zoos]
    if format_ == "json":
        data = [b.to_dict() for b in boards]
        print_json(data[0] if zoo is not None else data)
    elif format_ == "md":
        typer.echo("\n".join(lb.to_markdown(b) for b in boards), nl=False)
    elif format_ == "csv":
        typer.echo("".join(lb.to_csv(b) for b in boards), nl=False)
    else:
        for board in boards:
            _print(board, lb)


def _print(board, lb) -> None:
    title = (
        f"zoo {text(board.zoo)} ({text(board.env)}), {board.episodes} episodes/seating, "
        f"seed {board.seed}"
    )
    groups = Table(*[t for _, t in lb.GROUP_COLUMNS], title=f"{title}: by algorithm and tau")
    for row in board.groups:
        groups.add_row(*map(text, lb.cells(row, lb.GROUP_COLUMNS)))
    agents = Table(*[t for _, t in lb.TABLE_AGENT_COLUMNS], title="agents")
    for row in board.agents:
        agents.add_row(*map(text, lb.cells(row, lb.TABLE_AGENT_COLUMNS)))
    print_table(groups, drop=("TP-CP std", "CP std", "normalised", "eps", "agents"))
    print_table(agents, drop=("pairs", "normalised", "IQM 95% CI", "CP IQM", "algo", "tau"))
