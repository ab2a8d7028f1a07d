"""Ablation sweeps: a grid of runs (tau x eps x swept keys x seeds), resumable.

Every grid point is a complete `srpo train` command. Its identity is the hash of its
resolved config (``point:<hash>`` tag) and the sweep's identity the hash of all points
(``ablation:<id>`` tag), so running the same sweep command again finds its runs: finished
ones are skipped, interrupted or failed ones resume from their last checkpoint, missing ones
start. Jobs go to an `Executor`; `LocalExecutor` runs them as child processes,
`ray_executor.RayExecutor` as tasks on a Ray cluster, and `dispatch.Dispatcher` hands them
over, each checked against the registry just before it goes.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from srpo_core.canonical import canonical_json
from srpo_core.cluster import Resources, config_resources
from srpo_core.config import parse_set, resolve
from srpo_core.errors import UserError
from srpo_core.registry import Registry, RunInfo
from srpo_core.registry.artifacts import sha256_hex

ABLATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Point:
    """One run of the grid."""

    tau: float
    eps: float | None
    """None keeps the presets' eps."""
    overrides: tuple[tuple[str, str], ...]
    """Swept (section.key, value as typed) pairs."""
    seed: int
    key: str
    """Hash of the resolved config: the run's identity within any sweep."""
    resources: Resources = field(default=Resources(cpus=1.0, gpus=0.0), compare=False)
    """What its config asks of a cluster node (`cluster.config_resources`)."""

    @property
    def algo(self) -> str:
        return "ippo" if self.tau == 0 else "srpo"

    @property
    def setting(self) -> str:
        """The point without its seed, for tables."""
        parts = [self.algo, f"tau={self.tau:g}"]
        if self.eps is not None:
            parts.append(f"eps={self.eps:g}")
        parts += [f"{k}={v}" for k, v in self.overrides]
        return " ".join(parts)


