"""`srpo train`: resolve a config, train one run into the registry."""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from srpo_cli.common import JsonOption, RegistryOption, command_line, console, print_json, text
from srpo_core.errors import UserError
from srpo_core.redact import redact


def _interrupt(signum, frame):  # SIGTERM ends a run like Ctrl-C: status 'interrupted'
    raise KeyboardInterrupt


def train(
    env: Annotated[
        str | None,
        typer.Option(
            help="Env family: matrix, quadratic, gridworld, tag, overcooked, hanabi, ipd, debate."
        ),
    ] = None,
    game: Annotated[str | None, typer.Option(help="Matrix game name (env.game).")] = None,
    role: Annotated[
        str | None, typer.Option(help="Tag: chasers (default) or runner (env.role).")
    ] = None,
    algo: Annotated[str | None, typer.Option(help="ippo or srpo.")] = None,
    tau: Annotated[float | None, typer.Option(help="Risk aversion (SRPO); 0 is IPPO.")] = None,
    eps: Annotated[float | None, typer.Option(help="Bounded rationality (entropy bonus).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random component.")] = None,
    steps: Annotated[int | None, typer.Option(help="Budget (run.steps).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto.")] = None,
    preset: Annotated[
        list[str] | None, typer.Option(help="Preset name in presets/ or a .toml path.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any key: section.key=value (TOML value)."),
    ] = None,
    config_from: Annotated[
        str | None, typer.Option(help="Replay the resolved config of this run.")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue this interrupted run from its checkpoint.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag the run (repeatable).")] = None,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Train IPPO or SRPO; checkpoints and metrics go into the registry."""
    from srpo_core import config as cfg
    from srpo_core import train as training
    from srpo_core.registry import Registry

    if resume:
        given = [env, game, role, algo, tau, eps, seed, steps, device, preset, set_, config_from]
        if any(v for v in given if v not in (None, [])):
            raise UserError("--resume takes no config options: a run resumes as it was")
        reg = Registry(registry, create=False)
    else:
        base = None
        if config_from:
            with Registry(registry, create=False) as stored:
                base = stored.get_run(config_from).config
        config = cfg.resolve(
            presets=preset or [],
            flags={
                "env": {"name": env, "game": game, "role": role},
                "algo": {"name": algo, "tau": tau, "eps": eps},
                "run": {"seed": seed, "steps": steps, "device": device},
            },
            sets=set_ or [],
            base=base,
        )
        reg = Registry(registry)  # created only once the config is known to be valid
    signal.signal(signal.SIGTERM, _interrupt)
    command = command_line(sys.argv[1:])
    bar = None if json_ else _progress_bar()
    with bar or contextlib.nullcontext():
        task = bar.add_task("train", total=None, sps=0.0, ret="-") if bar else None

        def on_progress(p) -> None:
            if bar:
                ret = "-" if p.eval_return is None else f"{p.eval_return:.3f}"
                bar.update(task, completed=p.done, total=p.budget, sps=p.sps, ret=ret)

        if resume:
            result = training.resume(resume, reg, on_progress=on_progress)
        else:
            result = training.train(
                config,
                reg,
                command=command,
                tags=[redact(t) for t in tag or []],
                on_progress=on_progress,
            )
    if json_:
        print_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "env_steps": result.env_steps,
                "hero_samples": result.hero_samples,
                "registry": redact(reg.url),
                "metrics": result.metrics,
            }
        )
    else:
        console.print(
            f"run [bold]{result.run_id}[/bold] {result.status}: {result.env_steps:,} env steps"
        )
        headline = {k: v for k, v in result.metrics.items() if _is_headline(k)}
        if headline:
            console.print("  " + "  ".join(f"{text(k)} {v:.4f}" for k, v in headline.items()))


def _is_headline(key: str) -> bool:
    """The final numbers worth a glance: joint return, free-riding, action probabilities."""
    return key in ("eval/return", "eval/free_riding") or (
        key.startswith("agent") and key.count("/") == 2 and "/p/" in key
    )


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[sps]:,.0f} SPS"),
        TextColumn("return {task.fields[ret]}"),
        TimeElapsedColumn(),
        console=console,
    )
