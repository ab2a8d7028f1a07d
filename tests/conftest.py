"""Shared fixtures: a real registry file per test and the CLI as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'srpo.db'}"


class Cli:
    def __init__(self, cwd: Path, registry_url: str) -> None:
        self.cwd = cwd
        self.env = {**os.environ, "SRPO_REGISTRY": registry_url, "COLUMNS": "200"}

    def __call__(self, *args: str, check: bool = True, timeout: float = 300):
        proc = subprocess.run(
            [sys.executable, "-m", "srpo_cli.main", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"srpo {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "srpo_cli.main", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(tmp_path: Path, registry_url: str) -> Cli:
    return Cli(tmp_path, registry_url)
