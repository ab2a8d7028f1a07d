"""Partner zoos: named sets of partner policies for one env configuration.

A member is a registered policy pinned to one checkpoint (step + sha256) when it is trained,
or a built-in scripted or random policy. Freezing fixes the zoo's manifest (members, their
checkpoint hashes, the env config and its hash) under a sha256; a frozen zoo refuses
changes and can be exported as a self-contained archive that another registry imports
after checking every hash. A held-out zoo's policies may never be training partners.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

import torch

from srpo_core.agents.load import load_seat, playable_seats, register_builtin
from srpo_core.config import build_config, resolve
from srpo_core.errors import UserError
from srpo_core.query import RunQuery, select_runs
from srpo_core.registry import Registry, RunInfo, ZooInfo
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.registry.models import canonical_json
from srpo_core.rollout import Seat

ARCHIVE_FORMAT = 1
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
"""What an exported run carries: its provenance, not its metrics or status."""


# ---- env configurations -------------------------------------------------------------------


def game_config(env_values: dict[str, Any]) -> dict[str, Any]:
    """An env config without the keys that do not define the game (an env config class's
    ``NON_GAME_KEYS``: workers and backends, or a debate's models and training settings):
    two configs with the same game config pose the same problem to any pair of policies."""
    from srpo_core.config import env_config_class

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
    """Pin ``ref`` to a checkpoint: ``step`` exactly, else the one nearest ``fraction`` of
    the run's last checkpoint step (earlier on ties), else the latest. Built-in policies are
    registered on first use and have no checkpoint."""
    if ref.split(":", 1)[0] in BUILTIN_KINDS and ":" in ref:
        return Pinned(register_builtin(registry, ref, env), None, None)
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
        target = fraction * saved[-1].step
        checkpoint = min(saved, key=lambda c: (abs(c.step - target), c.step))
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
    if pinned.step is None:
        return
    info = registry.get_policy(pinned.ref)
    for checkpoint in registry.checkpoints(info.run_id):
        if checkpoint.step == pinned.step:
            if checkpoint.sha256 != pinned.sha256:
                raise UserError(
                    f"{pinned.label}: the checkpoint now hashes to {checkpoint.sha256[:12]}, "
                    f"not the pinned {str(pinned.sha256)[:12]}"
                )
            return
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
    run on the zoo's env configuration. Nothing is written unless every member checks out."""
    for fraction in members.fractions:
        if not 0 < fraction <= 1:
            raise UserError(f"checkpoint fractions must be in (0, 1], got {fraction}")
    runs = select_runs(registry, members.runs, env=env) if members.runs else []
    if members.runs and not runs:
        raise UserError(f"no finished {env} run matches '{members.runs.text}'")
    pinned = [
        pin(registry, p.id, env=env, fraction=f)
        for f in members.fractions
        for run in runs
        for p in registry.policies(run_id=run.id)
        if p.kind == "trained"
    ]
    for text in members.policies:
        ref, step = parse_pinned(text)
        pinned.append(pin(registry, ref, env=env, step=step))
    for name_ in members.scripted:
        ref = name_ if name_.startswith("scripted:") else f"scripted:{name_}"
        pinned.append(pin(registry, ref, env=env))
    if members.random:
        pinned.append(pin(registry, f"random:{env}/uniform", env=env))
    for model_dir in members.untuned:
        if env != "debate":
            raise UserError("--untuned adds a base model directory to a debate zoo only")
        from srpo_core.debate.evaluate import register_untuned

        # No checkpoint to pin: the hash of its files is in its spec (and the manifest).
        pinned.append(Pinned(register_untuned(registry, model_dir), None, None))
    if not pinned:
        raise UserError(
            "no members selected: give --runs, --policy, --scripted, --random or --untuned"
        )

    existing = {z.name: z for z in registry.zoos()}.get(name)
    if existing is not None:
        if existing.frozen:
            raise UserError(f"zoo {name!r} is frozen; its members cannot change")
        if existing.env != env:
            raise UserError(f"zoo {name!r} is a {existing.env} zoo, not {env}")
        values = existing.env_config
        if (presets or sets) and config_hash(_resolve_env(env, presets, sets)) != config_hash(
            values
        ):
            raise UserError(f"zoo {name!r} already has another env configuration")
    elif presets or sets:
        values = _resolve_env(env, presets, sets)
    else:
        values = _members_env(registry, pinned) or _resolve_env(env, (), ())
    wanted = config_hash(values)
    for member in pinned:
        _check_member_env(registry, member, wanted)
    if existing is None:
        registry.create_zoo(
            name,
            env=env,
            env_config=values,
            env_config_hash=wanted,
            held_out=held_out,
            description=description,
        )
    added = registry.add_zoo_members(name, [(m.ref, m.step, m.sha256) for m in pinned])
    return registry.get_zoo(name), added


def _resolve_env(env: str, presets: Sequence[str], sets: Sequence[str]) -> dict[str, Any]:
    config = resolve(presets=list(presets), flags={"env": {"name": env}}, sets=list(sets))
    return env_values(config.env)


def _members_env(registry: Registry, pinned: list[Pinned]) -> dict[str, Any] | None:
    for member in pinned:
        info = registry.get_policy(member.ref)
        if info.run_id is not None:
            return registry.get_run(info.run_id).config["env"]
    return None


def _check_member_env(registry: Registry, member: Pinned, wanted: str) -> None:
    info = registry.get_policy(member.ref)
    if info.run_id is None:
        return
    run = registry.get_run(info.run_id)
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
        run = None
        if info.run_id is not None:
            run_info = dataclasses.asdict(registry.get_run(info.run_id))
            run = {key: run_info[key] for key in RUN_FIELDS}
            run["tags"] = list(run["tags"])
        members.append(
            {
                "ref": info.id,
                "kind": info.kind,
                "role": info.role,
                "env": info.env,
                "spec": info.spec,
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


def manifest_sha256(content: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(content).encode())


def freeze_zoo(registry: Registry, name: str) -> ZooInfo:
    """Fix the zoo: every member checkpoint is read (proving its bytes match its hash; an
    untuned base model's files are hashed again), then the manifest's sha256 is recorded
    and the zoo refuses changes from then on."""
    zoo = registry.get_zoo(name)
    if zoo.frozen:
        raise UserError(f"zoo {name!r} is already frozen (manifest {zoo.manifest_sha256})")
    if not zoo.members:
        raise UserError(f"zoo {name!r} has no members to freeze")
    for member in zoo.members:
        info = registry.get_policy(member.policy_ref)
        if info.kind == "untuned":
            from srpo_core.debate.evaluate import verify_untuned

            verify_untuned(info)
        _member_payload(registry, member.policy_ref, member.step)
    registry.freeze_zoo(name, manifest_sha256(manifest(registry, zoo)))
    return registry.get_zoo(name)


def _member_payload(registry: Registry, ref: str, step: int | None) -> bytes | None:
    info = registry.get_policy(ref)
    if info.run_id is None or step is None:
        return None
    for checkpoint in registry.checkpoints(info.run_id):
        if checkpoint.step == step:
            return registry.read_checkpoint(checkpoint)
    raise UserError(f"run {info.run_id} no longer has the checkpoint at step {step} of {ref}")


# ---- export and import --------------------------------------------------------------------


def export_zoo(registry: Registry, name: str, path: Path) -> str:
    """Write a frozen zoo as a tar.gz of ``zoo.json`` (manifest + its hash) and
    ``checkpoints/<sha256>.pt``; relative paths only, byte-identical on every export.
    Returns the manifest hash."""
    zoo = registry.get_zoo(name)
    if not zoo.frozen:
        raise UserError(f"zoo {name!r} is not frozen; freeze it first (srpo zoo freeze {name})")
    content = manifest(registry, zoo)
    if manifest_sha256(content) != zoo.manifest_sha256:
        raise UserError(f"zoo {name!r} no longer matches the manifest it was frozen with")
    files = {
        "zoo.json": canonical_json(
            {
                "format": ARCHIVE_FORMAT,
                "name": zoo.name,
                "manifest_sha256": zoo.manifest_sha256,
                "manifest": content,
            }
        ).encode()
    }
    for member in zoo.members:
        payload = _member_payload(registry, member.policy_ref, member.step)
        if payload is not None:
            files[f"checkpoints/{member.sha256}.pt"] = payload
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname in sorted(files):
            data = files[arcname]
            entry = tarfile.TarInfo(arcname)
            entry.size, entry.mtime, entry.mode = len(data), 0, 0o644
            tar.addfile(entry, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return str(zoo.manifest_sha256)


@dataclass(frozen=True)
class Archive:
    """A zoo archive whose manifest and checkpoints have passed every hash check."""

    name: str
    manifest: dict[str, Any]
    manifest_sha256: str
    payloads: dict[str, bytes]
    """sha256 -> checkpoint bytes."""


def read_archive(path: Path, *, expect: str | None = None) -> Archive:
    """Read and verify an exported zoo: the manifest against its recorded hash (and
    ``expect``, a hash or prefix the user got from the zoo's authors), every checkpoint
    against the manifest. Touches no registry."""
    files = _archive_files(path)
    try:
        document = json.loads(files.pop("zoo.json"))
        content, stated = document["manifest"], document["manifest_sha256"]
        name, version = document["name"], document["format"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: zoo.json is not a zoo manifest") from None
    if version != ARCHIVE_FORMAT:
        raise UserError(f"{path}: unsupported zoo archive format {version!r}")
    actual = manifest_sha256(content)
    if actual != stated:
        raise UserError(
            f"{path}: the manifest was modified (hashes to {actual[:12]}, archive states "
            f"{str(stated)[:12]})"
        )
    if expect is not None and not stated.startswith(expect.lower()):
        raise UserError(f"{path}: zoo manifest is {stated}, not the expected {expect}")
    payloads: dict[str, bytes] = {}
    for member in content["members"]:
        sha = member["sha256"]
        if sha is None:
            continue
        data = files.get(f"checkpoints/{sha}.pt")
        if data is None:
            raise UserError(f"{path}: checkpoint {sha[:12]} of {member['ref']} is missing")
        if sha256_hex(data) != sha:
            raise UserError(f"{path}: checkpoint of {member['ref']} fails its sha256 check")
        payloads[sha] = data
    return Archive(name, content, stated, payloads)


def import_zoo(
    registry: Registry, archive: Archive, *, name: str | None = None
) -> tuple[ZooInfo, bool]:
    """Recreate a verified zoo archive, frozen, with its runs, policies and checkpoints;
    returns the zoo and whether it was new. Conflicts are found before anything is written."""
    content, stated, payloads = archive.manifest, archive.manifest_sha256, archive.payloads
    name = name or archive.name
    existing = {z.name: z for z in registry.zoos()}.get(name)
    if existing is not None:
        if existing.manifest_sha256 == stated:
            return existing, False
        raise UserError(f"zoo {name!r} already exists in this registry with other members")
    for member in content["members"]:
        if member["run"] is not None:
            _check_importable_run(registry, member["run"], member["step"], member["sha256"])

    for member in content["members"]:
        run = member["run"]
        if run is not None:
            registry.import_run(run)
            registry.register_policy(
                run_id=run["id"],
                role=member["role"],
                env=member["env"],
                kind=member["kind"],
                spec=member["spec"],
            )
            have = {c.step: c.sha256 for c in registry.checkpoints(run["id"])}
            if member["step"] not in have:
                registry.save_checkpoint(run["id"], member["step"], payloads[member["sha256"]])
        else:
            registry.register_policy(
                run_id=None,
                role=member["role"],
                env=member["env"],
                kind=member["kind"],
                spec=member["spec"],
            )
    registry.create_zoo(
        name,
        env=content["env"],
        env_config=content["env_config"],
        env_config_hash=content["env_config_hash"],
        held_out=content["held_out"],
        description=content["description"],
    )
    registry.add_zoo_members(name, [(m["ref"], m["step"], m["sha256"]) for m in content["members"]])
    zoo = registry.get_zoo(name)
    if manifest_sha256(manifest(registry, zoo)) != stated:
        raise UserError(f"zoo {name!r} was imported but does not reproduce its manifest")
    registry.freeze_zoo(name, stated)
    return registry.get_zoo(name), True


def _check_importable_run(registry: Registry, run: dict[str, Any], step: int, sha: str) -> None:
    """A run id already used here must be the same run, with the same checkpoint bytes."""
    from srpo_core.registry import NotFoundError

    try:
        here = registry.get_run(run["id"])
    except NotFoundError:
        return
    if here.config_hash != run["config_hash"]:
        raise UserError(f"run {run['id']} already exists in this registry with another config")
    for checkpoint in registry.checkpoints(here.id):
        if checkpoint.step == step and checkpoint.sha256 != sha:
            raise UserError(f"run {run['id']} already has another checkpoint at step {step}")


def _archive_files(path: Path) -> dict[str, bytes]:
    """The archive's regular files by relative name; anything else is refused."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for entry in tar.getmembers():
                name = entry.name
                if not entry.isfile() or name.startswith("/") or ".." in Path(name).parts:
                    raise UserError(f"{path}: unexpected archive entry {name!r}")
                handle = tar.extractfile(entry)
                files[name] = handle.read() if handle else b""
    except (OSError, EOFError, tarfile.TarError, zlib_error) as exc:
        reason = str(exc).splitlines()[0].rstrip(":") or type(exc).__name__
        raise UserError(f"cannot read zoo archive {path}: {reason}") from None
    if "zoo.json" not in files:
        raise UserError(f"{path}: not a zoo archive (no zoo.json)")
    return files
