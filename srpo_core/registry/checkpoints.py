"""Checkpoints: a run's rows pointing to content-addressed files (see `artifacts`)."""

from __future__ import annotations

from sqlalchemy import select

from .artifacts import ArtifactStore, sha256_hex
from .errors import CorruptArtifactError, MissingArtifactError, RegistryError
from .info import CheckpointInfo, _checkpoint_info
from .leases import LeaseStore
from .models import Checkpoint, utcnow


class CheckpointStore(LeaseStore):
    """Checkpoint methods of `Registry`; see there for the transaction rules."""

    def save_checkpoint(self, run_id: str, step: int, payload: bytes) -> CheckpointInfo:
        """Store checkpoint bytes for `step` (replacing an earlier one for the same step)."""
        # The file is written before the row, outside the transaction: no row ever points to
        # a missing file, and the write lock is not held during disk I/O.
        try:
            sha = self._artifacts.put(payload)
        except OSError as exc:
            raise RegistryError(
                f"cannot store a checkpoint of run {run_id} in {self.artifact_dir}: {exc}"
            ) from None
        with self._tx(write=True) as session:
            self._held_run(session, run_id)
            row = session.scalar(
                select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step)
            )
            if row is None:
                row = Checkpoint(run_id=run_id, step=int(step))
                session.add(row)
            row.sha256 = sha
            row.path = ArtifactStore.relative_path(sha)
            row.size_bytes = len(payload)
            row.created_at = utcnow()
            session.flush()
            return _checkpoint_info(row)

    def checkpoints(self, run_id: str) -> list[CheckpointInfo]:
        """A run's checkpoints by step."""
        stmt = select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step)
        with self._tx(write=False) as session:
            self._run_row(session, run_id)
            return [_checkpoint_info(row) for row in session.scalars(stmt)]

    def latest_checkpoint(self, run_id: str) -> CheckpointInfo | None:
        """The checkpoint a resumed run restarts from, if any."""
        stmt = (
            select(Checkpoint)
            .where(Checkpoint.run_id == run_id)
            .order_by(Checkpoint.step.desc())
            .limit(1)
        )
        with self._tx(write=False) as session:
            self._run_row(session, run_id)
            row = session.scalar(stmt)
            return None if row is None else _checkpoint_info(row)

    def read_checkpoint(self, info: CheckpointInfo) -> bytes:
        """The checkpoint's bytes, refused unless they still hash to the recorded sha256."""
        label = f"checkpoint {info.sha256[:12]} of run {info.run_id}"
        file = self.artifact_dir / info.path
        try:
            payload = self._artifacts.read(info.path)
        except FileNotFoundError:
            raise MissingArtifactError(f"{label} is missing: no file {file}") from None
        except OSError as exc:
            raise RegistryError(f"{label} cannot be read from {file}: {exc.strerror}") from None
        actual = sha256_hex(payload)
        if actual != info.sha256:
            raise CorruptArtifactError(
                f"{label} failed its sha256 check: {file} now hashes to {actual[:12]}"
            )
        return payload
