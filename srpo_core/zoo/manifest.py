"""A zoo's manifest (members, their checkpoint hashes, the env config and its hash),
freezing it under its sha256, and the checks of a frozen member's files."""

from __future__ import annotations

import dataclasses
from typing import Any

from srpo_core import checkpoints
from srpo_core.canonical import canonical_json
from srpo_core.errors import UserError
from srpo_core.redact import redact
from srpo_core.registry import (
    PolicyInfo,
    Registry,
    RunInfo,
    ZooInfo,
    ZooMemberInfo,
)
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.zoo.pinning import Pinned, pinned_checkpoint

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
    return registry.read_checkpoint(pinned_checkpoint(registry, pinned))
