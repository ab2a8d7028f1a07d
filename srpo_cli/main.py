"""The `srpo` command: Typer app and the one-line error contract.

A user error (`UserError`) prints ``error: MESSAGE`` and exits 2; any other exception prints
``error: internal error: TYPE: MESSAGE`` and exits 1 (``srpo --debug ...`` adds the
traceback); an interrupt (Ctrl-C, SIGTERM) prints ``error: interrupted`` and exits 130.
Every message is one line, credentials masked.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from srpo_cli import (
    ablate,
    bench,
    crossplay,
    equilibria,
    leaderboard,
    registry,
    report,
    runs,
    train,
    zoo,
)
from srpo_cli.common import Interrupted, err_console, text
from srpo_core.errors import UserError
from srpo_core.redact import redact
from srpo_core.registry.provenance import package_version

INTERRUPTED = 130
"""Typer's exit code for KeyboardInterrupt (128 + SIGINT)."""

app = typer.Typer(
    name="srpo",
    help="Train collaborative agents that work with partners they never met (IPPO / SRPO).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train.train)
app.command("equilibria")(equilibria.equilibria)
app.command("bench")(bench.bench)
app.command("ablate")(ablate.ablate)
app.command("crossplay")(crossplay.crossplay)
app.command("leaderboard")(leaderboard.leaderboard)
app.command("report")(report.report)
app.add_typer(runs.app, name="runs")
app.add_typer(zoo.app, name="zoo")
app.add_typer(registry.app, name="registry")

debug = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"srpo {package_version()}")
        raise typer.Exit()


@app.callback()
def options(
    debug_: Annotated[
        bool,
        typer.Option(
            "--debug", metavar="", help="Show the traceback of any error (srpo --debug CMD)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_print_version,
            is_eager=True,
            help="Print the version.",
        ),
    ] = False,
) -> None:
    global debug
    debug = debug_


def fail(message: str, code: int) -> None:
    """Print ``error: MESSAGE`` on one line (the traceback first with --debug) and exit."""
    if debug:
        sys.stderr.write(redact(traceback.format_exc()))
    line = " ".join(message.split())
    err_console.print(f"[red]error:[/red] {text(line)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def main() -> None:
    try:
        app()
    except UserError as exc:
        fail(str(exc), 2)
    except Interrupted as exc:
        fail(f"interrupted: {exc}", INTERRUPTED)
    except KeyboardInterrupt:  # outside a command, where Typer does not catch it
        fail("interrupted", INTERRUPTED)
    except SystemExit as exc:
        if exc.code == INTERRUPTED:  # Typer exits 130 on KeyboardInterrupt, silently
            fail("interrupted", INTERRUPTED)
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = "" if debug else " (rerun with --debug for the traceback)"
        fail(f"internal error: {type(exc).__name__}: {first}{hint}", 1)


if __name__ == "__main__":
    main()
