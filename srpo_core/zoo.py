"""Partner zoos: named sets of partner policies for one env configuration.

A member is a registered policy pinned to one checkpoint (step + sha256) when it is trained,
or a built-in scripted or random policy. Freezing fixes the zoo's manifest (members, their
checkpoint hashes, the env config and its hash) under a sha256; a frozen zoo refuses
changes and can be exported as a self-contained archive (`srpo_core.zoo_archive`) that
another registry imports after checking every hash. A held-out zoo's policies may never be
training partners.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from srpo_core import checkpoints
from srpo_core.agents.load import load_seat, playable_seats, register_builtin
from srpo_core.canonical import canonical_json
from srpo_core.config import build_config, resolve
from srpo_core.errors import UserError
from srpo_core.query import RunQuery, select_runs
from srpo_core.redact import redact
from srpo_core.registry import (
    CheckpointInfo,
    NotFoundError,
    PolicyInfo,
    Registry,
    RunInfo,
    ZooInfo,
    ZooMemberInfo,
)
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.registry.zoo_store import NewZoo, check_zoo_name
from srpo_core.rollout import Seat

BUILTIN_KINDS = ("scripted", "random")
RUN_FIELDS = (
    "id",
    "env",
    "algo",
    "tau",
    "eps",
    "seed",
    "config",
    "config_hash",
    "package_version",
    "git_commit",
    "tags",
    "command",
    "env_steps",
    "hero_samples",
)
"""What an exported run carries: its provenance, not its metrics or status (and its command
with any password masked)."""


# ---- env configurations -------------------------------------------------------------------


def game_config(env_values: dict[str, Any]) -> dict[str, Any]:
    """The game an env config poses to any pair of policies: the config evaluations play
    (`EnvFamily.evaluated`: training schedules such as reward shaping run to their end)
    without the keys that do not define the game (an env config class's ``NON_GAME_KEYS``:
    workers and backends, or a debate's models and training settings)."""
    from srpo_core.config import env_config_class
    from srpo_core.envs import ENVS

    evaluated = ENVS[env_values["name"]].evaluated
    if evaluated is not None:
        env_values = dataclasses.asdict(evaluated(env_config_from(env_values)))
    skip = getattr(env_config_class(env_values["name"]), "NON_GAME_KEYS", ())
    return {k: v for k, v in env_values.items() if k not in skip}


def config_hash(env_values: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(game_config(env_values)).encode())


def env_values(env_config: Any) -> dict[str, Any]:
    return dataclasses.asdict(env_config)


def env_config_from(values: dict[str, Any]) -> Any:
    """The typed, validated env config of a stored dict."""
    return build_config({"env": values}).env


# ---- pinned policies ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pinned:
    """A policy at one checkpoint: what a zoo member or a cross-play seat refers to."""

    ref: str
    step: int | None
    sha256: str | None

    @property
    def label(self) -> str:
        return self.ref if self.step is None else f"{self.ref}@{self.step}"

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "step": self.step, "sha256": self.sha256}


def parse_pinned(text: str) -> tuple[str, int | None]:
    """``REF`` or ``REF@STEP``."""
    ref, at, step = text.rpartition("@")
    if not at:
        return text, None
    try:
        return ref, int(step)
    except ValueError:
        raise UserError(f"'{text}': the part after @ must be a checkpoint step") from None


def pin(
    registry: Registry,
    ref: str,
    *,
    env: str,
    step: int | None = None,
    fraction: float | None = None,
) -> Pinned:
    """Pin registered policy ``ref`` to a checkpoint: ``step`` exactly, else the one nearest
    ``fraction`` of the run's last checkpoint step (earlier on ties), else the latest. A
    policy without a run has no checkpoint. (`srpo zoo build --at` first checks that its
    fractions pin distinct checkpoints: `_check_fractions`.)"""
    info = registry.get_policy(ref)
    if info.env != env:
        raise UserError(f"policy {info.id} plays {info.env}, not {env}")
    if info.kind != "trained":
        return Pinned(info.id, None, None)
    saved = registry.checkpoints(info.run_id)
    if not saved:
        raise UserError(f"run {info.run_id} has no checkpoint to pin {info.id} to")
    if step is not None:
        chosen = [c for c in saved if c.step == step]
        if not chosen:
            steps = ", ".join(str(c.step) for c in saved)
            raise UserError(f"run {info.run_id} has no checkpoint at step {step} (has {steps})")
        checkpoint = chosen[0]
    elif fraction is not None:
        (at,) = fraction_steps(saved, [fraction])
        checkpoint = next(c for c in saved if c.step == at)
    else:
        checkpoint = saved[-1]
    return Pinned(info.id, checkpoint.step, checkpoint.sha256)


def run_policies(registry: Registry, run: RunInfo, fraction: float | None = None) -> list[Pinned]:
    """Every trained policy a run published, pinned at ``fraction`` (latest by default)."""
    return [
        pin(registry, p.id, env=run.env, fraction=fraction)
        for p in registry.policies(run_id=run.id)
        if p.kind == "trained"
    ]


def check_pinned(registry: Registry, pinned: Pinned) -> None:
    """A pinned checkpoint must still be the one stored at its step: results and training
    partners are keyed by its hash."""
    if pinned.step is not None:
        _pinned_checkpoint(registry, pinned)


def _pinned_checkpoint(registry: Registry, pinned: Pinned) -> CheckpointInfo:
    info = registry.get_policy(pinned.ref)
    for checkpoint in registry.checkpoints(info.run_id):
        if checkpoint.step == pinned.step:
            if checkpoint.sha256 != pinned.sha256:
                raise UserError(
                    f"{pinned.label}: the checkpoint now hashes to {checkpoint.sha256[:12]}, "
                    f"not the pinned {str(pinned.sha256)[:12]}"
                )
            return checkpoint
    raise UserError(f"{pinned.label}: no checkpoint at that step any more")


