"""Env shards in worker processes: one pipe per worker, all stepped concurrently.

A shard is any class built as ``shard_class(config_dict, count)`` whose methods the parent
calls by name (``shards.call("step", per_shard_args)``). Tag's mpe2 backend and Overcooked
use it through `Shards`; results never depend on the worker count because each shard owns
its own envs.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import traceback
import weakref
from typing import Any

import numpy as np


def _serve(conn, shard_class: type, config_dict: dict[str, Any], count: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        shard = shard_class(config_dict, count)
        conn.send(("ok", None))
        while True:
            cmd, args = conn.recv()
            if cmd == "close":
                break
            try:
                conn.send(("ok", getattr(shard, cmd)(*args)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _shutdown(conns: list, procs: list) -> None:
    for conn in conns:
        with contextlib.suppress(OSError):
            conn.send(("close", ()))
    for proc in procs:
        proc.join(timeout=2)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2)
    for conn in conns:
        conn.close()
    conns.clear()
    procs.clear()


class ShardPool:
    """Shards in daemon worker processes named ``label``, one pipe each."""

    def __init__(
        self,
        shard_class: type,
        config_dict: dict[str, Any],
        counts: list[int],
        start_method: str,
        label: str,
    ) -> None:
        ctx = mp.get_context(start_method)
        self.label = label
        self.conns: list = []
        self.procs: list = []
        # Registered first so that a failure below still stops what did start.
        self._finalizer = weakref.finalize(self, _shutdown, self.conns, self.procs)
        for count in counts:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_serve,
                args=(child, shard_class, config_dict, count),
                daemon=True,
                name=label,
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            self._receive(conn)

    def _receive(self, conn) -> Any:
        try:
            status, payload = conn.recv()
        except EOFError:
            self.close()
            raise RuntimeError(f"a {self.label} worker process died") from None
        if status == "error":
            self.close()
            raise RuntimeError(f"a {self.label} worker failed:\n{payload}")
        return payload

    def call(self, cmd: str, per_shard_args: list[tuple]) -> list[Any]:
        """Send ``cmd`` to every shard (args per shard), then gather the replies."""
        for conn, args in zip(self.conns, per_shard_args, strict=True):
            conn.send((cmd, args))
        return [self._receive(conn) for conn in self.conns]

    def close(self) -> None:
        self._finalizer()


class Shards:
    """``num_envs`` sub-envs split into contiguous ``slices``, one per worker process of a
    `ShardPool`, or one shard in this process when ``workers`` is 0. Started on the first
    call; ``start_method`` "auto" is fork where the platform has it, else spawn."""

    def __init__(
        self,
        shard_class: type,
        config_dict: dict[str, Any],
        num_envs: int,
        workers: int,
        start_method: str,
        label: str,
    ) -> None:
        self.shard_class, self.config_dict, self.label = shard_class, config_dict, label
        self.workers = min(workers, num_envs)
        self.start_method = start_method
        bounds = np.linspace(0, num_envs, max(self.workers, 1) + 1).round().astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds, bounds[1:], strict=False)]
        self.backend: Any = None
        """None until the first call, then the in-process shard or the `ShardPool`."""

    def call(self, cmd: str, per_shard_args: list[tuple]) -> list[Any]:
        """``cmd`` on every shard (args per shard); the replies in shard order."""
        if self.backend is None:
            self._start()
        if isinstance(self.backend, ShardPool):
            return self.backend.call(cmd, per_shard_args)
        return [getattr(self.backend, cmd)(*per_shard_args[0])]

    def _start(self) -> None:
        counts = [s.stop - s.start for s in self.slices]
        if self.workers == 0:
            self.backend = self.shard_class(self.config_dict, counts[0])
            return
        method = self.start_method
        if method == "auto":
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        self.backend = ShardPool(self.shard_class, self.config_dict, counts, method, self.label)

    def close(self) -> None:
        """Stop the worker processes (also done when the pool is garbage collected)."""
        if isinstance(self.backend, ShardPool):
            self.backend.close()
        self.backend = None
