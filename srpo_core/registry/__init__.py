"""Experiment registry: runs, metrics, checkpoints, policies, zoos and cross-play results in
SQL (a versioned schema, see `migrations`), checkpoint files by hash."""

from srpo_core.errors import UserError

from .store import (
    POLICY_KINDS,
    RUN_STATUSES,
    CheckpointInfo,
    CorruptArtifactError,
    LeaseLostError,
    MissingArtifactError,
    NotFoundError,
    PolicyInfo,
    Registry,
    RegistryError,
    RegistryUnavailableError,
    RunInfo,
    resolve_registry_url,
)
from .zoo_store import CrossplayRecord, ZooInfo, ZooMemberInfo

__all__ = [
    "POLICY_KINDS",
    "RUN_STATUSES",
    "CheckpointInfo",
    "CorruptArtifactError",
    "CrossplayRecord",
    "LeaseLostError",
    "MissingArtifactError",
    "NotFoundError",
    "PolicyInfo",
    "Registry",
    "RegistryError",
    "RegistryUnavailableError",
    "RunInfo",
    "UserError",
    "ZooInfo",
    "ZooMemberInfo",
    "resolve_registry_url",
]
