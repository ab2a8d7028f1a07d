"""Zoo archives: a frozen zoo exported as a byte-reproducible tar.gz, and imported into
another registry.

An archive is untrusted input: its manifest's structure is checked field by field, its
entries are streamed with size limits, each checkpoint must hold the weights its policy's
spec describes, and an import only adds rows (a run, policy or checkpoint already here must
be exactly what the archive says), all in one transaction after every check has passed.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from zlib import error as zlib_error

from srpo_core import checkpoints
from srpo_core.canonical import canonical_json
from srpo_core.errors import UserError
from srpo_core.redact import redact
from srpo_core.registry import (
    POLICY_KINDS,
    NotFoundError,
    Registry,
    ZooInfo,
)
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.registry.models import Base, Policy, Run, Zoo
from srpo_core.registry.zoos import NewZoo, ZooImport, check_zoo_name
from srpo_core.zoo.build import zoo_named
from srpo_core.zoo.games import config_hash
from srpo_core.zoo.manifest import (
    RUN_FIELDS,
    exported_run,
    manifest,
    manifest_sha256,
    member_payload,
    payload_state,
    policy_claims,
)

ARCHIVE_FORMAT = 1
MANIFEST_ENTRY = "zoo.json"
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_CHECKPOINT_BYTES = 512 * 2**20
MAX_ARCHIVE_BYTES = 2 * 2**30
"""Limits on what an archive may hold, checked against each entry's header before it is read."""
MAX_ARCHIVE_ENTRIES = 10_000
MAX_MANIFEST_NESTING = 64
_READ_SIZE = 2**20
"""Archives are read in pieces of at most this size; tarfile's own reads must fit it too."""
_CHECKPOINT_ENTRY = re.compile(r"checkpoints/[0-9a-f]{64}\.pt")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RUN_ID = re.compile(r"[0-9a-f]{12}")
_DOCUMENT_KEYS = ("format", "name", "manifest_sha256", "manifest")
_MANIFEST_KEYS = ("env", "env_config", "env_config_hash", "held_out", "description", "members")
_MEMBER_KEYS = ("ref", "kind", "role", "env", "spec", "step", "sha256", "run")
_POLICY_CLAIMS = ("kind", "role", "env", "spec")


# ---- export -----------------------------------------------------------------------------


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
        MANIFEST_ENTRY: canonical_json(
            {
                "format": ARCHIVE_FORMAT,
                "name": zoo.name,
                "manifest_sha256": zoo.manifest_sha256,
                "manifest": content,
            }
        ).encode()
    }
    for member in zoo.members:
        payload = member_payload(registry, member)
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
    """A zoo archive whose manifest and checkpoints have passed every check."""

    name: str
    manifest: dict[str, Any]
    manifest_sha256: str
    payloads: dict[str, bytes]
    """sha256 -> checkpoint bytes."""


def read_archive(path: Path, *, expect: str | None = None) -> Archive:
    """Read and verify an exported zoo: the manifest against its recorded hash (and
    ``expect``, a hash or prefix the user got from the zoo's authors) and field by field,
    every checkpoint against the manifest and against its policy's spec. Entries are
    checked by their headers before any is read: only ``zoo.json`` and the checkpoints the
    manifest names, within the size limits. Touches no registry."""
    with _open_archive(path) as tar:
        entries = _archive_entries(tar, path)
        name, content, stated = _read_manifest(tar, entries.pop(MANIFEST_ENTRY), path, expect)
        payloads = _read_checkpoints(tar, entries, content, path)
    _check_member_states(content, payloads, path)
    return Archive(name, content, stated, payloads)


class _BoundedReads:
    """The decompressed archive for tarfile, refusing any read larger than _READ_SIZE:
    tarfile reads an extended header (a pax record, a long name) whole, so a crafted header
    could otherwise claim any amount of memory."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self._stream = stream
        self._path = path

    def read(self, size: int = -1) -> bytes:
        if not 0 <= size <= _READ_SIZE:
            raise UserError(f"{self._path}: an archive header is larger than {_READ_SIZE} bytes")
        return self._stream.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()


@contextmanager
def _open_archive(path: Path) -> Iterator[tarfile.TarFile]:
    """The gzip'd tar at ``path``; a damaged file is one UserError."""
    try:
        with (
            gzip.open(path, "rb") as stream,
            tarfile.open(fileobj=_BoundedReads(stream, path), mode="r:") as tar,
        ):
            yield tar
    except (OSError, EOFError, tarfile.TarError, zlib_error) as exc:
        reason = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
        raise UserError(f"cannot read zoo archive {path}: {reason}") from None


