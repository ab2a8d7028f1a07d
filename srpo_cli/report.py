"""`srpo report`: Markdown + figures (PNG, SVG or PDF) of an ablation, an env or a zoo, from the
registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from srpo_cli.common import RegistryOption, console, text
from srpo_core.errors import UserError


def report(
    ablation: Annotated[
        str | None, typer.Option(help="The runs of this sweep (tagged ablation:ID).")
    ] = None,
    env: Annotated[str | None, typer.Option(help="Every finished run of this env.")] = None,
    zoo: Annotated[
        str | None, typer.Option(help="The agent runs with stored results against this zoo.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for report.md and its figures.")] = None,
    episodes: Annotated[int, typer.Option(help="Episodes per seating of the results.")] = 100,
    seed: Annotated[int, typer.Option(help="Evaluation seed of the results.")] = 0,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Also draw this logged metric's learning curves (repeatable)."),
    ] = None,
    figure_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="File type of the figures: png (default), svg or pdf.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            help="Only check the report in this folder: every section and figure present "
            "and no section missing data (exit 2 otherwise).",
        ),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Write DIR/report.md with figures (runs, learning curves, cross-play matrix, TP vs CP,
    statistics (IQM, profiles, improvement), tau ablation, leaderboard, provenance); nothing
    is trained or played."""
    from srpo_core import report as rp

    if check is not None:
        if any(v is not None for v in (ablation, env, zoo, out, metric, figure_format)):
            raise UserError("--check DIR takes no other selection, --out or --format")
        problems = rp.check_report(check)
        if len(problems) > 1:
            for problem in problems:
                console.print(f"- {text(problem)}", highlight=False, soft_wrap=True)
        if problems:
            count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
            raise UserError(f"report in {check} is incomplete ({count}): {problems[0]}")
        console.print(
            f"{text(check / rp.REPORT_FILE)}: every section, figure and result present",
            highlight=False,
        )
        return
    if out is None:
        raise UserError("give --out DIR (the folder for report.md and its figures)")
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    figure_format = (figure_format or "png").lower()
    if figure_format not in rp.FIGURE_FORMATS:
        choices = ", ".join(rp.FIGURE_FORMATS)
        raise UserError(f"--format must be one of {choices}, got {figure_format!r}")
    rp.check_out_dir(out)
    from srpo_core.registry import Registry

    with Registry(registry, create=False) as reg:
        built = rp.build_report(
            reg,
            ablation=ablation,
            env=env,
            zoo=zoo,
            out=str(out),
            episodes=episodes,
            seed=seed,
            metrics=list(dict.fromkeys(metric or [])),
            figure_format=figure_format,
        )
    missing = rp.write_report(built, out)
    console.print(
        f"wrote {text(out / rp.REPORT_FILE)} with {len(built.figures)} figures", highlight=False
    )
    for gap in missing:
        console.print(f"incomplete: {text(gap.problem())}", highlight=False, soft_wrap=True)
