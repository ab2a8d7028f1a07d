"""`srpo train`: resolve a config, train one run into the registry."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from srpo_cli.common import (
    Interrupted,
    JsonOption,
    RegistryOption,
    check_seconds,
    command_line,
    console,
    print_json,
    text,
)
from srpo_cli.progress import TrainingDisplay
from srpo_core.errors import UserError


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
    log_every_s: Annotated[
        float,
        typer.Option(
            "--log-every-s",
            help="When stdout is not a terminal (nohup, cluster logs): a progress line every "
            "this many seconds.",
        ),
    ] = 30.0,
    registry: RegistryOption = None,
    json_: JsonOption = False,
) -> None:
    """Train IPPO or SRPO; checkpoints and metrics go into the registry."""
    from srpo_core import config as cfg
    from srpo_core import train as training
    from srpo_core.registry import Registry

    check_seconds(log_every_s, "--log-every-s")
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
        if not json_:  # stdout, once the run can start: stderr is for an error line alone
            for line in training.notices(config):
                console.print(text(line), highlight=False, soft_wrap=True)
    signal.signal(signal.SIGTERM, _interrupt)
    command = command_line(sys.argv[1:])
    display = TrainingDisplay(console, every_s=log_every_s, quiet=json_)
    try:
        with display:
            if resume:
                _announce_resume(reg, resume, quiet=json_)
                result = training.resume(resume, reg, on_progress=display.update)
            else:
                result = training.train(
                    config,
                    reg,
                    command=command,
                    tags=tag or [],  # the registry masks credentials in what it stores
                    on_progress=display.update,
                )
    except KeyboardInterrupt:
        raise Interrupted(_where_it_stopped(reg, display, resume)) from None
    if json_:
        print_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "env_steps": result.env_steps,
                "hero_samples": result.hero_samples,
                "registry": reg.shown,
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


HEADLINE_KEYS = (
    "eval/return",
    "eval/free_riding",
    "eval/score",  # Hanabi
    "eval/learners/cooperation",  # IPD
    "eval/sparse_reward",  # Overcooked: delivery reward alone
    "eval/collisions",  # Tag
)
"""Each env family's main numbers, shown at the end of a run when it logged them."""


def _is_headline(key: str) -> bool:
    """The final numbers worth a glance: each env's main metrics, the action probabilities
    of small games."""
    return key in HEADLINE_KEYS or (
        key.startswith("agent") and key.count("/") == 2 and "/p/" in key
    )


def _announce_resume(reg, run_id: str, *, quiet: bool) -> None:
    """Say where a resumed run continues from, before its first iteration."""
    info = reg.get_run(run_id)
    latest = reg.latest_checkpoint(info.id)
    if quiet:
        return
    if latest is None:
        console.print(f"run {info.id} has no checkpoint: it starts again from step 0")
    else:
        console.print(f"run {info.id} resumes from its checkpoint at step {latest.step:,}")


def _where_it_stopped(reg, display: TrainingDisplay, resumed: str | None) -> str:
    """What an interrupted training says: the run, its last checkpoint, how to go on."""
    if display.last is None and resumed is None:
        return "before the run was created"
    try:
        run_id = display.last.run_id if display.last else reg.get_run(resumed).id
        latest = reg.latest_checkpoint(run_id)
    except UserError:  # the registry is what failed: say what is known
        run_id, latest = display.last.run_id if display.last else resumed, None
    saved = "no checkpoint yet" if latest is None else f"last checkpoint at step {latest.step:,}"
    where = f" at {display.last.env_steps:,} env steps" if display.last else ""
    return f"run {run_id} stopped{where} ({saved}); continue it with: srpo train --resume {run_id}"
