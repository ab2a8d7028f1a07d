"""What every command shares: the registry option, consoles, safe text for them."""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from srpo_core.errors import UserError
from srpo_core.redact import redact

PIPE_WIDTH = 100_000
"""Off a terminal (a pipe, a log file) lines are as long as their content: tables keep full
ids and numbers, and messages are not wrapped, whatever $COLUMNS says."""


def _console(*, stderr: bool = False) -> Console:
    on_terminal = Console(stderr=stderr)
    return on_terminal if on_terminal.is_terminal else Console(stderr=stderr, width=PIPE_WIDTH)


console = _console()
err_console = _console(stderr=True)

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URL or SQLite path (default: $SRPO_REGISTRY, else ./srpo.db).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", metavar="", help="Print machine-readable JSON.")
]
YesOption = Annotated[
    bool,
    typer.Option("--yes", metavar="", help="Do not ask (needed when stdin is not a terminal)."),
]


class Interrupted(Exception):
    """Ctrl-C or SIGTERM ended a command; the message says what to do next. The CLI prints
    it as ``error: interrupted: MESSAGE`` and exits 130."""


def check_seconds(value: float, option: str) -> None:
    """A duration option: a finite number of seconds >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"{option} must be a number of seconds >= 0, got {value}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def text(value: Any) -> str:
    """Any user-supplied or stored value as rich markup that prints it verbatim: escaped
    (a tag such as '[/x]' would be markup, or a markup error), credentials masked."""
    return escape(redact(str(value)))


def fmt(value: Any) -> str:
    """A table cell or field value: floats to 4 significant digits, None empty, else `text`."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else text(value)


def command_line(args: list[str]) -> str:
    """``srpo ARGS`` as a shell command, credentials masked: what runs store and print."""
    return redact(shlex.join(["srpo", *args]))


def fit_table(table: Table, target: Console, drop: Sequence[str]) -> list[str]:
    """Leave out of ``table`` the columns ``drop`` names (headers, in that order), as many
    as it takes to fit ``target``'s width, so that rich need not cut the values of the
    others; a caption says which are hidden. Returns their headers."""
    hidden: list[str] = []
    unbounded = target.options.update_width(PIPE_WIDTH)
    for header in drop:
        if target.measure(table, options=unbounded).maximum <= target.width:
            break
        headers = [str(column.header) for column in table.columns]
        if header in headers:
            table.columns.pop(headers.index(header))
            hidden.append(header)
    if hidden:
        table.caption = (
            f"hidden to fit the terminal: {', '.join(hidden)} (widen it, or pipe the output "
            "for every column)"
        )
    return hidden


def print_table(table: Table, drop: Sequence[str] = ()) -> None:
    """Print ``table`` on stdout, fitted to a narrow terminal by `fit_table`."""
    fit_table(table, console, drop)
    console.print(table)
