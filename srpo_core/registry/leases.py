"""Runs' rows and leases: which process trains a run, renewed and checked on every write to
it, and whether that process is still alive."""

from __future__ import annotations

import os
import socket

from sqlalchemy.orm import Session

from .database import Database
from .errors import LeaseLostError, NotFoundError, RegistryError
from .info import RunInfo, _run_info
from .models import Run, utcnow


class LeaseStore(Database):
    """A run's row and its lease, which the run, metric, checkpoint and policy stores use;
    see `Registry` for the transaction rules."""

    def _run_row(self, session: Session, run_id: str, *, lock: bool = False) -> Run:
        row = session.get(Run, run_id, with_for_update=lock)
        if row is None:
            raise NotFoundError(f"no run {run_id!r} in {self._shown}")
        return row

    def _run_info(self, row: Run) -> RunInfo:
        return _run_info(row, lease_expired=row.status == "running" and not self._live(row))

    def acquire_lease(self, run_id: str) -> None:
        """Make this handle the trainer of `run_id`, in one compare-and-set transaction.

        Refused while another process holds a live lease on it (status 'running' and a
        heartbeat within the lease TTL). From then on every write of this handle to the run
        renews the lease, and fails with LeaseLostError if another process took it over.
        """
        with self._tx(write=True) as session:
            self._claim(self._run_row(session, run_id, lock=True))
        self._held.add(run_id)

    def _claim(self, row: Run) -> None:
        if row.lease_token != self._lease_token and self._live(row):
            assert row.heartbeat_at is not None
            age = (utcnow() - row.heartbeat_at).total_seconds()
            raise RegistryError(
                f"run {row.id} is still training (pid {row.lease_pid} on host "
                f"{row.lease_host}, heartbeat {age:.0f}s ago); stop that process, or resume "
                f"once its lease expires ({self.lease_ttl_s:g}s without a heartbeat)"
            )
        row.lease_host = socket.gethostname()
        row.lease_pid = os.getpid()
        row.lease_token = self._lease_token
        row.heartbeat_at = utcnow()

    def _live(self, row: Run) -> bool:
        """Whether a process is training the run: status 'running', a heartbeat within the
        lease TTL, and, when that process ran on this host, the process still there (so a
        run whose trainer was killed resumes at once)."""
        if row.status != "running" or row.lease_token is None or row.heartbeat_at is None:
            return False
        if row.lease_host == socket.gethostname() and not _pid_alive(row.lease_pid):
            return False
        return (utcnow() - row.heartbeat_at).total_seconds() < self.lease_ttl_s

    def _held_run(self, session: Session, run_id: str) -> Run:
        """The run's row for a write; if this handle holds its lease, checked and renewed."""
        row = self._run_row(session, run_id, lock=True)
        if run_id in self._held:
            if row.lease_token != self._lease_token:
                raise LeaseLostError(
                    f"run {run_id} was taken over by pid {row.lease_pid} on host "
                    f"{row.lease_host}: this process sent no heartbeat for over "
                    f"{self.lease_ttl_s:g}s, so its lease expired; it stops training the run"
                )
            row.heartbeat_at = utcnow()
        return row


def _pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this host (a reused id counts as alive)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True
