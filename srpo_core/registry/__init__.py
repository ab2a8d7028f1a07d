"""Experiment registry: runs, metrics, checkpoints and policies in SQL, checkpoint files by hash."""

from srpo_core.errors import UserError

from .store import (
    POLICY_KINDS,
    RUN_STATUSES,
    CheckpointInfo,
    CorruptArtifactError,
    MissingArtifactError,
    NotFoundError,
    PolicyInfo,
    Registry,
    RegistryError,
    RunInfo,
    resolve_registry_url,
)

__all__ = [
    "POLICY_KINDS",
    "RUN_STATUSES",
    "CheckpointInfo",
    "CorruptArtifactError",
    "MissingArtifactError",
    "NotFoundError",
    "PolicyInfo",
    "Registry",
    "RegistryError",
    "RunInfo",
    "UserError",
    "resolve_registry_url",
]
