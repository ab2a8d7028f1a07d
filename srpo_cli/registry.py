"""`srpo registry check|upgrade`: verify the whole registry (exit 1 when something is wrong);
bring an older registry's schema to this version."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.markup import escape
from rich.table import Table

from srpo_cli.common import JsonOption, RegistryOption, console, print_json

app = typer.Typer(help="Verify or upgrade the registry as a whole.", no_args_is_help=True)


@app.command("check")
def check(registry: RegistryOption = None, json_: JsonOption = False) -> None:
    """Re-hash every checkpoint, check it fits its policies, find missing, unreferenced and
    stray artifact files and runs whose lease expired. Writes nothing."""
    from srpo_core.integrity import check_registry
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        report = check_registry(reg)
    if json_:
        print_json(
            {
                "ok": report.ok,
                "runs": report.runs,
                "checkpoints": report.checkpoints,
                "files": report.files,
                "findings": [asdict(f) for f in report.findings],
            }
        )
    else:
        summary = (
            f"{report.runs} runs, {report.checkpoints} checkpoints, "
            f"{report.files} artifact files checked"
        )
        if report.ok:
            console.print(f"{summary}: everything is in order")
        else:
            table = Table("finding", "subject", "detail", show_lines=False)
            for finding in report.findings:
                table.add_row(finding.kind, escape(finding.subject), escape(finding.detail))
            console.print(table)
            console.print(f"{summary}: {len(report.findings)} problem(s)")
    if not report.ok:
        raise typer.Exit(1)


@app.command("upgrade")
def upgrade(registry: RegistryOption = None) -> None:
    """Bring an older registry's schema to this srpo's version (other commands that only
    read refuse an older registry; those that create runs upgrade it themselves)."""
    from srpo_core.registry import Registry
    from srpo_core.registry.migrations import head

    with Registry(registry, create=False, upgrade=True) as reg:
        typer.echo(f"registry {reg.shown} has schema version {head()}")
