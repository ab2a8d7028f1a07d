"""The options of commands that can run on a cluster (`srpo ablate`, `srpo crossplay`):
``--executor local|ray``, ``--address``, ``--resources``, and the connection they open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from srpo_core.cluster import check_reachable
from srpo_core.errors import UserError

if TYPE_CHECKING:
    from srpo_core.ray_executor import RayCluster

ExecutorOption = Annotated[
    str,
    typer.Option(
        help="Where the work runs: local (processes on this machine) or ray (tasks on a Ray "
        "cluster; the ray extra, see docs/cluster.md)."
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        help="With --executor ray: the cluster, auto or HOST:PORT of its head (default: "
        "$RAY_ADDRESS, the cluster on this machine, else a one-node Ray for this command).",
        show_default=False,
    ),
]
ResourcesOption = Annotated[
    str | None,
    typer.Option(
        help="With --executor ray: each task's request, cpus=N,gpus=N,memory=SIZE (any of "
        "them; default: a training's run.threads CPUs and 1 GPU with run.device=cuda, a "
        "seating's 1 CPU and 1 GPU with --device cuda).",
        show_default=False,
    ),
]


@contextmanager
def open_cluster(executor: str, address: str | None) -> Iterator[RayCluster | None]:
    """The Ray cluster of ``--executor ray`` (None for local), disconnected on exit; one
    line when Ray is not installed or the cluster cannot be reached."""
    if executor != "ray":
        yield None
        return
    check_reachable(address)
    try:
        from srpo_core import ray_executor  # Ray: an optional dependency
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "ray":
            raise
        raise UserError("--executor ray needs Ray: pip install 'srpo[ray]'") from None
    cluster = ray_executor.RayCluster.connect(address)
    try:
        yield cluster
    finally:
        cluster.close()
