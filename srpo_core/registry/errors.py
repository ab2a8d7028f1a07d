"""The registry's errors: each a `UserError` the command line shows as one line."""

from srpo_core.errors import UserError


class RegistryError(UserError):
    """The registry cannot be opened or cannot do what was asked."""


class NotFoundError(RegistryError):
    """No run or policy matches what the user typed."""


class CorruptArtifactError(RegistryError):
    """A stored file's bytes no longer match the sha256 recorded when it was saved."""


class MissingArtifactError(RegistryError):
    """A file the registry points to is gone from the artifact folder."""


class RegistryUnavailableError(RegistryError):
    """The database could not be reached or stayed locked: worth trying again later."""


class LeaseLostError(RegistryError):
    """Another process took over the run this handle was training (its lease expired)."""