def _archive_entries(tar: tarfile.TarFile, path: Path) -> dict[str, tarfile.TarInfo]:
    """Every entry's header, each checked before the archive is read past it: regular
    files named ``zoo.json`` or ``checkpoints/<sha256>.pt``, once each, within the limits."""
    entries: dict[str, tarfile.TarInfo] = {}
    total = 0
    while (entry := tar.next()) is not None:
        name = entry.name
        wanted = name == MANIFEST_ENTRY or _CHECKPOINT_ENTRY.fullmatch(name)
        if not wanted or not entry.isreg() or entry.issparse():
            raise UserError(f"{path}: unexpected archive entry {name!r}")
        if name in entries:
            raise UserError(f"{path}: archive entry {name!r} appears twice")
        limit = MAX_MANIFEST_BYTES if name == MANIFEST_ENTRY else MAX_CHECKPOINT_BYTES
        if entry.size > limit:
            raise UserError(f"{path}: {name} is {entry.size} bytes, over the limit of {limit}")
        total += entry.size
        if total > MAX_ARCHIVE_BYTES:
            raise UserError(f"{path}: the archive holds over {MAX_ARCHIVE_BYTES} bytes")
        entries[name] = entry
        if len(entries) > MAX_ARCHIVE_ENTRIES:
            raise UserError(f"{path}: the archive has over {MAX_ARCHIVE_ENTRIES} entries")
    if MANIFEST_ENTRY not in entries:
        raise UserError(f"{path}: not a zoo archive (no zoo.json)")
    return entries


