"""The training loop: budget, metrics, evaluation, checkpoints, resume.

A checkpoint holds every trained policy's weights plus the algorithm's optimiser, RNG and
env state, so a resumed run ends with exactly the weights of an uninterrupted one (CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from srpo_core import checkpoints
from srpo_core.agents.load import load_seat
from srpo_core.algos import algorithm_class
from srpo_core.algos.base import Algorithm, Iteration, prefixed, sub_seed
from srpo_core.config import Config, build_config
from srpo_core.envs import make_env
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.zoo import partner_seats, refuse_held_out

FLUSH_SECONDS = 30.0
"""Metric rows and progress reach the registry at least this often, between checkpoints."""


@dataclass(frozen=True)
class Progress:
    run_id: str
    env_steps: int
    hero_samples: int
    budget: int
    """The budget in the unit of ``Config.algo.budget``."""
    done: int
    """Progress in that unit."""
    sps: float
    eval_return: float | None


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    status: str
    env_steps: int
    hero_samples: int
    metrics: dict[str, float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but torch sees no CUDA device")
    return torch.device(name)


def build_algorithm(config: Config, registry: Registry | None) -> Algorithm:
    """The algorithm with its env factory; seats the env config freezes (e.g. a Tag
    runner) are loaded from the registry and play along without learning. Without a
    registry only scripted policies can be seated (benchmarks)."""
    device = resolve_device(config.run.device)
    torch.set_num_threads(config.run.threads)
    env_config = config.env

    def factory(num_envs: int, seed: int):
        return make_env(env_config, num_envs, device, seed)

    fixed = {}
    frozen = env_config.frozen_seats() if hasattr(env_config, "frozen_seats") else {}
    if frozen:
        probe = factory(1, 0)
        for seat, ref in frozen.items():
            if registry is not None:
                refuse_held_out(registry, ref, f"the frozen {seat} of a training run")
            index = probe.agents.index(seat)
            fixed[index] = load_seat(
                registry,
                ref,
                env_config=env_config,
                seat=seat,
                obs_dim=probe.obs_dims[index],
                device=device,
            )
    members = None
    if config.train.partners.startswith("zoo:"):
        if registry is None:
            raise UserError("train.partners=zoo:NAME needs a registry")
        members = partner_seats(
            registry, config.train.partners[4:], env_config, factory(1, 0), device
        )
    return algorithm_class(config)(config, factory, device, fixed, members)


class Trainable(Protocol):
    """What the run loop drives: an RL `Algorithm`, or the LLM debate trainer."""

    device: torch.device

    def iterate(self) -> Iteration: ...

    def set_learning_rate(self, lr: float) -> None: ...

    def evaluate(self, episodes: int, seed: int, final: bool = False) -> dict[str, float]: ...

    def policy_states(self) -> dict[str, dict[str, torch.Tensor]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None: ...


def build_trainable(config: Config, registry: Registry) -> tuple[Trainable, dict[str, dict]]:
    """The trainer of ``config`` and the spec of each policy it publishes. Models, data and
    frozen seats are loaded here, so bad input fails before a run row exists."""
    if config.env.name == "debate":  # LLM debate has its own trainer, not a BatchedEnv
        from srpo_core.debate.run import build_trainer, policy_specs

        return build_trainer(config), policy_specs(config)
    algo = build_algorithm(config, registry)
    learning = [a for i, a in enumerate(algo.agents) if i not in algo.fixed]
    specs = {}
    for role, net in algo.policies().items():
        # The seats it can fill in cross-play: its own, or every learning seat when one
        # policy is shared across seats (role "shared").
        seats = [role] if role in algo.agents else learning
        specs[role] = {"net": net.spec.to_dict(), "env_config": asdict(config.env), "seats": seats}
    return algo, specs


def iteration_size(config: Config) -> int:
    """What one iteration adds to the budget counter (``config.algo.budget``): the run
    trains whole iterations, so its budget ``run.steps`` is rounded up to a multiple of
    this. Hero samples: ``ppo.num_envs * ppo.num_steps`` (debate: ``env.batch_size``).
    Env steps: the same, times the heroes for SRPO, which plays one rollout per hero (MLP
    policies not shared; the trained seats are the env's agents minus its frozen seats)."""
    if config.env.name == "debate":
        samples = config.env.batch_size
        rollouts = 2 if config.algo.name == "srpo" else 1
    else:
        samples = config.ppo.num_envs * config.ppo.num_steps
        separate = not (config.algo.share_policy or config.net.recurrent)
        rollouts = 1
        if config.algo.name == "srpo" and separate and config.algo.budget == "env_steps":
            rollouts = _trained_seats(config)
    return samples if config.algo.budget == "hero_samples" else samples * rollouts


def _trained_seats(config: Config) -> int:
    frozen = config.env.frozen_seats() if hasattr(config.env, "frozen_seats") else {}
    probe = make_env(config.env, 1, torch.device("cpu"), 0)
    try:
        return len(probe.agents) - len(frozen)
    finally:
        if hasattr(probe, "close"):
            probe.close()


def budget_notice(config: Config) -> str | None:
    """One line when ``run.steps`` is not a whole number of iterations (so the run trains
    more than its budget says); None when it is."""
    size = iteration_size(config)
    budget = config.run.steps
    if budget % size == 0:
        return None
    unit = "env steps" if config.algo.budget == "env_steps" else "hero samples"
    trains = -(-budget // size) * size
    return (
        f"note: the budget of {budget:,} {unit} is rounded up to whole iterations of "
        f"{size:,}: the run trains {trains:,}"
    )


def notices(config: Config) -> list[str]:
    """Lines to show before a new run of ``config`` starts: what it does that its flags do
    not say (a rounded-up budget, a default the env chose). Computing them changes nothing."""
    lines = []
    if hasattr(config.env, "notice"):
        lines.append(config.env.notice())
    lines.append(budget_notice(config))
    return [line for line in lines if line]


def train(
    config: Config,
    registry: Registry,
    *,
    command: str = "",
    tags: Sequence[str] = (),
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Start a new run of ``config`` in ``registry`` and train it to its budget."""
    trainable, specs = build_trainable(config, registry)
    config.run.device = str(trainable.device)
    run_id = registry.create_run(
        env=config.env.name,
        algo=config.algo.name,
        tau=config.algo.tau,
        eps=config.algo.eps,
        seed=config.run.seed,
        config=config.to_dict(),
        tags=list(tags),
        command=command,
    )
    for role, spec in specs.items():
        registry.register_policy(
            run_id=run_id, role=role, env=config.env.name, kind="trained", spec=spec
        )
    counters = {"env_steps": 0, "hero_samples": 0, "iterations": 0}
    return _loop(run_id, config, trainable, registry, counters, on_progress)


def resume(
    run_id: str,
    registry: Registry,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Continue an interrupted run from its latest checkpoint (from scratch if it has none);
    metric rows logged after that checkpoint are dropped and logged again. A checkpoint
    that does not fit the run's trainer is refused (UserError) before anything is stored."""
    run = registry.get_run(run_id)
    if run.status == "finished":
        raise UserError(f"run {run.id} already finished; nothing to resume")
    config = build_config(run.config)
    trainable, _ = build_trainable(config, registry)
    latest = registry.latest_checkpoint(run.id)
    counters = {"env_steps": 0, "hero_samples": 0, "iterations": 0}
    if latest is not None:
        # Checked and loaded before the run's rows change: a checkpoint that does not fit
        # is refused with one line and leaves the run as it was.
        state = checkpoints.from_bytes(registry.read_checkpoint(latest))
        label = f"checkpoint of run {run.id} at step {latest.step}"
        counters = checkpoints.load_resume_state(trainable, state, label)
    registry.delete_metrics_after(run.id, latest.step if latest else -1)
    registry.set_status(run.id, "running")
    return _loop(run.id, config, trainable, registry, counters, on_progress)


def _loop(
    run_id: str,
    config: Config,
    trainable: Trainable,
    registry: Registry,
    counters: dict[str, int],
    on_progress: Callable[[Progress], None] | None,
) -> TrainResult:
    run = config.run
    budget_key = config.algo.budget
    next_checkpoint = (
        (counters["env_steps"] // run.checkpoint_every + 1) * run.checkpoint_every
        if run.checkpoint_every
        else None
    )
    pending: list[tuple[int, dict[str, float]]] = []
    metrics: dict[str, float] = {}
    eval_return = None
    window_start, window_steps = time.perf_counter(), counters["env_steps"]

    registry.acquire_lease(run_id)  # refused while another process trains this run
    last_flush = time.monotonic()
    # Every flush renews the lease, so it happens at least once per heartbeat interval.
    flush_every = min(FLUSH_SECONDS, registry.heartbeat_s)

    def flush() -> None:
        nonlocal last_flush
        registry.log_metrics(run_id, pending)
        pending.clear()
        registry.update_progress(
            run_id, env_steps=counters["env_steps"], hero_samples=counters["hero_samples"]
        )
        last_flush = time.monotonic()

    def save() -> None:
        policies = trainable.policy_states()
        payload = checkpoints.to_bytes(policies, trainable.state_dict(), counters)
        # Metric rows first: a stored checkpoint implies its rows are stored too.
        registry.retrying(flush)
        registry.retrying(lambda: registry.save_checkpoint(run_id, counters["env_steps"], payload))

    def end(status: str, error: str) -> None:
        """Best effort: if the registry itself failed, or another process took the run over
        (its lease check refuses), the status stays as it is."""
        try:
            registry.set_status(run_id, status, error=error)
        except UserError:
            pass

    def report(sps: float) -> None:
        if on_progress:
            on_progress(
                Progress(
                    run_id=run_id,
                    env_steps=counters["env_steps"],
                    hero_samples=counters["hero_samples"],
                    budget=run.steps,
                    done=counters[budget_key],
                    sps=sps,
                    eval_return=eval_return,
                )
            )

    try:
        report(0.0)  # where the run starts (or resumes), before its first iteration
        while counters[budget_key] < run.steps:
            if config.ppo.anneal_lr:
                trainable.set_learning_rate(config.ppo.lr * (1 - counters[budget_key] / run.steps))
            it = trainable.iterate()
            counters["env_steps"] += it.env_steps
            counters["hero_samples"] += it.hero_samples
            counters["iterations"] += 1
            finished = counters[budget_key] >= run.steps
            if counters["iterations"] % run.log_every == 0 or finished:
                now = time.perf_counter()
                sps = (counters["env_steps"] - window_steps) / max(now - window_start, 1e-9)
                window_start, window_steps = now, counters["env_steps"]
                metrics = dict(it.metrics)
                metrics["hero_samples"] = counters["hero_samples"]
                metrics["perf/sps"] = sps
                if run.eval_episodes:
                    seed = sub_seed(run.seed, f"eval/{counters['env_steps']}")
                    scores = trainable.evaluate(run.eval_episodes, seed, final=finished)
                    metrics |= prefixed("eval/", scores)
                    eval_return = metrics.get("eval/return")
                pending.append((counters["env_steps"], metrics))
                report(sps)
            if finished or (next_checkpoint and counters["env_steps"] >= next_checkpoint):
                save()
                while next_checkpoint and next_checkpoint <= counters["env_steps"]:
                    next_checkpoint += run.checkpoint_every
            elif time.monotonic() - last_flush > flush_every:
                # Visible progress and a heartbeat; rows after the last checkpoint redo on
                # resume.
                registry.retrying(flush)
        registry.retrying(lambda: registry.set_status(run_id, "finished"))
    except KeyboardInterrupt:
        end("interrupted", "interrupted by the user or a signal")
        raise
    except UserError as exc:
        end("failed", str(exc))
        raise
    except Exception as exc:
        end("failed", f"{type(exc).__name__}: {exc}")
        raise
    return TrainResult(
        run_id=run_id,
        status="finished",
        env_steps=counters["env_steps"],
        hero_samples=counters["hero_samples"],
        metrics=metrics,
    )
