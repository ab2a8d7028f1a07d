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
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Train one run per seed as one population (one batched computation): "
            "N (seeds 0..N-1), A..B (inclusive) or a comma list of both.",
        ),
    ] = None,
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
    member_tag: Annotated[
        list[str] | None,
        typer.Option(help="With --seeds: one more tag per member, in seed order.", hidden=True),
    ] = None,
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
    from srpo_core.population.members import check_population
    from srpo_core.registry import Registry

    check_seconds(log_every_s, "--log-every-s")
    population: list[int] = []
    configs = []
    if resume:
        given = [env, game, role, algo, tau, eps, seed, seeds, steps, device, preset, set_]
        if any(v for v in [*given, config_from] if v not in (None, [])):
            raise UserError("--resume takes no config options: a run resumes as it was")
        reg = Registry(registry, create=False)
    else:
        if seeds is not None:
            if seed is not None:
                raise UserError("give --seed or --seeds, not both")
            population = parse_seeds(seeds)
        if member_tag and len(member_tag) != len(population):
            raise UserError("--member-tag needs --seeds and one tag per seed")
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
        configs = [cfg.with_seed(config, s) for s in population]
        if configs:
            check_population(configs)
        reg = Registry(registry)  # created only once the config is known to be valid
        if not json_:  # stdout, once the run can start: stderr is for an error line alone
            for line in training.notices(config):
                console.print(text(line), highlight=False, soft_wrap=True)
    signal.signal(signal.SIGTERM, _interrupt)
    command = command_line(sys.argv[1:])
    display = TrainingDisplay(console, every_s=log_every_s, quiet=json_)
    members = training.population_runs(reg, resume) if resume else []
    try:
        with display:
            if members:
                _announce_population_resume(reg, members, quiet=json_)
                results = training.resume_population(members, reg, on_progress=display.update)
            elif resume:
                _announce_resume(reg, resume, quiet=json_)
                results = [training.resume(resume, reg, on_progress=display.update)]
            elif configs:
                results = training.train_population(
                    configs,
                    reg,
                    command=command,
                    tags=tag or [],
                    member_tags=[[t] for t in member_tag or []],
                    on_progress=display.update,
                )
            else:
                results = [
                    training.train(
                        config,
                        reg,
                        command=command,
                        tags=tag or [],  # the registry masks credentials in what it stores
                        on_progress=display.update,
                    )
                ]
    except KeyboardInterrupt:
        raise Interrupted(_where_it_stopped(reg, display, resume)) from None
    if json_:
        rows = [
            {
                "run_id": result.run_id,
                "status": result.status,
                "env_steps": result.env_steps,
                "hero_samples": result.hero_samples,
                "registry": reg.shown,
                "metrics": result.metrics,
            }
            for result in results
        ]
        print_json(rows if len(rows) > 1 or configs or members else rows[0])
        return
    for result in results:
        console.print(
            f"run [bold]{result.run_id}[/bold] {result.status}: {result.env_steps:,} env steps"
        )
        headline = {k: v for k, v in result.metrics.items() if _is_headline(k)}
        if headline:
            console.print("  " + "  ".join(f"{text(k)} {v:.4f}" for k, v in headline.items()))
    if configs:
        tag_of = next(t for t in reg.get_run(results[0].run_id).tags if t.startswith("population:"))
        console.print(
            f"population {tag_of.partition(':')[2]}: {len(results)} runs, tagged {tag_of}"
        )


MAX_MEMBERS = 4096
"""The most runs one ``--seeds`` may name (a typo like 0..1000000000 fails fast)."""


def parse_seeds(spec: str) -> list[int]:
    """``--seeds``: N (0..N-1), A..B (inclusive), or a comma list of those."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        low, sep, high = part.partition("..")
        try:
            if sep:
                first, last = int(low), int(high)
                if last < first:
                    raise ValueError
                span = range(first, last + 1)
            elif len(spec.split(",")) == 1:
                span = range(int(part))
                if not span:
                    raise ValueError
            else:
                span = range(int(part), int(part) + 1)
            if len(seeds) + len(span) > MAX_MEMBERS:
                raise UserError(f"--seeds names more than {MAX_MEMBERS} runs")
            seeds.extend(span)
        except ValueError:
            raise UserError(
                f"--seeds expects N, A..B or a comma list (e.g. 30, 0..29, 0,5,7..9), got {spec!r}"
            ) from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {spec!r} names a seed twice")
    return seeds


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


def _announce_population_resume(reg, members, *, quiet: bool) -> None:
    population = next(t for t in members[0].tags if t.startswith("population:"))
    if quiet:
        return
    from srpo_core.train import common_checkpoints

    latest = common_checkpoints(reg, members)
    where = f"its checkpoints at step {latest[0].step:,}" if latest else "step 0 (no checkpoint)"
    console.print(f"{population} ({len(members)} runs) resumes from {where}")


def _where_it_stopped(reg, display: TrainingDisplay, resumed: str | None) -> str:
    """What an interrupted training says: the run (or population), its last checkpoint,
    how to go on."""
    if display.last is None and resumed is None:
        return "before the run was created"
    try:
        run = reg.get_run(display.last.run_id if display.last else resumed)
        run_id, latest = run.id, reg.latest_checkpoint(run.id)
        population = next((t for t in run.tags if t.startswith("population:")), None)
    except UserError:  # the registry is what failed: say what is known
        run_id, latest = display.last.run_id if display.last else resumed, None
        population = None
    saved = "no checkpoint yet" if latest is None else f"last checkpoint at step {latest.step:,}"
    where = f" at {display.last.env_steps:,} env steps" if display.last else ""
    if population is not None:
        pid = population.partition(":")[2]
        return f"{population} stopped{where} ({saved}); continue it with: srpo train --resume {pid}"
    return f"run {run_id} stopped{where} ({saved}); continue it with: srpo train --resume {run_id}"
