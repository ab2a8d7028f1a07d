"""Runs: creating them, their status and progress, tags, listing, and deletion."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, delete, or_, select, type_coerce
from sqlalchemy.orm import Session

from srpo_core.redact import redact

from .artifacts import ArtifactStore, sha256_hex
from .errors import NotFoundError, RegistryError
from .info import DeletedRuns, RunInfo
from .leases import LeaseStore
from .models import (
    Checkpoint,
    CrossplayResult,
    Metric,
    Policy,
    Run,
    ZooMember,
    canonical_json,
    utcnow,
)
from .provenance import _git_commit, package_version

RUN_STATUSES = ("running", "finished", "failed", "interrupted", "imported")
"""`imported`: a run that arrived with a zoo archive (its checkpoints, no training here)."""
_ENDED_STATUSES = frozenset({"finished", "failed", "interrupted"})
_MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-f]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_TAG_LENGTH = 200
_SEED_RANGE = range(-(2**63), 2**63)


class RunStore(LeaseStore):
    """Run methods of `Registry`; see there for the transaction rules."""

    def create_run(
        self,
        *,
        env: str,
        algo: str,
        tau: float,
        eps: float,
        seed: int,
        config: dict[str, Any],
        tags: Sequence[str] = (),
        command: str = "",
    ) -> str:
        """Record a new 'running' run with what is needed to reproduce it; returns its id.

        This handle holds the new run's lease (see `acquire_lease`)."""
        if int(seed) not in _SEED_RANGE:
            raise RegistryError(
                f"seed {seed} does not fit the registry: seeds are 64-bit signed integers"
            )
        now = utcnow()
        run = Run(
            id=uuid.uuid4().hex[:12],
            env=env,
            algo=algo,
            tau=float(tau),
            eps=float(eps),
            seed=int(seed),
            config=config,
            config_hash=sha256_hex(canonical_json(config).encode()),
            package_version=package_version(),
            git_commit=_git_commit(),
            status="running",
            error=None,
            tags=[redact(tag) for tag in tags],
            command=redact(command),
            created_at=now,
            updated_at=now,
            ended_at=None,
            env_steps=0,
            hero_samples=0,
        )
        self._claim(run)
        with self._tx(write=True) as session:
            session.add(run)
        self._held.add(run.id)
        return run.id

    def set_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Move a run to `status`; ending statuses stamp ended_at (and end this handle's
        lease), 'running' (resume) clears it."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {RUN_STATUSES}")
        now = utcnow()
        with self._tx(write=True) as session:
            run = self._held_run(session, run_id)
            run.status = status
            run.error = None if error is None else redact(error)
            run.updated_at = now
            run.ended_at = now if status in _ENDED_STATUSES else None
        if status in _ENDED_STATUSES:
            self._held.discard(run_id)

    def update_progress(self, run_id: str, *, env_steps: int, hero_samples: int) -> None:
        """Store the progress counters shown by `runs list` while a run trains (and renew
        the lease: a trainer calls this at least every `heartbeat_s`)."""
        with self._tx(write=True) as session:
            run = self._held_run(session, run_id)
            run.env_steps = int(env_steps)
            run.hero_samples = int(hero_samples)
            run.updated_at = utcnow()

    def get_run(self, run_id_or_prefix: str) -> RunInfo:
        """The run with this id, or the only run whose id starts with it (≥ 4 characters)."""
        with self._tx(write=False) as session:
            return self._run_info(self._find_run(session, run_id_or_prefix))

    def list_runs(
        self,
        *,
        env: str | None = None,
        algo: str | None = None,
        status: str | None = None,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs newest first, keeping those that match every filter given (all of `tags`)."""
        if status is not None and status not in RUN_STATUSES:
            raise RegistryError(f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}")
        if limit is not None and limit < 0:
            raise RegistryError(f"a limit of {limit} runs makes no sense; give 0 or more")
        stmt = select(Run).order_by(Run.created_at.desc(), Run.id.desc())
        if env is not None:
            stmt = stmt.where(Run.env == env)
        if algo is not None:
            stmt = stmt.where(Run.algo == algo)
        if status is not None:
            stmt = stmt.where(Run.status == status)
        wanted = set(tags or ())
        if limit is not None and not wanted:
            stmt = stmt.limit(limit)
        with self._tx(write=False) as session:
            # Tags are a JSON list, matched here so the query stays portable across databases.
            infos = (self._run_info(r) for r in session.scalars(stmt) if wanted.issubset(r.tags))
            return list(itertools.islice(infos, limit))

    def tag_run(
        self, run_id_or_prefix: str, tags: Sequence[str], *, remove: bool = False
    ) -> RunInfo:
        """Add `tags` to a run (those it has already are kept once), or with `remove` take
        them off (each must be there), in one transaction; returns the run after it.

        A tag is a non-empty single line of at most 200 characters; credentials in it are
        masked, as when a run is created."""
        wanted = [redact(_check_tag(tag)) for tag in tags]
        if not wanted:
            raise RegistryError("give at least one tag")
        with self._tx(write=True) as session:
            row = self._find_run(session, run_id_or_prefix, lock=True)
            current = list(row.tags)
            if remove:
                missing = [tag for tag in dict.fromkeys(wanted) if tag not in current]
                if missing:
                    listed = ", ".join(repr(tag) for tag in missing)
                    raise RegistryError(f"run {row.id} has no tag {listed}; nothing changed")
                row.tags = [tag for tag in current if tag not in wanted]
            else:
                row.tags = list(dict.fromkeys([*current, *wanted]))
            row.updated_at = utcnow()
            session.flush()
            return self._run_info(row)

    def check_delete_runs(self, runs: Sequence[str]) -> list[RunInfo]:
        """The runs `delete_runs` would delete (ids or unique prefixes, each once), or the
        RegistryError it would raise; changes nothing."""
        with self._tx(write=False) as session:
            return [self._run_info(row) for row in self._deletable_runs(session, runs)]

    def delete_runs(self, runs: Sequence[str]) -> DeletedRuns:
        """Delete runs (ids or unique prefixes) with their metrics, checkpoint rows and
        policies, all in one transaction; any run that cannot go stops them all (see
        `_deletable_runs`). After the commit, checkpoint files no remaining checkpoint row
        refers to are removed from the artifact folder (files are content-addressed, so other
        runs may share one)."""
        with self._tx(write=True) as session:
            rows = self._deletable_runs(session, runs, lock=True)
            ids = [row.id for row in rows]
            shas = set(session.scalars(select(Checkpoint.sha256).where(Checkpoint.run_id.in_(ids))))
            counts = {
                model.__tablename__: int(
                    session.execute(delete(model).where(model.run_id.in_(ids))).rowcount
                )
                for model in (Metric, Checkpoint, Policy)
            }
            session.execute(delete(Run).where(Run.id.in_(ids)))
        with self._tx(write=False) as session:
            shared = set(
                session.scalars(select(Checkpoint.sha256).where(Checkpoint.sha256.in_(shas)))
            )
        removed: list[str] = []
        failed: list[str] = []
        for sha in sorted(shas - shared):
            if not _SHA256.fullmatch(sha):  # never a path outside the artifact folder
                failed.append(sha)
                continue
            file = self.artifact_dir / ArtifactStore.relative_path(sha)
            try:
                file.unlink(missing_ok=True)
            except OSError:
                failed.append(str(file))
            else:
                removed.append(str(file))
        return DeletedRuns(
            run_ids=tuple(ids),
            metrics=counts[Metric.__tablename__],
            checkpoints=counts[Checkpoint.__tablename__],
            policies=counts[Policy.__tablename__],
            files_removed=tuple(removed),
            files_shared=len(shas & shared),
            files_failed=tuple(failed),
        )

    def _find_run(self, session: Session, run_id_or_prefix: str, *, lock: bool = False) -> Run:
        """A run by id or unique prefix of ≥ 4 characters, in `session`."""
        key = run_id_or_prefix.strip().lower()
        row = session.get(Run, key, with_for_update=lock)
        if row is None and len(key) >= _MIN_PREFIX and _HEX.fullmatch(key):
            ids = session.scalars(select(Run.id).where(Run.id.startswith(key))).all()
            if len(ids) > 1:
                raise RegistryError(
                    f"run id prefix {key!r} matches {len(ids)} runs in {self._shown}; "
                    "type more characters"
                )
            row = session.get(Run, ids[0], with_for_update=lock) if ids else None
        if row is None:
            hint = f" (give at least {_MIN_PREFIX} characters)" if len(key) < _MIN_PREFIX else ""
            raise NotFoundError(f"no run {run_id_or_prefix!r} in {self._shown}{hint}")
        return row

    def _deletable_runs(
        self, session: Session, runs: Sequence[str], *, lock: bool = False
    ) -> list[Run]:
        """The rows of `runs` (each once), refusing with one RegistryError naming every
        reason when any of them is still training (a live lease), has a policy in a zoo, or
        has a policy in stored cross-play results (as the agent or as a partner)."""
        if not runs:
            raise RegistryError("give at least one run")
        rows: dict[str, Run] = {}
        for given in runs:
            row = self._find_run(session, given, lock=lock)
            rows.setdefault(row.id, row)
        ids = list(rows)
        problems: list[str] = []
        for row in rows.values():
            if self._live(row):
                problems.append(
                    f"run {row.id} is still training (pid {row.lease_pid} on host "
                    f"{row.lease_host}): stop it first"
                )
        members = session.execute(
            select(ZooMember.zoo, Policy.run_id)
            .join(Policy, Policy.id == ZooMember.policy_ref)
            .where(Policy.run_id.in_(ids))
            .distinct()
            .order_by(Policy.run_id, ZooMember.zoo)
        ).all()
        zoos: dict[str, list[str]] = {}
        for zoo, run_id in members:
            zoos.setdefault(run_id, []).append(zoo)
        for run_id, names in zoos.items():
            listed = ", ".join(repr(name) for name in names)
            problems.append(
                f"run {run_id} has policies in zoo {listed}: delete the zoo first "
                "(`srpo zoo delete`)"
            )
        results: dict[str, int] = {}
        # Refs are `<run id>/<role>`; the hex id needs no LIKE escaping, and each candidate
        # row is confirmed on its parsed refs. The partners JSON is matched as plain text.
        near = [
            CrossplayResult.agent_ref.startswith(f"{run_id}/")
            | type_coerce(CrossplayResult.partners, String).contains(run_id)
            for run_id in ids
        ]
        for i in range(0, len(near), 100):
            for row in session.scalars(select(CrossplayResult).where(or_(*near[i : i + 100]))):
                refs = {row.agent_ref}
                refs.update(p.get("ref") for p in row.partners.values() if isinstance(p, dict))
                for run_id in {str(ref).partition("/")[0] for ref in refs if ref} & set(ids):
                    results[run_id] = results.get(run_id, 0) + 1
        for run_id in ids:
            if results.get(run_id):
                n = results[run_id]
                problems.append(
                    f"run {run_id} has policies in {n} stored cross-play result"
                    f"{'s' if n != 1 else ''}"
                )
        if problems:
            raise RegistryError("nothing deleted: " + "; ".join(problems))
        return list(rows.values())


def _check_tag(tag: str) -> str:
    """A run tag as given, refused unless it is a non-empty single line of at most
    MAX_TAG_LENGTH characters."""
    if not tag.strip():
        raise RegistryError("a tag cannot be empty")
    if tag.splitlines() != [tag] or any(not ch.isprintable() and ch != " " for ch in tag):
        raise RegistryError(f"a tag must be a single line of printable characters, not {tag!r}")
    if len(tag) > MAX_TAG_LENGTH:
        raise RegistryError(
            f"a tag has at most {MAX_TAG_LENGTH} characters, got {len(tag)}: {tag[:40]!r}..."
        )
    return tag
