"""`srpo registry check`: the registry verified as a whole.

Every checkpoint is read again (its bytes must still hash to the recorded sha256) and
unpickled without code, and each trained policy of its run must fit it (keys, shapes and
dtypes as its spec builds them); every file of the artifact folder must be referenced by a
checkpoint row; no run may claim to be training under an expired lease. Nothing is
written: the check reports, the user decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from srpo_core import checkpoints
from srpo_core.errors import UserError
from srpo_core.registry import (
    CheckpointInfo,
    CorruptArtifactError,
    MissingArtifactError,
    PolicyInfo,
    Registry,
    RunInfo,
)

ARTIFACT_NAME = re.compile(r"[0-9a-f]{64}\.pt")


@dataclass(frozen=True)
class Finding:
    kind: str
    """missing, corrupt, unreadable, structure, unreferenced, stray or expired-lease."""
    subject: str
    """What it is about: a run id, a checkpoint (run@step) or an artifact file name."""
    detail: str


@dataclass(frozen=True)
class CheckReport:
    runs: int
    checkpoints: int
    files: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


def check_registry(registry: Registry) -> CheckReport:
    """Verify every run, checkpoint and artifact file of ``registry``."""
    runs = registry.list_runs()
    findings: list[Finding] = []
    referenced: set[str] = set()
    checked = 0
    for run in runs:
        findings.extend(_lease_findings(run))
        trained = [p for p in registry.policies(run_id=run.id) if p.kind == "trained"]
        for checkpoint in registry.checkpoints(run.id):
            referenced.add(checkpoint.path)
            checked += 1
            findings.extend(_checkpoint_findings(registry, checkpoint, trained))
    files = _artifact_files(registry.artifact_dir)
    for name in sorted(files - referenced):
        if ARTIFACT_NAME.fullmatch(name):
            detail = "no checkpoint row refers to it (left by a refused import or a crash)"
            findings.append(Finding("unreferenced", name, detail))
        else:
            findings.append(Finding("stray", name, "not a file srpo writes to the artifact folder"))
    return CheckReport(len(runs), checked, len(files), tuple(findings))


def _lease_findings(run: RunInfo) -> Iterator[Finding]:
    if run.status == "running" and run.lease_expired:
        yield Finding(
            "expired-lease",
            run.id,
            f"status running but its trainer stopped renewing its lease; resume it with "
            f"`srpo train --resume {run.id}`",
        )


def _checkpoint_findings(
    registry: Registry, checkpoint: CheckpointInfo, trained: list[PolicyInfo]
) -> Iterator[Finding]:
    subject = f"{checkpoint.run_id}@{checkpoint.step}"
    try:
        state = checkpoints.from_bytes(registry.read_checkpoint(checkpoint))
    except UserError as exc:  # the registry's read errors are UserErrors too
        yield Finding(_read_failure(exc), subject, str(exc))
        return
    for policy in trained:
        label = f"checkpoint of run {checkpoint.run_id} at step {checkpoint.step}"
        try:
            checkpoints.check_policy_state(state, policy.spec, policy.role, label)
        except UserError as exc:
            yield Finding("structure", subject, str(exc))


def _read_failure(exc: UserError) -> str:
    if isinstance(exc, MissingArtifactError):
        return "missing"
    if isinstance(exc, CorruptArtifactError):
        return "corrupt"
    return "unreadable"


def _artifact_files(folder: Path) -> set[str]:
    """Names of the entries of the (flat) artifact folder, as checkpoint rows store them."""
    if not folder.is_dir():
        return set()
    return {path.name for path in folder.iterdir()}
