"""Building a zoo: its members chosen from runs, fractions of their training, scripted and
random policies and untuned models, all of one env configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from srpo_core.config import resolve
from srpo_core.errors import UserError
from srpo_core.policy_loading import register_builtin
from srpo_core.query import RunQuery, select_runs
from srpo_core.registry import (
    CheckpointInfo,
    NotFoundError,
    Registry,
    RunInfo,
    ZooInfo,
)
from srpo_core.registry.zoos import NewZoo, check_zoo_name
from srpo_core.zoo.games import config_hash, env_values
from srpo_core.zoo.pinning import Pinned, fraction_steps, parse_pinned, pin

BUILTIN_KINDS = ("scripted", "random")


@dataclass(frozen=True)
class MemberQuery:
    """What `srpo zoo build` adds: runs by query (at checkpoint fractions), explicit refs
    (``REF`` or ``REF@STEP``), built-in scripted policies, the random policy, untuned base
    models (debate: model directories)."""

    runs: RunQuery | None = None
    fractions: Sequence[float] = (1.0,)
    policies: Sequence[str] = ()
    scripted: Sequence[str] = ()
    random: bool = False
    untuned: Sequence[str] = ()


def build_zoo(
    registry: Registry,
    name: str,
    *,
    env: str,
    members: MemberQuery,
    held_out: bool = False,
    presets: Sequence[str] = (),
    sets: Sequence[str] = (),
    description: str = "",
) -> tuple[ZooInfo, int]:
    """Create zoo ``name`` (or extend it while it is not frozen) with the selected members;
    returns the zoo and how many members were new. Every trained member must come from a
    run on the zoo's env configuration. Everything is checked before anything is written;
    the new policies, the zoo and its members are then written in one transaction."""
    check_zoo_name(name)
    _check_description(description)
    existing = zoo_named(registry, name)
    if existing is not None:
        if existing.frozen:
            raise UserError(f"zoo {name!r} is frozen; its members cannot change")
        if existing.env != env:
            raise UserError(f"zoo {name!r} is a {existing.env} zoo, not {env}")
    new_policies = _NewPolicies()
    pinned = _select_members(registry, env, members, new_policies)
    values = _zoo_env(registry, existing, env, presets, sets, pinned)
    wanted = config_hash(values)
    for member in pinned:
        _check_member_env(registry, member, wanted)
    create = None
    if existing is None:
        create = NewZoo(name, env, values, wanted, held_out, description)
    added = registry.save_zoo_build(
        name,
        [(m.ref, m.step, m.sha256) for m in pinned],
        create=create,
        policies=list(new_policies.rows.values()),
    )
    return registry.get_zoo(name), added


class _NewPolicies:
    """Stands in for the registry while `register_builtin` and `register_untuned` check and
    name a policy, keeping the row they would write: `build_zoo` writes it with the zoo."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def register_policy(
        self, *, run_id: None, role: str, env: str, kind: str, spec: dict[str, Any]
    ) -> str:
        ref = f"{kind}:{env}/{role}"  # as Registry.register_policy names a policy without a run
        self.rows[ref] = {"id": ref, "role": role, "env": env, "kind": kind, "spec": spec}
        return ref


def _select_members(
    registry: Registry, env: str, members: MemberQuery, new_policies: _NewPolicies
) -> list[Pinned]:
    for fraction in members.fractions:
        if not 0 < fraction <= 1:
            raise UserError(f"checkpoint fractions must be in (0, 1], got {fraction}")
    if len(set(members.fractions)) < len(members.fractions):
        twice = next(f for f in members.fractions if members.fractions.count(f) > 1)
        raise UserError(f"checkpoint fraction {twice:g} is given twice")
    runs = select_runs(registry, members.runs, env=env) if members.runs else []
    if members.runs and not runs:
        raise UserError(f"no finished {env} run matches '{members.runs.text}'")
    _check_fractions(registry, runs, members.fractions)
    pinned = [
        pin(registry, p.id, env=env, fraction=f)
        for f in members.fractions
        for run in runs
        for p in registry.policies(run_id=run.id)
        if p.kind == "trained"
    ]
    for text in members.policies:
        ref, step = parse_pinned(text)
        if _is_builtin(ref):
            pinned.append(Pinned(register_builtin(new_policies, ref, env), None, None))
        else:
            pinned.append(pin(registry, ref, env=env, step=step))
    for name in members.scripted:
        ref = name if name.startswith("scripted:") else f"scripted:{name}"
        pinned.append(Pinned(register_builtin(new_policies, ref, env), None, None))
    if members.random:
        ref = register_builtin(new_policies, f"random:{env}/uniform", env)
        pinned.append(Pinned(ref, None, None))
    for model_dir in members.untuned:
        if env != "debate":
            raise UserError("--untuned adds a base model directory to a debate zoo only")
        from srpo_core.debate.evaluate import register_untuned

        # No checkpoint to pin: the hash of its files is in its spec (and the manifest).
        pinned.append(Pinned(register_untuned(new_policies, model_dir), None, None))
    if not pinned:
        raise UserError(
            "no members selected: give --runs, --policy, --scripted, --random or --untuned"
        )
    return pinned


