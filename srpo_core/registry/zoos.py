"""Registry tables for partner zoos (mixed into `Registry`).

Only rows live here: what a zoo's manifest contains is decided by `srpo_core.zoo`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .artifacts import ArtifactStore
from .database import Database
from .errors import NotFoundError, RegistryError
from .info import ZooInfo, ZooMemberInfo
from .models import Base, Checkpoint, Policy, Run, Zoo, ZooMember, utcnow

ZOO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

Member = tuple[str, int | None, str | None]
"""A zoo member as written: (policy_ref, step, sha256)."""


def check_zoo_name(name: str) -> None:
    if not ZOO_NAME.fullmatch(name):
        raise RegistryError(
            f"invalid zoo name {name!r}: letters, digits, '_', '.', '-' (at most 100)"
        )


@dataclass(frozen=True)
class NewZoo:
    """The row of a zoo about to be created."""

    name: str
    env: str
    env_config: dict[str, Any]
    env_config_hash: str
    held_out: bool
    description: str


@dataclass(frozen=True)
class ZooImport:
    """Every row an import adds, each checked by `srpo_core.zoo` to be new here."""

    zoo: NewZoo
    manifest_sha256: str
    members: Sequence[Member]
    runs: Sequence[Mapping[str, Any]]
    """The exported fields of each new run (`srpo_core.zoo.manifest.RUN_FIELDS`)."""
    policies: Sequence[Mapping[str, Any]]
    """Each new policy: id, run_id, role, env, kind, spec."""
    checkpoints: Sequence[tuple[str, int, bytes]]
    """Each new checkpoint: run id, step, payload."""


class ZooStore(Database):
    """Zoo methods of `Registry`; see there for the transaction rules."""

    def _zoo_row(self, session: Session, name: str) -> Zoo:
        row = session.get(Zoo, name)
        if row is None:
            raise NotFoundError(f"no zoo {name!r} in {self._shown}")
        return row

    def create_zoo(
        self,
        name: str,
        *,
        env: str,
        env_config: dict[str, Any],
        env_config_hash: str,
        held_out: bool,
        description: str = "",
    ) -> None:
        zoo = NewZoo(name, env, env_config, env_config_hash, held_out, description)
        with self._tx(write=True) as session:
            self._add_zoo(session, zoo)

    def add_zoo_members(self, name: str, members: Sequence[Member]) -> int:
        """Append (policy_ref, step, sha256) members not already in the zoo; returns how many
        were new. A frozen zoo refuses any change."""
        with self._tx(write=True) as session:
            return self._add_members(session, name, members)

    def save_zoo_build(
        self,
        name: str,
        members: Sequence[Member],
        *,
        create: NewZoo | None,
        policies: Sequence[Mapping[str, Any]],
    ) -> int:
        """What `srpo zoo build` writes, in one transaction: the built-in and untuned policies
        it named (``id``, ``role``, ``env``, ``kind``, ``spec``; registered again they are
        updated, as `Registry.register_policy` does), the zoo when ``create`` is given, and
        its new members; returns how many members were new."""
        with self._tx(write=True) as session:
            for policy in policies:
                _put_policy(session, policy)
            if create is not None:
                self._add_zoo(session, create)
            return self._add_members(session, name, members)

    def import_zoo_rows(self, rows: ZooImport) -> None:
        """Write an imported zoo, frozen, with the runs, policies and checkpoints it brings,
        in one transaction. Every row must be new (what this registry already has is never
        changed). Checkpoint files go first, content-addressed: a rolled-back import leaves
        at most files no row refers to, which `srpo registry check` reports as unreferenced."""
        stored = [
            (run_id, step, self._artifacts.put(payload), len(payload))
            for run_id, step, payload in rows.checkpoints
        ]
        now = utcnow()
        with self._tx(write=True) as session:
            for run in rows.runs:
                self._refuse_present(session, Run, run["id"], f"run {run['id']}")
                session.add(_imported_run(run, now))
            for policy in rows.policies:
                self._refuse_present(session, Policy, policy["id"], f"policy {policy['id']}")
                session.add(Policy(**policy, created_at=now))
            for run_id, step, sha, size in stored:
                session.add(
                    Checkpoint(
                        run_id=run_id,
                        step=step,
                        sha256=sha,
                        path=ArtifactStore.relative_path(sha),
                        size_bytes=size,
                        created_at=now,
                    )
                )
            zoo = self._add_zoo(session, rows.zoo)
            self._add_members(session, zoo.name, rows.members)
            zoo.frozen_at = now
            zoo.manifest_sha256 = rows.manifest_sha256

    def _add_zoo(self, session: Session, zoo: NewZoo) -> Zoo:
        check_zoo_name(zoo.name)
        if session.get(Zoo, zoo.name) is not None:
            raise RegistryError(f"zoo {zoo.name!r} already exists in {self._shown}")
        row = Zoo(
            name=zoo.name,
            env=zoo.env,
            env_config=zoo.env_config,
            env_config_hash=zoo.env_config_hash,
            held_out=zoo.held_out,
            description=zoo.description,
            created_at=utcnow(),
            frozen_at=None,
            manifest_sha256=None,
        )
        session.add(row)
        return row

    def _add_members(self, session: Session, name: str, members: Sequence[Member]) -> int:
        session.flush()  # zoos and policies added earlier in this transaction
        zoo = self._zoo_row(session, name)
        if zoo.frozen_at is not None:
            raise RegistryError(f"zoo {name!r} is frozen; its members cannot change")
        rows = session.scalars(select(ZooMember).where(ZooMember.zoo == name)).all()
        have = {(r.policy_ref, r.step) for r in rows}
        position = max((r.position for r in rows), default=-1) + 1
        added = 0
        for ref, step, sha in members:
            if (ref, step) in have:
                continue
            if session.get(Policy, ref) is None:
                raise RegistryError(f"no policy {ref!r} in {self._shown}")
            session.add(
                ZooMember(zoo=name, position=position, policy_ref=ref, step=step, sha256=sha)
            )
            have.add((ref, step))
            position += 1
            added += 1
        return added

    def _refuse_present(self, session: Session, model: type[Base], key: str, what: str) -> None:
        """An import adds rows only: one that appeared since it was checked stops it."""
        if session.get(model, key) is not None:
            raise RegistryError(
                f"{what} appeared in {self._shown} while the zoo was imported; import it again"
            )

    def freeze_zoo(self, name: str, manifest_sha256: str) -> None:
        with self._tx(write=True) as session:
            zoo = self._zoo_row(session, name)
            if zoo.frozen_at is not None:
                raise RegistryError(f"zoo {name!r} is already frozen")
            zoo.frozen_at = utcnow()
            zoo.manifest_sha256 = manifest_sha256

    def delete_zoo(self, name: str, *, force_frozen: bool = False) -> ZooInfo:
        """Delete a zoo and its member rows (never the policies, runs or results) in one
        transaction; returns the zoo as it was. A frozen zoo is refused unless
        ``force_frozen``: results and leaderboards are pinned to frozen zoos."""
        with self._tx(write=True) as session:
            row = self._zoo_row(session, name)
            info = self._zoo_info(session, row)
            if row.frozen_at is not None and not force_frozen:
                raise RegistryError(
                    f"zoo {name!r} is frozen: frozen zoos are what results and leaderboards "
                    "are pinned to; give --force-frozen to delete it anyway"
                )
            session.execute(delete(ZooMember).where(ZooMember.zoo == name))
            session.delete(row)
        return info

    def get_zoo(self, name: str) -> ZooInfo:
        with self._tx(write=False) as session:
            return self._zoo_info(session, self._zoo_row(session, name))

    def zoos(self, env: str | None = None) -> list[ZooInfo]:
        stmt = select(Zoo).order_by(Zoo.created_at, Zoo.name)
        if env is not None:
            stmt = stmt.where(Zoo.env == env)
        with self._tx(write=False) as session:
            return [self._zoo_info(session, row) for row in session.scalars(stmt)]

    def held_out_zoos(self, policy_ref: str) -> list[str]:
        """Names of the held-out zoos that hold ``policy_ref`` (at any checkpoint)."""
        stmt = (
            select(Zoo.name)
            .join(ZooMember, ZooMember.zoo == Zoo.name)
            .where(Zoo.held_out.is_(True), ZooMember.policy_ref == policy_ref)
            .distinct()
            .order_by(Zoo.name)
        )
        with self._tx(write=False) as session:
            return list(session.scalars(stmt))

    @staticmethod
    def _zoo_info(session: Session, row: Zoo) -> ZooInfo:
        members = session.scalars(
            select(ZooMember).where(ZooMember.zoo == row.name).order_by(ZooMember.position)
        )
        return ZooInfo(
            name=row.name,
            env=row.env,
            env_config=row.env_config,
            env_config_hash=row.env_config_hash,
            held_out=row.held_out,
            description=row.description,
            created_at=row.created_at,
            frozen_at=row.frozen_at,
            manifest_sha256=row.manifest_sha256,
            members=tuple(
                ZooMemberInfo(m.policy_ref, m.step, m.sha256, m.position) for m in members
            ),
        )


def _put_policy(session: Session, policy: Mapping[str, Any]) -> None:
    """Insert a policy without a run, or update the one under its id."""
    row = session.get(Policy, policy["id"])
    if row is None:
        row = Policy(id=policy["id"], run_id=None, created_at=utcnow())
        session.add(row)
    row.role = policy["role"]
    row.env = policy["env"]
    row.kind = policy["kind"]
    row.spec = policy["spec"]


def _imported_run(info: Mapping[str, Any], now: datetime) -> Run:
    """A run exported with a zoo, recreated with status 'imported'."""
    return Run(
        id=info["id"],
        env=info["env"],
        algo=info["algo"],
        tau=info["tau"],
        eps=info["eps"],
        seed=info["seed"],
        config=info["config"],
        config_hash=info["config_hash"],
        package_version=info["package_version"],
        git_commit=info["git_commit"],
        status="imported",
        error=None,
        tags=list(info["tags"]),
        command=info["command"],
        created_at=now,
        updated_at=now,
        ended_at=now,
        env_steps=info["env_steps"],
        hero_samples=info["hero_samples"],
    )
