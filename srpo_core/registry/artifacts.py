"""Content-addressed file store for checkpoints: a blob lives in `<sha256>.pt` under one folder.

Naming files by their hash makes identical payloads share one file and lets every load prove
the bytes are the ones that were saved. The registry holds the hashes; this module only moves
bytes, so it knows nothing about runs or torch.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class ArtifactStore:
    """Blobs in one folder, created on the first write so read-only use leaves no trace."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def relative_path(sha256: str) -> str:
        return f"{sha256}.pt"

    def put(self, payload: bytes) -> str:
        """Store `payload` once and return its sha256.

        An existing file is rewritten only if its bytes no longer match its name, so a damaged
        blob is repaired by saving the same content again.
        """
        sha = sha256_hex(payload)
        target = self.root / self.relative_path(sha)
        if target.is_file() and _file_sha256(target) == sha:
            return sha
        self.root.mkdir(parents=True, exist_ok=True)
        # Write beside the target then rename: readers never see a half-written file, and
        # concurrent writers of the same blob each rename a complete copy.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def read(self, relative_path: str) -> bytes:
        """Raw bytes of a blob; the caller checks them against the hash it recorded."""
        return (self.root / relative_path).read_bytes()
