"""A Ray cluster of real processes on this machine, for the tests and the cluster benchmark.

Each node is a ``ray start --block`` of this venv in a session of its own, on its own
loopback address (the head 127.0.0.2, the next nodes .3, .4, ...: Ray replaces 127.0.0.1 by
the machine's network address, these it keeps) and on free ports, its files in a temporary
folder. Killing a node SIGKILLs every process of its session at once (its raylet, workers and
the `srpo` processes they started): a power cut, as far as the cluster can tell. Without Ray
installed the tests that need it skip; under CI=true they fail, like the PostgreSQL ones.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 90.0
OBJECT_STORE_BYTES = 100 * 1024 * 1024
ENV = {
    **os.environ,
    "RAY_USAGE_STATS_ENABLED": "0",
    # The head declares a node dead after 3 failed checks 1 s apart (Ray's default: 5, 3 s
    # apart), so that a killed node, which refuses them at once, leaves the cluster within
    # seconds; a check may still take 3 s, so a node merely slowed by load stays.
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "3000",
    "RAY_health_check_failure_threshold": "3",
}
_ALIVE = """
import logging, sys, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
print("alive:", sum(1 for node in ray.nodes() if node["Alive"]), flush=True)
"""
ALIVE_PREFIX = "alive: "
"""Ray may print its own lines to stdout (at exit, too): the count is the line after this."""


def ray_missing() -> str | None:
    """Why a local Ray cluster cannot be started here (None: it can)."""
    if not os.access(RAY, os.X_OK):
        return f"Ray is not installed in this venv ({RAY} missing; pip install 'srpo[ray]')"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ports(*names: str) -> list[str]:
    return [f"--{name}={free_port()}" for name in names]


class LocalRayCluster:
    """A head node and ``workers`` worker nodes of ``cpus`` CPUs each, started together at
    construction; `add_node` adds more."""

    def __init__(self, cpus: int = 1, workers: int = 0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="srpo-ray-"))
        self.cpus = cpus
        self.port = free_port()
        self.nodes: dict[str, subprocess.Popen] = {}
        """Node address -> its `ray start --block` process (the leader of its session)."""
        self._next = 2
        try:  # the workers' `ray start` waits for the head's GCS
            started = [self._launch(head=True)] + [self._launch() for _ in range(workers)]
            for ip in started:
                self._wait_started(ip)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        """What `--address` takes: the head's HOST:PORT."""
        return f"127.0.0.2:{self.port}"

    def add_node(self) -> str:
        """A worker node; returns its address."""
        ip = self._launch()
        self._wait_started(ip)
        return ip

    def alive(self) -> int:
        """How many nodes the cluster counts as alive (a killed one until the head notices)."""
        proc = subprocess.run(
            [sys.executable, "-c", _ALIVE, self.address],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=START_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cannot count the nodes: {proc.stderr[-2000:]}")
        counts = [line for line in proc.stdout.splitlines() if line.startswith(ALIVE_PREFIX)]
        if not counts:
            raise RuntimeError(f"cannot count the nodes: no count in {proc.stdout[-2000:]!r}")
        return int(counts[-1].removeprefix(ALIVE_PREFIX))

    def workers(self) -> list[str]:
        """The live worker nodes (the head excluded)."""
        return [ip for ip, proc in self.nodes.items() if ip != "127.0.0.2" and proc.poll() is None]

    def session_of(self, pid: int) -> str | None:
        """The node whose session holds process ``pid`` (None: none, or it is gone)."""
        try:
            sid = os.getsid(pid)
        except ProcessLookupError:
            return None
        return next((ip for ip, proc in self.nodes.items() if proc.pid == sid), None)

    def kill_node(self, ip: str) -> None:
        """SIGKILL every process of the node at once."""
        proc = self.nodes.pop(ip)
        for pid in _session(proc.pid):
            _signal(pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """SIGKILL every process of every node (nothing of a test cluster is worth a
        graceful stop), then remove the folder."""
        for ip in list(self.nodes):
            self.kill_node(ip)
        shutil.rmtree(self.root, ignore_errors=True)

    def _launch(self, *, head: bool = False) -> str:
        ip = f"127.0.0.{self._next}"
        self._next += 1
        log = self.root / f"node-{ip}.log"
        command = [str(RAY), "start", "--block", f"--node-ip-address={ip}"]
        command += [f"--num-cpus={self.cpus}", f"--object-store-memory={OBJECT_STORE_BYTES}"]
        command += ["--disable-usage-stats", f"--temp-dir={self.root / f'n{self._next - 1}'}"]
        command += _ports(
            "node-manager-port",
            "object-manager-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
        )
        if head:
            command += ["--head", f"--port={self.port}", "--include-dashboard=false"]
            command += _ports("ray-client-server-port")
        else:
            command += [f"--address={self.address}"]
        with open(log, "w") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=ENV,
                start_new_session=True,
                cwd=self.root,
            )
        self.nodes[ip] = proc
        return ip

    def _wait_started(self, ip: str) -> None:
        log, proc = self.root / f"node-{ip}.log", self.nodes[ip]
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {ip} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)


def _session(sid: int) -> list[int]:
    """The processes of session ``sid`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            pids.append(int(entry.name))
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