def _read_entry(tar: tarfile.TarFile, entry: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(entry)
    assert handle is not None, "_archive_entries lets regular files through only"
    chunks = []
    while chunk := handle.read(_READ_SIZE):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_manifest(
    tar: tarfile.TarFile, entry: tarfile.TarInfo, path: Path, expect: str | None
) -> tuple[str, dict[str, Any], str]:
    """The archive's name, manifest and manifest hash, checked."""
    document = _parse_json(_read_entry(tar, entry), path)
    try:
        _check_document(document)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    content, stated = document["manifest"], document["manifest_sha256"]
    actual = _content_sha256(content, path)
    if actual != stated:
        raise UserError(
            f"{path}: the manifest was modified (hashes to {actual[:12]}, archive states "
            f"{stated[:12]})"
        )
    if expect is not None and not stated.startswith(expect.lower()):
        raise UserError(f"{path}: zoo manifest is {stated}, not the expected {expect}")
    try:
        _check_manifest(content)
    except UserError as exc:
        raise UserError(f"{path}: malformed zoo.json: {exc}") from None
    return document["name"], content, stated


def _parse_json(data: bytes, path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        document = json.loads(data.decode("utf-8"), parse_constant=refuse)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise UserError(f"{path}: zoo.json is not valid JSON") from None
    if _nesting(document) > MAX_MANIFEST_NESTING:
        raise UserError(f"{path}: zoo.json nests deeper than {MAX_MANIFEST_NESTING} levels")
    return document


def _nesting(value: Any) -> int:
    """How deep lists and objects nest in ``value`` (counted without recursion): hashing
    and storing a manifest recurse once per level."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _content_sha256(content: dict[str, Any], path: Path) -> str:
    try:
        return manifest_sha256(content)
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON text
        raise UserError(f"{path}: zoo.json holds text that is not valid Unicode") from None


def _read_checkpoints(
    tar: tarfile.TarFile,
    entries: dict[str, tarfile.TarInfo],
    content: dict[str, Any],
    path: Path,
) -> dict[str, bytes]:
    """The checkpoint bytes by sha256, each checked against it; an entry the manifest does
    not name is refused without being read."""
    named = {m["sha256"]: m["ref"] for m in content["members"] if m["sha256"] is not None}
    for name in entries:
        if name.removeprefix("checkpoints/").removesuffix(".pt") not in named:
            raise UserError(f"{path}: {name} is not a checkpoint of any member")
    payloads = {}
    for sha, ref in named.items():
        entry = entries.get(f"checkpoints/{sha}.pt")
        if entry is None:
            raise UserError(f"{path}: checkpoint {sha[:12]} of {ref} is missing")
        data = _read_entry(tar, entry)
        if sha256_hex(data) != sha:
            raise UserError(f"{path}: checkpoint of {ref} fails its sha256 check")
        payloads[sha] = data
    return payloads


def _check_member_states(content: dict[str, Any], payloads: dict[str, bytes], path: Path) -> None:
    """Every trained member's checkpoint must hold the weights its policy's spec builds."""
    states: dict[str, dict[str, Any]] = {}
    for member in content["members"]:
        sha = member["sha256"]
        if sha is None:
            continue
        label = f"{path}: checkpoint of {member['ref']}@{member['step']}"
        if sha not in states:
            states[sha] = payload_state(payloads[sha], label)
        checkpoints.check_policy_state(states[sha], member["spec"], member["role"], label)


# ---- manifest structure -------------------------------------------------------------------


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _check_keys(value: Any, keys: Sequence[str], where: str) -> None:
    _require(isinstance(value, dict), f"{where} must be an object")
    missing = [key for key in keys if key not in value]
    if missing:
        raise UserError(f"{where} lacks {missing[0]!r}")
    extra = sorted(set(value) - set(keys))
    if extra:
        raise UserError(f"{where} has an unknown key {_shown(extra[0])}")


def _shown(value: Any) -> str:
    """Archive data quoted for a message: control characters escaped, at most 60 characters."""
    quoted = repr(value)
    return quoted if len(quoted) <= 60 else f"{quoted[:57]}..."


def _is_int(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _is_name(value: Any, model: type[Base], column: str) -> bool:
    """One line of printable text that fits the registry column it goes to."""
    length = model.__table__.c[column].type.length
    return isinstance(value, str) and 0 < len(value) <= length and value.isprintable()


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def _check_document(document: Any) -> None:
    _require(isinstance(document, dict), "zoo.json is not a zoo manifest")
    version = document.get("format")
    _require(
        _is_int(version) and version == ARCHIVE_FORMAT,
        f"unsupported zoo archive format {_shown(version)}",
    )
    _check_keys(document, _DOCUMENT_KEYS, "zoo.json")
    _require(isinstance(document["name"], str), "zoo.json: name must be text")
    _require(_is_sha256(document["manifest_sha256"]), "zoo.json: manifest_sha256 is no sha256")
    _require(isinstance(document["manifest"], dict), "zoo.json: manifest must be an object")


def _check_manifest(content: dict[str, Any]) -> None:
    _check_keys(content, _MANIFEST_KEYS, "manifest")
    _require(_is_name(content["env"], Zoo, "env"), "manifest.env must be an env name")
    values = content["env_config"]
    _require(
        isinstance(values, dict) and values.get("name") == content["env"],
        "manifest.env_config must be an object naming the zoo's env",
    )
    _require(
        content["env_config_hash"] == config_hash(values),
        "manifest.env_config_hash is not the hash of env_config",
    )
    _require(type(content["held_out"]) is bool, "manifest.held_out must be true or false")
    description = content["description"]
    _require(
        isinstance(description, str) and description.isprintable(),
        "manifest.description must be one line of text",
    )
    members = content["members"]
    _require(isinstance(members, list) and members, "manifest.members must be a non-empty list")
    for index, member in enumerate(members):
        _check_member(member, f"manifest.members[{index}]", content)
    _check_agreement(members)


def _check_member(member: Any, where: str, content: dict[str, Any]) -> None:
    _check_keys(member, _MEMBER_KEYS, where)
    kind, role, run = member["kind"], member["role"], member["run"]
    _require(kind in POLICY_KINDS, f"{where}.kind must be one of {', '.join(POLICY_KINDS)}")
    _require(_is_name(role, Policy, "role"), f"{where}.role must be a role name")
    _require(member["env"] == content["env"], f"{where}.env must be the zoo's env")
    _require(isinstance(member["spec"], dict), f"{where}.spec must be an object")
    if kind == "trained":
        _require(_is_count(member["step"]), f"{where}.step must be a checkpoint step")
        _require(_is_sha256(member["sha256"]), f"{where}.sha256 must be 64 hex digits")
        _check_run(run, f"{where}.run", content)
        ref = f"{run['id']}/{role}"
    else:
        _require(
            member["step"] is None and member["sha256"] is None and run is None,
            f"{where}: a {kind} policy has no step, sha256 or run",
        )
        ref = f"{kind}:{content['env']}/{role}"
    _require(
        member["ref"] == ref and _is_name(ref, Policy, "id"), f"{where}.ref must be {_shown(ref)}"
    )


def _check_run(run: Any, where: str, content: dict[str, Any]) -> None:
    _check_keys(run, RUN_FIELDS, where)
    _require(
        isinstance(run["id"], str) and _RUN_ID.fullmatch(run["id"]) is not None,
        f"{where}.id must be a run id (12 hex digits)",
    )
    _require(run["env"] == content["env"], f"{where}.env must be the zoo's env")
    for key in ("algo", "package_version"):
        _require(_is_name(run[key], Run, key), f"{where}.{key} must be a name")
    commit = run["git_commit"]
    _require(
        commit is None or _is_name(commit, Run, "git_commit"),
        f"{where}.git_commit must be null or a commit",
    )
    for key in ("tau", "eps"):
        value = run[key]
        _require(
            isinstance(value, float) and math.isfinite(value), f"{where}.{key} must be a number"
        )
    _require(_is_int(run["seed"]), f"{where}.seed must be a whole number")
    for key in ("env_steps", "hero_samples"):
        _require(_is_count(run[key]), f"{where}.{key} must be a count")
    tags = run["tags"]
    _require(
        isinstance(tags, list) and all(isinstance(t, str) for t in tags),
        f"{where}.tags must be a list of text",
    )
    command = run["command"]
    _require(isinstance(command, str) and "\x00" not in command, f"{where}.command must be text")
    _require(
        redact(command) == command, f"{where}.command holds a password; archives never carry one"
    )
    _check_run_config(run, where, content)


def _check_run_config(run: dict[str, Any], where: str, content: dict[str, Any]) -> None:
    config = run["config"]
    _require(
        isinstance(config, dict)
        and isinstance(config.get("env"), dict)
        and config["env"].get("name") == run["env"],
        f"{where}.config must be a run config of the zoo's env",
    )
    _require(
        run["config_hash"] == sha256_hex(canonical_json(config).encode()),
        f"{where}.config_hash is not the hash of its config",
    )
    _require(
        config_hash(config["env"]) == content["env_config_hash"],
        f"{where} was trained on another env configuration than the zoo's",
    )


def _check_agreement(members: list[dict[str, Any]]) -> None:
    """No member twice; members sharing a policy, run or checkpoint say the same of it."""
    policies: dict[str, str] = {}
    runs: dict[str, str] = {}
    checkpoint_shas: dict[tuple[str, int], str] = {}
    pinned: set[tuple[str, int | None]] = set()
    for index, member in enumerate(members):
        where, ref = f"manifest.members[{index}]", member["ref"]
        _require((ref, member["step"]) not in pinned, f"{where} repeats an earlier member")
        pinned.add((ref, member["step"]))
        claims = canonical_json({key: member[key] for key in _POLICY_CLAIMS})
        _require(
            policies.setdefault(ref, claims) == claims,
            f"{where} describes policy {ref} unlike an earlier member",
        )
        run = member["run"]
        if run is None:
            continue
        described = canonical_json(run)
        _require(
            runs.setdefault(run["id"], described) == described,
            f"{where}.run describes run {run['id']} unlike an earlier member",
        )
        key = (run["id"], member["step"])
        _require(
            checkpoint_shas.setdefault(key, member["sha256"]) == member["sha256"],
            f"{where}.sha256 differs from an earlier member's checkpoint at that step",
        )


# ---- import -------------------------------------------------------------------------------


def import_zoo(
    registry: Registry, archive: Archive, *, name: str | None = None
) -> tuple[ZooInfo, bool]:
    """Recreate a verified zoo archive, frozen, with its runs, policies and checkpoints;
    returns the zoo and whether it was new. An import only adds: a run, policy or
    checkpoint this registry already has must be exactly what the archive says, else the
    import is refused. Everything is checked before one transaction writes every row."""
    name = archive.name if name is None else name
    check_zoo_name(name)
    existing = zoo_named(registry, name)
    if existing is not None:
        if existing.manifest_sha256 == archive.manifest_sha256:
            return existing, False
        raise UserError(f"zoo {name!r} already exists in this registry with other members")
    content = archive.manifest
    members = content["members"]
    runs = _new_runs(registry, {m["run"]["id"]: m["run"] for m in members if m["run"]})
    new_run_ids = {run["id"] for run in runs}
    registry.import_zoo_rows(
        ZooImport(
            zoo=NewZoo(
                name,
                content["env"],
                content["env_config"],
                content["env_config_hash"],
                content["held_out"],
                content["description"],
            ),
            manifest_sha256=archive.manifest_sha256,
            members=[(m["ref"], m["step"], m["sha256"]) for m in members],
            runs=runs,
            policies=_new_policies(registry, members, new_run_ids),
            checkpoints=_new_checkpoints(registry, members, new_run_ids, archive.payloads),
        )
    )
    return registry.get_zoo(name), True


def _differing(claimed: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """The keys of ``here`` whose values differ from the claimed ones once spelled
    canonically (1 and 1.0 differ, as in a manifest hash)."""
    return [key for key in here if canonical_json(claimed[key]) != canonical_json(here[key])]


def _new_runs(registry: Registry, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The archive's runs this registry lacks; a run it has must match in every field."""
    new = []
    for run_id, run in runs.items():
        try:
            here = registry.get_run(run_id)
        except NotFoundError:
            new.append(run)
            continue
        differing = _differing(run, exported_run(here))
        if differing:
            raise UserError(
                f"run {run_id} already exists in this registry with another "
                f"{', '.join(differing)}; an import never changes a local run"
            )
    return new


def _new_policies(
    registry: Registry, members: list[dict[str, Any]], new_run_ids: set[str]
) -> list[dict[str, Any]]:
    """The archive's policies this registry lacks; one it has must match in kind, role, env
    and spec, and a local run gets no policy it did not publish."""
    new: dict[str, dict[str, Any]] = {}
    for member in members:
        ref, run = member["ref"], member["run"]
        claims = {key: member[key] for key in _POLICY_CLAIMS}
        try:
            here = registry.get_policy(ref)
        except NotFoundError:
            if run is not None and run["id"] not in new_run_ids:
                raise UserError(
                    f"run {run['id']} exists in this registry without policy {ref}; an import "
                    "never changes a local run"
                ) from None
            new[ref] = {"id": ref, "run_id": None if run is None else run["id"], **claims}
            continue
        differing = _differing(claims, policy_claims(here))
        if differing:
            raise UserError(
                f"policy {ref} already exists in this registry with another "
                f"{', '.join(differing)}; an import never changes a local policy"
            )
    return list(new.values())


def _new_checkpoints(
    registry: Registry,
    members: list[dict[str, Any]],
    new_run_ids: set[str],
    payloads: dict[str, bytes],
) -> list[tuple[str, int, bytes]]:
    """The checkpoints of new runs; a local run must already hold the very checkpoint."""
    new: dict[tuple[str, int], bytes] = {}
    for member in members:
        if member["run"] is None:
            continue
        run_id, step, sha = member["run"]["id"], member["step"], member["sha256"]
        if run_id in new_run_ids:
            new[(run_id, step)] = payloads[sha]
            continue
        here = {c.step: c.sha256 for c in registry.checkpoints(run_id)}
        if step not in here:
            raise UserError(
                f"run {run_id} exists in this registry without a checkpoint at step {step}; "
                "an import never changes a local run"
            )
        if here[step] != sha:
            raise UserError(
                f"run {run_id} already has another checkpoint at step {step} "
                f"({here[step][:12]}, the archive's {sha[:12]})"
            )
    return [(run_id, step, payload) for (run_id, step), payload in new.items()]
