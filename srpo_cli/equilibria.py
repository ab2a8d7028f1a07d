"""`srpo equilibria`: every RQE of a two-player matrix game (the training's ground truth)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from srpo_cli.common import JsonOption, console, print_json, text
from srpo_core.errors import UserError


def equilibria(
    game: Annotated[str | None, typer.Option(help="Built-in matrix game.")] = None,
    tau: Annotated[float, typer.Option(help="Risk aversion (0: quantal response).")] = 0.0,
    eps: Annotated[float, typer.Option(help="Bounded rationality (> 0).")] = 0.2,
    preset: Annotated[
        str | None, typer.Option(help="Take the game's tables from this preset.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="env.reward=..., env.cost=... overrides.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """All risk-averse quantal response equilibria of a 2-player matrix game."""
    from srpo_core import config as cfg
    from srpo_core.envs.matrix.equilibria import find_rqe

    config = cfg.resolve(
        presets=[preset] if preset else [],
        flags={"env": {"name": "matrix", "game": game}},
        sets=set_ or [],
    )
    labels, reward, cost = config.env.tables()
    try:
        found = find_rqe(reward, cost, tau, eps)
    except (ValueError, RuntimeError) as exc:  # bad tables; a best response that can't converge
        raise UserError(str(exc)) from None
    if json_:
        print_json(
            {
                "game": config.env.game,
                "tau": tau,
                "eps": eps,
                "actions": labels,
                "equilibria": [e.to_dict(cost) for e in found],
            }
        )
        return
    table = Table(
        "player 0",
        "player 1",
        "E\\[c0]",
        "E\\[c1]",
        "free-riding",
        title=f"RQE of {text(config.env.game)}, tau={tau:g}, eps={eps:g}",
    )
    for e in found:
        c0, c1 = e.expected_costs(cost)
        table.add_row(
            *(_strategy(s, labels) for s in e.strategies),
            f"{c0:.4f}",
            f"{c1:.4f}",
            f"{e.free_riding_degree(cost):.4f}",
        )
    console.print(table)


def _strategy(probs: tuple[float, ...], labels: list[str]) -> str:
    return " ".join(f"{text(label)}={p:.4f}" for label, p in zip(labels, probs, strict=False))
