"""What sweeps and cross-play need on a cluster, independent of the engine that runs them.

A task on another machine is an `srpo` process (a training) or a cross-play seating that
reaches the same registry and artifacts as the driver: `task_env` is the environment it gets
(the registry by absolute URL, the artifact folder, every other ``SRPO_*`` setting of the
driver). A registry shared by several machines must be a database server: SQLite's locking
holds on one machine only, so `check_shared_registry` refuses a SQLite registry on a cluster
of more than one node (one node may use it). `Resources` is a task's request: CPUs and GPUs
from its config (``run.threads``, ``run.device=cuda`` -> one GPU), then what ``--resources``
says. Ray itself is imported only by `srpo_core.ray_executor` (opened by
`srpo_cli.cluster_options.open_cluster`).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from srpo_core.errors import UserError
from srpo_core.redact import redact

if TYPE_CHECKING:
    from srpo_core.registry import Registry

EXECUTORS = ("local", "ray")
CONNECT_TIMEOUT_S = 5.0
"""How long `check_reachable` waits for a cluster's head to accept a connection."""
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Resources:
    """A task's resource request; None leaves a kind to the config (or to the engine)."""

    cpus: float | None = None
    gpus: float | None = None
    memory: int | None = None
    """Bytes of memory the scheduler reserves for the task (none by default)."""

    def over(self, base: Resources) -> Resources:
        """This request where it says something, ``base`` elsewhere."""
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in given.items() if v is not None})

    def describe(self) -> str:
        """The request as --resources would write it."""
        counts = (("cpus", self.cpus), ("gpus", self.gpus))
        parts = [f"{name}={value:g}" for name, value in counts if value is not None]
        if self.memory is not None:
            parts.append(f"memory={self.memory}")
        return ",".join(parts)


def config_resources(device: str, threads: int) -> Resources:
    """What a run's config asks for: ``run.threads`` CPUs, one GPU on ``run.device=cuda``
    (``auto`` asks for none: give ``--resources gpus=1`` to place it on a GPU)."""
    return Resources(cpus=float(threads), gpus=1.0 if device == "cuda" else 0.0)


def seating_resources(device: str) -> Resources:
    """What one cross-play seating asks for: a CPU, and a GPU on ``--device cuda``."""
    return Resources(cpus=1.0, gpus=1.0 if device == "cuda" else 0.0)


def parse_resources(text: str | None) -> Resources:
    """``cpus=N,gpus=N,memory=SIZE`` (any subset; SIZE in bytes or with a unit such as
    512MB, 4GiB); None or empty: no override."""
    if not text:
        return Resources()
    values: dict[str, float | int] = {}
    for item in text.split(","):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or key not in ("cpus", "gpus", "memory") or not value:
            raise UserError(
                f"--resources takes cpus=N,gpus=N,memory=SIZE (any of them), got '{text}'"
            )
        if key in values:
            raise UserError(f"--resources gives {key} twice")
        values[key] = _size(value) if key == "memory" else _count(key, value)
    return Resources(**values)  # type: ignore[arg-type]


def _count(key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (number >= 0 and number != float("inf")):
        raise UserError(f"--resources {key} must be a number >= 0, got '{value}'")
    return number


def _size(value: str) -> int:
    match = _SIZE.fullmatch(value)
    if match is None or float(match[1]) <= 0:
        raise UserError(f"--resources memory must be a size such as 512MB or 4GiB, got '{value}'")
    unit = (match[2] or "").lower()
    scale = _UNITS[unit[:1]] if "i" not in unit else 1024 ** ("kmgt".index(unit[0]) + 1)
    return int(float(match[1]) * scale)


def check_address(address: str | None) -> None:
    """``auto``, ``HOST:PORT`` or None (the engine's default); anything else is refused."""
    if address is None or address == "auto":
        return
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise UserError(f"--address takes auto or HOST:PORT (a Ray head), got '{address}'")


def check_reachable(address: str | None) -> None:
    """A ``HOST:PORT`` address must accept a connection within `CONNECT_TIMEOUT_S` (a Ray
    driver would otherwise wait for it for minutes)."""
    check_address(address)
    if address is None or address == "auto":
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach a Ray cluster at {address}: {reason}") from None


def check_shared_registry(url: str, nodes: int) -> None:
    """Refuse a SQLite registry for a cluster of more than one node: its file and its locks
    live on one machine. Checked before the registry is opened, so nothing is written."""
    if nodes > 1 and _backend(url) == "sqlite":
        raise UserError(
            f"the registry {redact(url)} is a SQLite file, which the {nodes} nodes of this "
            "cluster cannot share: use a PostgreSQL registry (--registry "
            "postgresql+psycopg://USER@HOST/DB) with SRPO_ARTIFACTS on a filesystem every "
            "node mounts (one node may use SQLite)"
        )


def _backend(url: str) -> str:
    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        return ""


def absolute_url(url: str) -> str:
    """The registry URL as another process in another folder must see it: a SQLite file by
    its absolute path (the URL is returned as given otherwise)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return url
    path = Path(parsed.database).expanduser().resolve()
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def task_env(registry: Registry) -> dict[str, str]:
    """The environment of a task's `srpo` process: the driver's ``SRPO_*`` settings, its
    registry by absolute URL and its artifact folder."""
    env = {k: v for k, v in os.environ.items() if k.startswith("SRPO_")}
    env["SRPO_REGISTRY"] = absolute_url(registry.url)
    env["SRPO_ARTIFACTS"] = str(registry.artifact_dir)
    return env


def check_artifacts_visible(env: dict[str, str], node: str) -> None:
    """On a task's node: the driver's artifact folder must be there (a shared filesystem),
    else the task's checkpoints would land where no other node finds them."""
    folder = env.get("SRPO_ARTIFACTS")
    if folder and not Path(folder).is_dir():
        raise UserError(
            f"the artifact folder {folder} does not exist on node {node}: SRPO_ARTIFACTS must "
            "be a folder every node of the cluster mounts at the same path"
        )


def check_executor(executor: str, address: str | None, resources: str | None) -> None:
    if executor not in EXECUTORS:
        raise UserError(f"--executor takes {' or '.join(EXECUTORS)}, got '{executor}'")
    if executor == "local" and (address is not None or resources is not None):
        raise UserError("--address and --resources go with --executor ray")
