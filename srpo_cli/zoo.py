"""`srpo zoo build|list|show|freeze|export|import`: named sets of partner policies.

Names, refs, descriptions and paths come from users or from imported archives: every such
string is escaped before rich prints it, so a '[' in it is text, never markup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from srpo_cli.common import JsonOption, RegistryOption, YesOption, console, print_json
from srpo_core.errors import UserError

app = typer.Typer(help="Build, freeze and share partner zoos.", no_args_is_help=True)


def _zoo_dict(zoo) -> dict:
    return {
        "name": zoo.name,
        "env": zoo.env,
        "env_config": zoo.env_config,
        "env_config_hash": zoo.env_config_hash,
        "held_out": zoo.held_out,
        "description": zoo.description,
        "created_at": zoo.created_at,
        "frozen_at": zoo.frozen_at,
        "manifest_sha256": zoo.manifest_sha256,
        "members": [
            {"policy": m.policy_ref, "step": m.step, "sha256": m.sha256, "label": m.label}
            for m in zoo.members
        ],
    }


@app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="Zoo name (letters, digits, _ . -).")],
    env: Annotated[str, typer.Option(help="Env family of every member.")],
    runs: Annotated[
        str | None,
        typer.Option(help="Runs whose policies join, e.g. 'algo=ippo,seed=10..14,tag=x'."),
    ] = None,
    at: Annotated[
        str,
        typer.Option(
            help="Checkpoints of each run, as fractions of its last step: 0.25,0.5,1. Each "
            "fraction must pin a checkpoint of its own (below 1: not the final one); runs "
            "keep earlier checkpoints when trained with --set run.checkpoint_every=N."
        ),
    ] = "1",
    policy: Annotated[
        list[str] | None, typer.Option(help="A policy ref, REF or REF@STEP (repeatable).")
    ] = None,
    scripted: Annotated[
        list[str] | None, typer.Option(help="A built-in scripted policy, ENV/NAME.")
    ] = None,
    random: Annotated[
        bool, typer.Option("--random", metavar="", help="Add the uniform policy.")
    ] = False,
    untuned: Annotated[
        list[str] | None,
        typer.Option(help="Debate: an untuned base model directory as a partner (repeatable)."),
    ] = None,
    held_out: Annotated[
        bool,
        typer.Option(
            "--held-out", metavar="", help="Evaluation only: training may not use its members."
        ),
    ] = False,
    preset: Annotated[
        list[str] | None, typer.Option(help="Preset giving the zoo's env config.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="env.key=value of the zoo's env config.")
    ] = None,
    description: Annotated[str, typer.Option(help="A line saying what the zoo is for.")] = "",
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Create a zoo, or add members to one that is not frozen yet."""
    from srpo_core.query import parse_query
    from srpo_core.registry import Registry
    from srpo_core.zoo.build import MemberQuery, build_zoo

    try:
        fractions = tuple(float(x) for x in at.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--at takes fractions like 0.5,1 (got '{at}')") from None
    if any(not s.startswith("env.") for s in set_ or []):
        raise UserError("zoo build --set only takes env.KEY=VALUE")
    members = MemberQuery(
        runs=parse_query(runs) if runs else None,
        fractions=fractions,
        policies=policy or [],
        scripted=scripted or [],
        random=random,
        untuned=untuned or [],
    )
    with Registry(registry, create=False) as reg:
        zoo, added = build_zoo(
            reg,
            name,
            env=env,
            members=members,
            held_out=held_out,
            presets=preset or [],
            sets=set_ or [],
            description=description,
        )
    if json_:
        print_json(_zoo_dict(zoo) | {"added": added})
        return
    kind = "held-out zoo" if zoo.held_out else "zoo"
    console.print(
        f"{kind} [bold]{escape(zoo.name)}[/bold] ({escape(zoo.env)}): {added} new, "
        f"{len(zoo.members)} members"
    )


@app.command("list")
def list_zoos(
    env: Annotated[str | None, typer.Option(help="Only zoos of this env.")] = None,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Zoos, oldest first."""
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        zoos = reg.zoos(env=env)
    if json_:
        print_json([_zoo_dict(z) for z in zoos])
        return
    table = Table("name", "env", "members", "held out", "frozen", "manifest")
    for z in zoos:
        table.add_row(
            escape(z.name),
            escape(z.env),
            str(len(z.members)),
            "yes" if z.held_out else "no",
            z.frozen_at.strftime("%Y-%m-%d %H:%M") if z.frozen_at else "no",
            escape((z.manifest_sha256 or "")[:12]),
        )
    console.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Zoo name.")],
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """A zoo's env config, state and members."""
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        zoo = reg.get_zoo(name)
    data = _zoo_dict(zoo)
    if json_:
        print_json(data)
        return
    state = f"frozen, manifest {escape(str(zoo.manifest_sha256))}" if zoo.frozen else "not frozen"
    held = "held out" if zoo.held_out else "not held out"
    title = f"[bold]zoo {escape(zoo.name)}[/bold]  {escape(zoo.env)}  {held}  {state}"
    console.print(title, highlight=False)
    if zoo.description:
        console.print(f"  {escape(zoo.description)}", highlight=False)
    console.print(f"  env config: {escape(str(zoo.env_config))}", highlight=False)
    table = Table("#", "policy", "step", "checkpoint sha256")
    for m in zoo.members:
        table.add_row(
            str(m.position),
            escape(m.policy_ref),
            "" if m.step is None else str(m.step),
            escape(m.sha256 or ""),
        )
    console.print(table)


@app.command("freeze")
def freeze(
    name: Annotated[str, typer.Argument(help="Zoo name.")],
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Make a zoo immutable; prints its manifest hash (its identity in any registry)."""
    from srpo_core.registry import Registry
    from srpo_core.zoo.manifest import freeze_zoo

    with Registry(registry, create=False) as reg:
        zoo = freeze_zoo(reg, name)
    if json_:
        print_json(_zoo_dict(zoo))
        return
    console.print(
        f"zoo [bold]{escape(zoo.name)}[/bold] frozen: manifest {escape(str(zoo.manifest_sha256))}"
    )


@app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="A frozen zoo.")],
    file: Annotated[Path, typer.Argument(help="Archive to write (.tar.gz).")],
    registry: RegistryOption = None,
) -> None:
    """Write a frozen zoo and its checkpoints into one self-contained archive."""
    from srpo_core.registry import Registry
    from srpo_core.zoo.archive import export_zoo

    with Registry(registry, create=False) as reg:
        sha = export_zoo(reg, name, file)
    console.print(
        f"wrote {escape(str(file))} (zoo {escape(name)}, manifest {escape(sha)})", highlight=False
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A zoo archive from `srpo zoo export`.")],
    name: Annotated[str | None, typer.Option(help="Import under another name.")] = None,
    expect: Annotated[
        str | None, typer.Option(help="Refuse unless the manifest hash starts with this.")
    ] = None,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Import a zoo archive after verifying every hash; the zoo arrives frozen."""
    from srpo_core.registry import Registry
    from srpo_core.zoo.archive import import_zoo, read_archive

    if not file.is_file():
        raise UserError(f"no zoo archive at {file}")
    archive = read_archive(file, expect=expect)  # verified before the registry is touched
    with Registry(registry) as reg:
        zoo, new = import_zoo(reg, archive, name=name)
    if json_:
        print_json(_zoo_dict(zoo) | {"imported": new})
        return
    verb = "imported" if new else "already present:"
    console.print(
        f"{verb} zoo [bold]{escape(zoo.name)}[/bold] ({len(zoo.members)} members, "
        f"manifest {escape(str(zoo.manifest_sha256))})"
    )


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Zoo name.")],
    yes: YesOption = False,
    force_frozen: Annotated[
        bool,
        typer.Option(
            "--force-frozen",
            metavar="",
            help="Delete a frozen zoo too (results and leaderboards are pinned to it).",
        ),
    ] = False,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Delete a zoo and its member list (its policies, runs and results stay)."""
    import sys

    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        zoo = reg.get_zoo(name)
        if zoo.frozen and not force_frozen:
            reg.delete_zoo(name)  # refuses, with the reason
        if not yes:
            if not sys.stdin.isatty():
                raise UserError(f"add --yes to delete zoo '{name}'")
            state = "frozen " if zoo.frozen else ""
            if not typer.confirm(f"delete {state}zoo {name} ({len(zoo.members)} members)?"):
                raise UserError("not confirmed: nothing deleted")
        zoo = reg.delete_zoo(name, force_frozen=force_frozen)
    if json_:
        print_json(_zoo_dict(zoo) | {"deleted": True})
        return
    console.print(
        f"deleted zoo [bold]{escape(zoo.name)}[/bold] ({len(zoo.members)} members)",
        highlight=False,
    )
