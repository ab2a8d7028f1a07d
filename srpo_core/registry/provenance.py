"""What a new run records about the code that trains it: srpo's version and git commit."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path


def package_version() -> str:
    try:
        return importlib.metadata.version("srpo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git_commit() -> str | None:
    """HEAD of the work tree holding srpo_core, with '-dirty' if it has uncommitted changes;
    None when git is missing or the package is not in a work tree."""
    package_dir = Path(__file__).resolve().parents[1]
    try:
        head = _git(package_dir, "rev-parse", "HEAD")
        changes = _git(package_dir, "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if changes else head


def _git(cwd: Path, *args: str) -> str:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take index.lock under a user's running git.
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    return result.stdout.strip()