@dataclass(frozen=True)
class Sweep:
    env: str
    presets: tuple[str, ...] = ()
    taus: tuple[float, ...] = (0.0,)
    epss: tuple[float | None, ...] = (None,)
    sweeps: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(section.key, values) swept on top of tau and eps."""
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None
    sets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    name: str | None = None
    """The ablation id chosen by the user; by default a hash of the grid."""
    points: tuple[Point, ...] = field(default=(), compare=False)

    @property
    def ablation_id(self) -> str:
        return self.name or sha256_hex(canonical_json([p.key for p in self.points]).encode())[:10]

    @property
    def tag(self) -> str:
        return f"ablation:{self.ablation_id}"

    def train_args(self, point: Point) -> list[str]:
        """The `srpo train` arguments of a point (also what its run records as command)."""
        args = [*self._setting_args(point), "--seed", str(point.seed)]
        for tag in (self.tag, f"point:{point.key}", *self.tags):
            args += ["--tag", tag]
        return args

    def population_args(self, points: Sequence[Point]) -> list[str]:
        """The `srpo train --seeds` arguments that train the points of one setting as one
        population, each member tagged with its own point."""
        seeds = ",".join(str(point.seed) for point in points)
        if len(points) == 1:  # a lone number would be a count
            seeds = f"{seeds}..{seeds}"
        args = [*self._setting_args(points[0]), "--seeds", seeds]
        for tag in (self.tag, *self.tags):
            args += ["--tag", tag]
        for point in points:
            args += ["--member-tag", f"point:{point.key}"]
        return args

    def _setting_args(self, point: Point) -> list[str]:
        args = ["train", "--env", self.env]
        for preset in self.presets:
            args += ["--preset", preset]
        args += ["--algo", point.algo, "--tau", f"{point.tau:g}"]
        if point.eps is not None:
            args += ["--eps", f"{point.eps:g}"]
        if self.steps is not None:
            args += ["--steps", str(self.steps)]
        for pair in (*self.sets, *(f"{k}={v}" for k, v in point.overrides)):
            args += ["--set", pair]
        return args


def plan_sweep(
    env: str,
    *,
    presets: Sequence[str] = (),
    taus: Sequence[float] | None = None,
    epss: Sequence[float | None] = (None,),
    sweeps: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    steps: int | None = None,
    sets: Sequence[str] = (),
    tags: Sequence[str] = (),
    name: str | None = None,
) -> Sweep:
    """The grid, every point's config resolved and validated before anything runs;
    ``taus`` by default the one the presets (and ``sets``) give, 0 (IPPO) without them."""
    if taus is None:
        taus = (
            resolve(presets=list(presets), flags={"env": {"name": env}}, sets=list(sets)).algo.tau,
        )
    if name is not None and not ABLATION_NAME.fullmatch(name):
        raise UserError(f"invalid ablation name {name!r}: letters, digits, '_', '.', '-'")
    swept = tuple(_parse_sweep(text) for text in sweeps)
    if any(t < 0 for t in taus):
        raise UserError("tau values must be >= 0")
    if len(set(seeds)) != len(seeds):
        raise UserError("seeds must be distinct")
    points = []
    for tau, eps, values, seed in itertools.product(
        taus, epss, itertools.product(*(v for _, v in swept)), seeds
    ):
        overrides = tuple((k, v) for (k, _), v in zip(swept, values, strict=True))
        config = resolve(
            presets=list(presets),
            flags={
                "env": {"name": env},
                "algo": {"name": "ippo" if tau == 0 else "srpo", "tau": tau, "eps": eps},
                "run": {"seed": seed, "steps": steps},
            },
            sets=[*sets, *(f"{k}={v}" for k, v in overrides)],
        )
        key = sha256_hex(canonical_json(config.to_dict()).encode())[:12]
        needs = config_resources(config.run.device, config.run.threads)
        points.append(Point(float(tau), eps, overrides, seed, key, needs))
    if len({p.key for p in points}) != len(points):
        raise UserError("two grid points resolve to the same config (a swept key is overridden?)")
    return Sweep(
        env=env,
        presets=tuple(presets),
        taus=tuple(taus),
        epss=tuple(epss),
        sweeps=swept,
        seeds=tuple(seeds),
        steps=steps,
        sets=tuple(sets),
        tags=tuple(tags),
        name=name,
        points=tuple(points),
    )


def _parse_sweep(text: str) -> tuple[str, tuple[str, ...]]:
    key, sep, values = text.partition("=")
    if not sep or "." not in key or not values:
        raise UserError(f"--sweep expects section.key=v1,v2,..., got '{text}'")
    options = tuple(v.strip() for v in values.split(","))
    for value in options:
        parse_set([f"{key.strip()}={value}"])
    return key.strip(), options


# ---- state in the registry ----------------------------------------------------------------


def point_runs(registry: Registry, sweep: Sweep) -> dict[str, RunInfo]:
    """Point key -> its run (the newest, if a point was ever started twice)."""
    found: dict[str, RunInfo] = {}
    for run in reversed(registry.list_runs(env=sweep.env, tags=[sweep.tag])):
        for tag in run.tags:
            if tag.startswith("point:"):
                found[tag.removeprefix("point:")] = run
    return found


@dataclass(frozen=True)
class Job:
    points: tuple[Point, ...]
    """One point, or the points of one setting trained as a population."""
    args: tuple[str, ...]
    """`srpo` arguments: new runs, or `train --resume RUN` for unfinished ones."""
    resumes: str | None = None

    @property
    def label(self) -> str:
        seeds = ",".join(str(p.seed) for p in self.points)
        return f"{self.points[0].setting} seed{'s' if len(self.points) > 1 else ''} {seeds}"


def pending_jobs(
    registry: Registry,
    sweep: Sweep,
    population_size: int | None = None,
    points: Sequence[Point] | None = None,
) -> tuple[list[Job], list[Point]]:
    """(jobs to run, points already finished) of the sweep (or of some of its ``points``).
    With ``population_size`` the seeds of each setting train as populations of at most that
    many runs (one job each). An unfinished run resumes, a population's members all in one
    job."""
    runs = point_runs(registry, sweep)
    jobs, done = [], []
    new: dict[str, list[Point]] = {}
    unfinished: dict[str, tuple[str, list[Point]]] = {}
    """Population tag (or the run id of a solo run) -> (a run to resume, its points)."""
    for point in sweep.points if points is None else points:
        run = runs.get(point.key)
        if run is None:
            new.setdefault(point.setting if population_size else point.key, []).append(point)
        elif run.status == "finished":
            done.append(point)
        else:  # interrupted, failed, or left 'running' by a killed sweep
            group = next((t for t in run.tags if t.startswith("population:")), run.id)
            unfinished.setdefault(group, (run.id, []))[1].append(point)
    for run_id, points in unfinished.values():
        jobs.append(Job(tuple(points), ("train", "--resume", run_id, "--json"), resumes=run_id))
    for points in new.values():
        if population_size is None:
            jobs.append(Job((points[0],), (*sweep.train_args(points[0]), "--json")))
            continue
        for start in range(0, len(points), population_size):
            chunk = points[start : start + population_size]
            jobs.append(Job(tuple(chunk), (*sweep.population_args(chunk), "--json")))
    return jobs, done


# ---- executors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ended:
    """A job that ended: its `srpo` exit code and last error line."""

    job: Job
    code: int
    error: str
    lost: bool = False
    """Its process vanished with its machine (a cluster node died, or the task was lost):
    no exit code, and worth running again (the run resumes from its checkpoint)."""


class Executor(Protocol):
    """Where jobs run. A cluster engine implements the same three methods."""

    def submit(self, job: Job, registry_url: str) -> None: ...

    def finished(self) -> list[Ended]:
        """Jobs that ended since the last call."""
        ...

    def stop(self) -> None:
        """Interrupt every running job (each marks its run 'interrupted')."""
        ...

    @property
    def busy(self) -> int:
        """Jobs still running."""
        ...


class LocalExecutor:
    """Each job a child process of this one (at most ``workers`` at a time, the caller's
    job). Children get SIGTERM if this process dies, even by SIGKILL (Linux), so a killed
    sweep never leaves orphans training behind its back."""

    def __init__(self) -> None:
        self.running: list[tuple[Job, subprocess.Popen]] = []

    def submit(self, job: Job, registry_url: str) -> None:
        env = {**os.environ, "SRPO_REGISTRY": registry_url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "srpo_core.tethered", str(os.getpid()), *job.args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.running.append((job, proc))

    def finished(self) -> list[Ended]:
        ended = [(job, proc) for job, proc in self.running if proc.poll() is not None]
        self.running = [(job, proc) for job, proc in self.running if proc.poll() is None]
        out = []
        for job, proc in ended:
            err = proc.stderr.read() if proc.stderr else ""
            out.append(Ended(job, proc.returncode, last_line(err)))
        return out

    def stop(self) -> None:
        for _, proc in self.running:
            proc.send_signal(signal.SIGTERM)
        for _, proc in self.running:
            proc.wait()
        self.running = []

    @property
    def busy(self) -> int:
        return len(self.running)


def last_line(text: str) -> str:
    """The last non-blank line of a process's stderr (its error line)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def summary_row(registry: Registry, point: Point, run: RunInfo | None) -> dict[str, Any]:
    """What the live table and --json show for one point."""
    row: dict[str, Any] = {
        "setting": point.setting,
        "seed": point.seed,
        "run": run.id if run else None,
        "status": run.status if run else "pending",
        "env_steps": run.env_steps if run else 0,
        "sps": None,
        "return": None,
    }
    if run is not None:
        last = registry.final_metrics(run.id)
        row["sps"] = last.get("perf/sps")
        row["return"] = last.get("eval/return", last.get("train/return"))
    return row