def _check_fractions(
    registry: Registry, runs: Sequence[RunInfo], fractions: Sequence[float]
) -> None:
    """Each requested fraction must find a checkpoint of its own in every run, or the zoo
    would silently get the same checkpoint twice (one member) instead of early/mid/final
    partners. A fraction is *near* a checkpoint when the checkpoint nearest to it (as `pin`
    chooses: nearest to fraction * the last checkpoint step, earlier on ties) is

    - not the final checkpoint, for a fraction below 1 (a run saved with
      ``run.checkpoint_every = 0`` keeps only its final one), and
    - not the checkpoint another requested fraction picks.

    A run that breaks either rule is refused with the checkpoints it has."""
    problems = []
    for run in runs:
        saved = registry.checkpoints(run.id)
        if not saved:
            continue  # `pin` says there is no checkpoint at all
        picked = fraction_steps(saved, fractions)
        last = saved[-1].step
        for fraction, step in zip(fractions, picked, strict=True):
            if (fraction < 1 and step == last) or picked.count(step) > 1:
                problems.append(
                    f"run {run.id} has no checkpoint near {_percent(fraction)} of its "
                    f"{last:,} steps (it has: {_steps_list(saved)})"
                )
                break
    if problems:
        shown = problems[:3] + ([f"{len(problems) - 3} more runs too"] if len(problems) > 3 else [])
        raise UserError(
            "; ".join(shown)
            + "; train with --set run.checkpoint_every=N to keep earlier ones, or ask for fewer"
            " fractions with --at"
        )


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _steps_list(saved: Sequence[CheckpointInfo], most: int = 8) -> str:
    steps = [f"{c.step:,}" for c in saved]
    if len(steps) > most:
        steps = [*steps[: most - 2], "...", steps[-1]]
        return ", ".join(steps) + f" ({len(saved)} checkpoints)"
    return ", ".join(steps)


def _is_builtin(ref: str) -> bool:
    return ":" in ref and ref.split(":", 1)[0] in BUILTIN_KINDS


def _check_description(description: str) -> None:
    if not description.isprintable():
        raise UserError("a zoo description is one line of text without control characters")


def zoo_named(registry: Registry, name: str) -> ZooInfo | None:
    try:
        return registry.get_zoo(name)
    except NotFoundError:
        return None


def _zoo_env(
    registry: Registry,
    existing: ZooInfo | None,
    env: str,
    presets: Sequence[str],
    sets: Sequence[str],
    pinned: list[Pinned],
) -> dict[str, Any]:
    """The zoo's env config: the existing zoo's, else the presets' and sets', else the first
    trained member's, else the env's default."""
    if existing is not None:
        if (presets or sets) and config_hash(_resolve_env(env, presets, sets)) != config_hash(
            existing.env_config
        ):
            raise UserError(f"zoo {existing.name!r} already has another env configuration")
        return existing.env_config
    if presets or sets:
        return _resolve_env(env, presets, sets)
    return _members_env(registry, pinned) or _resolve_env(env, (), ())


def _resolve_env(env: str, presets: Sequence[str], sets: Sequence[str]) -> dict[str, Any]:
    config = resolve(presets=list(presets), flags={"env": {"name": env}}, sets=list(sets))
    return env_values(config.env)


def _members_env(registry: Registry, pinned: list[Pinned]) -> dict[str, Any] | None:
    for member in pinned:
        if member.step is not None:  # a trained policy, pinned to a checkpoint of its run
            run_id = registry.get_policy(member.ref).run_id
            return registry.get_run(run_id).config["env"]
    return None


def _check_member_env(registry: Registry, member: Pinned, wanted: str) -> None:
    if member.step is None:  # no run, so no env configuration of its own
        return
    run = registry.get_run(registry.get_policy(member.ref).run_id)
    if config_hash(run.config["env"]) != wanted:
        raise UserError(
            f"policy {member.label} was trained on another env configuration than the zoo's "
            f"(compare `srpo runs show {run.id}` with `srpo zoo show`)"
        )