def refuse_held_out(registry: Registry, ref: str, use: str) -> None:
    """Training must never meet a held-out partner: that would leak the test set."""
    from srpo_core.registry import NotFoundError

    try:
        resolved = registry.get_policy(ref).id
    except NotFoundError:
        return  # not registered yet, so in no zoo
    zoos = registry.held_out_zoos(resolved)
    if zoos:
        raise UserError(
            f"policy {resolved} is in held-out zoo {zoos[0]!r}; it cannot be used as {use}"
        )


def partner_seats(
    registry: Registry, name: str, env_config: Any, env: Any, device: torch.device
) -> list[list[Seat]]:
    """Every member of zoo ``name`` loaded into each seat of ``env`` it can sit in, one
    list per seat: the co-players of ``train.partners=zoo:NAME``. Refuses a held-out zoo,
    a zoo of another env configuration and a seat no member can fill."""
    zoo = registry.get_zoo(name)
    if zoo.held_out:
        raise UserError(f"zoo {name!r} is held out; training against it would leak the test set")
    if zoo.env_config_hash != config_hash(env_values(env_config)):
        raise UserError(f"zoo {name!r} was built for another {zoo.env} configuration")
    seats: list[list[Seat]] = []
    for index, seat in enumerate(env.agents):
        members = []
        for member in zoo.members:
            if seat not in playable_seats(registry.get_policy(member.policy_ref), env.agents):
                continue
            pinned = Pinned(member.policy_ref, member.step, member.sha256)
            check_pinned(registry, pinned)
            members.append(
                load_seat(
                    registry,
                    member.policy_ref,
                    env_config=env_config,
                    seat=seat,
                    obs_dim=env.obs_dims[index],
                    device=device,
                    step=member.step,
                    action_space=env.action_spaces[index],
                )
            )
        if not members:
            raise UserError(f"no member of zoo {name!r} can sit in seat {seat}")
        seats.append(members)
    return seats


# ---- building and freezing ----------------------------------------------------------------


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


def fraction_steps(saved: Sequence[CheckpointInfo], fractions: Sequence[float]) -> list[int]:
    """The checkpoint step each fraction of a run's last checkpoint step pins (see `pin`)."""
    last = saved[-1].step
    return [min(saved, key=lambda c: (abs(c.step - f * last), c.step)).step for f in fractions]


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


def manifest(registry: Registry, zoo: ZooInfo) -> dict[str, Any]:
    """Everything a zoo's results depend on, in a canonical form: its hash identifies the
    zoo across registries (the name is not part of it)."""
    members = []
    for member in zoo.members:
        info = registry.get_policy(member.policy_ref)
        run = None if info.run_id is None else exported_run(registry.get_run(info.run_id))
        members.append(
            {
                "ref": info.id,
                **policy_claims(info),
                "step": member.step,
                "sha256": member.sha256,
                "run": run,
            }
        )
    return {
        "env": zoo.env,
        "env_config": zoo.env_config,
        "env_config_hash": zoo.env_config_hash,
        "held_out": zoo.held_out,
        "description": zoo.description,
        "members": members,
    }


def exported_run(run: RunInfo) -> dict[str, Any]:
    """A run's RUN_FIELDS as a manifest holds them: a password in its command is masked, so
    no manifest, hash or archive ever carries one."""
    values = dataclasses.asdict(run)
    fields = {key: values[key] for key in RUN_FIELDS}
    fields["tags"] = list(fields["tags"])
    fields["command"] = redact(fields["command"])
    return fields


def policy_claims(policy: PolicyInfo) -> dict[str, Any]:
    return {"kind": policy.kind, "role": policy.role, "env": policy.env, "spec": policy.spec}


def manifest_sha256(content: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(content).encode())


def freeze_zoo(registry: Registry, name: str) -> ZooInfo:
    """Fix the zoo: every member checkpoint is read (proving its bytes match its pinned hash)
    and must hold the weights its policy's spec describes (an untuned base model's files are
    hashed again), then the manifest's sha256 is recorded and the zoo refuses changes."""
    zoo = registry.get_zoo(name)
    if zoo.frozen:
        raise UserError(f"zoo {name!r} is already frozen (manifest {zoo.manifest_sha256})")
    if not zoo.members:
        raise UserError(f"zoo {name!r} has no members to freeze")
    for member in zoo.members:
        _verify_member(registry, member)
    registry.freeze_zoo(name, manifest_sha256(manifest(registry, zoo)))
    return registry.get_zoo(name)


def _verify_member(registry: Registry, member: ZooMemberInfo) -> None:
    info = registry.get_policy(member.policy_ref)
    if info.kind == "untuned":
        from srpo_core.debate.evaluate import verify_untuned

        verify_untuned(info)
    payload = member_payload(registry, member)
    if payload is not None:
        label = f"checkpoint of {member.label}"
        checkpoints.check_policy_state(payload_state(payload, label), info.spec, info.role, label)


def payload_state(payload: bytes, label: str) -> dict[str, Any]:
    try:
        return checkpoints.from_bytes(payload)
    except UserError as exc:
        raise UserError(f"{label}: {exc}") from None


def member_payload(registry: Registry, member: ZooMemberInfo) -> bytes | None:
    """The bytes of the checkpoint a trained member is pinned to; None for other members."""
    if member.step is None:
        return None
    pinned = Pinned(member.policy_ref, member.step, member.sha256)
    return registry.read_checkpoint(_pinned_checkpoint(registry, pinned))
