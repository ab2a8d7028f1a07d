"""Policies: what agents are evaluated with, a run's or a built-in one, by ref."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .errors import NotFoundError, RegistryError
from .info import PolicyInfo, _policy_info
from .leases import LeaseStore
from .models import Policy, utcnow
from .runs import _HEX, _MIN_PREFIX

POLICY_KINDS = ("trained", "scripted", "random", "untuned")


class PolicyStore(LeaseStore):
    """Policy methods of `Registry`; see there for the transaction rules."""

    def register_policy(
        self, *, run_id: str | None, role: str, env: str, kind: str, spec: dict[str, Any]
    ) -> str:
        """Record a policy others can be evaluated with; returns its ref.

        The ref is `<run_id>/<role>` for a run's policy and `<kind>:<env>/<role>` for a
        scripted, random or untuned (a debate base model) policy without a run. Registering
        the same ref again updates it.
        """
        if kind not in POLICY_KINDS:
            raise ValueError(f"unknown policy kind {kind!r}; expected one of {POLICY_KINDS}")
        if run_id is None and kind == "trained":
            raise ValueError("a trained policy needs the run that trained it")
        ref = f"{run_id}/{role}" if run_id is not None else f"{kind}:{env}/{role}"
        with self._tx(write=True) as session:
            if run_id is not None:
                self._run_row(session, run_id)
            row = session.get(Policy, ref)
            if row is None:
                row = Policy(id=ref, created_at=utcnow())
                session.add(row)
            row.run_id = run_id
            row.role = role
            row.env = env
            row.kind = kind
            row.spec = spec
        return ref

    def get_policy(self, ref: str) -> PolicyInfo:
        """The policy `ref` names; its run part may be a unique prefix of ≥ 4 characters."""
        with self._tx(write=False) as session:
            row = session.get(Policy, ref)
            run_part, slash, role = ref.partition("/")
            prefix = run_part.lower()
            if row is None and slash and len(prefix) >= _MIN_PREFIX and _HEX.fullmatch(prefix):
                rows = session.scalars(
                    select(Policy).where(Policy.run_id.startswith(prefix), Policy.role == role)
                ).all()
                if len(rows) > 1:
                    raise RegistryError(
                        f"policy ref {ref!r} matches {len(rows)} policies in {self._shown}; "
                        "type more characters of the run id"
                    )
                row = rows[0] if rows else None
            if row is None:
                raise NotFoundError(f"no policy {ref!r} in {self._shown}")
            return _policy_info(row)

    def policies(self, run_id: str | None = None, env: str | None = None) -> list[PolicyInfo]:
        """Registered policies, oldest first, optionally of one run or one environment."""
        stmt = select(Policy).order_by(Policy.created_at, Policy.id)
        if run_id is not None:
            stmt = stmt.where(Policy.run_id == run_id)
        if env is not None:
            stmt = stmt.where(Policy.env == env)
        with self._tx(write=False) as session:
            return [_policy_info(row) for row in session.scalars(stmt)]
