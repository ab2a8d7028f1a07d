"""Experiment registry: runs, metrics, checkpoints, policies, zoos and cross-play results in
SQL (a versioned schema, see `migrations`), checkpoint files by hash."""

from srpo_core.errors import UserError

from .connection import resolve_registry_url
from .errors import (
    CorruptArtifactError,
    LeaseLostError,
    MissingArtifactError,
    NotFoundError,
    RegistryError,
    RegistryUnavailableError,
)
from .info import CheckpointInfo, CrossplayRecord, PolicyInfo, RunInfo, ZooInfo, ZooMemberInfo
from .policies import POLICY_KINDS
from .runs import RUN_STATUSES
from .store import Registry

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
