"""Starting and resuming runs: their trainers (a population, of one for a solo run, or a
trainer of its own), their registry rows, their checkpoints loaded; the loop itself is
`learn.learn`.

A checkpoint holds every trained policy's weights plus the trainer's optimiser, RNG and
env state, so a resumed run ends with exactly the weights of an uninterrupted one (CPU).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Protocol

import torch

from srpo_core import checkpoints, live_logs
from srpo_core.algos.base import Iteration
from srpo_core.config import Config, build_config
from srpo_core.devices import resolve_device
from srpo_core.envs import ENVS, env_spec
from srpo_core.errors import UserError
from srpo_core.learn import Members, Progress, TrainResult, learn
from srpo_core.policy_loading import load_seat
from srpo_core.population.members import check_population
from srpo_core.population.recurrent import RecurrentPopulation
from srpo_core.population.trainer import Population
from srpo_core.registry import CheckpointInfo, Registry, RunInfo
from srpo_core.zoo.training import partner_seats, refuse_held_out

Trainer = Population | RecurrentPopulation
"""A population trainer: of feed-forward policies, or of recurrent ones (``net.recurrent``)."""

POPULATION_TAG = "population:"
"""Every member of a population carries the tag ``population:ID``."""


def load_frozen_seats(config: Config, registry: Registry | None, device: torch.device) -> dict:
    """The seats the env config freezes (e.g. a Tag runner), loaded by index; they play
    along without learning. Held-out zoo members are refused."""
    env_config = config.env
    refs = env_config.frozen_seats()
    if not refs:
        return {}
    game = env_spec(env_config)
    seats = {}
    for seat, ref in refs.items():
        if registry is not None:
            refuse_held_out(registry, ref, f"the frozen {seat} of a training run")
        index = game.agents.index(seat)
        seats[index] = load_seat(
            registry,
            ref,
            env_config=env_config,
            seat=seat,
            obs_dim=game.obs_dims[index],
            device=device,
        )
    return seats


class Trainable(Protocol):
    """What a trainer of its own (the LLM debate's) gives the run loop through `Solo`."""

    device: torch.device

    def iterate(self) -> Iteration: ...

    def set_learning_rate(self, lr: float) -> None: ...

    def evaluate(self, episodes: int, seed: int, final: bool = False) -> dict[str, float]: ...

    def policy_states(self) -> dict[str, dict[str, torch.Tensor]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None: ...


def has_own_trainer(config: Config) -> bool:
    """Runs the population trainers do not train: a family's own trainer (the LLM debate)."""
    return ENVS[config.env.name].trainer is not None


def build_trainable(config: Config) -> tuple[Trainable, dict[str, dict]]:
    """The trainer of its own of ``config`` (`has_own_trainer`) and the spec of each policy
    it publishes. Models and data are loaded here, so bad input fails before a run row
    exists."""
    live_logs.check_available(config)
    return ENVS[config.env.name].hook("trainer")(config)


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
    return len(env_spec(config.env).agents) - len(config.env.frozen_seats())


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
    return [line for line in (config.env.notice(), budget_notice(config)) if line]


def train(
    config: Config,
    registry: Registry,
    *,
    command: str = "",
    tags: Sequence[str] = (),
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Start a new run of ``config`` in ``registry`` and train it to its budget: a
    population of one, unless it has a trainer of its own (`has_own_trainer`)."""
    members: Members
    if has_own_trainer(config):
        trainable, specs = build_trainable(config)
        members = Solo(trainable, config)
    else:
        members = build_population([config], registry)
        specs = population_specs(members, config)
    config.run.device = str(members.device)
    run_id = _create_run(registry, config, specs, command, tags)
    counters = {"env_steps": 0, "hero_samples": 0, "iterations": 0}
    return learn([run_id], [config], members, registry, counters, on_progress)[0]


def train_population(
    configs: list[Config],
    registry: Registry,
    *,
    command: str = "",
    tags: Sequence[str] = (),
    member_tags: Sequence[Sequence[str]] = (),
    on_progress: Callable[[Progress], None] | None = None,
) -> list[TrainResult]:
    """Train ``configs`` (runs of one shape, `population.members`) as one population: each
    member an ordinary run, tagged ``population:ID`` (and ``member_tags[k]``, when given),
    trained in one batched computation."""
    population = build_population(configs, registry)
    population_id = uuid.uuid4().hex[:12]
    tags = [*tags, f"{POPULATION_TAG}{population_id}"]
    run_ids = []
    for k, config in enumerate(configs):
        config.run.device = str(population.device)
        specs = population_specs(population, config)
        own = member_tags[k] if member_tags else ()
        run_ids.append(_create_run(registry, config, specs, command, [*tags, *own]))
    counters = {"env_steps": 0, "hero_samples": 0, "iterations": 0}
    return learn(run_ids, configs, population, registry, counters, on_progress)


def _create_run(
    registry: Registry, config: Config, specs: dict, command: str, tags: Sequence[str]
) -> str:
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
    return run_id


def build_population(configs: list[Config], registry: Registry | None = None) -> Trainer:
    """The population of ``configs`` (`population.members` checks they can be one), with
    the frozen seats their env config names; of recurrent learners for ``net.recurrent``,
    with a zoo's members as their co-players for ``train.partners=zoo:NAME`` (each member
    its own copies)."""
    config = configs[0]
    check_population(configs)
    live_logs.check_available(config)
    device = resolve_device(config.run.device)
    torch.set_num_threads(config.run.threads)
    frozen = load_frozen_seats(config, registry, device)
    if not config.net.recurrent:
        return Population(configs, device, frozen)
    partners, pool = config.train.partners, None
    if partners.startswith("zoo:"):
        if registry is None:
            raise UserError("train.partners=zoo:NAME needs a registry")
        game = env_spec(config.env)
        pool = [partner_seats(registry, partners[4:], config.env, game, device) for _ in configs]
    return RecurrentPopulation(configs, device, frozen, pool)


def population_specs(population: Trainer, config: Config) -> dict[str, dict]:
    """The spec of each policy a member publishes (as `build_trainable` gives a solo run's:
    a shared policy fits every trained seat)."""
    trained = [a for i, a in enumerate(population.agents) if i not in population.frozen]
    return {
        role: {
            "net": learner.net.spec.to_dict(),
            "env_config": asdict(config.env),
            "seats": [role] if role in population.agents else trained,
        }
        for role, learner in population.roles().items()
    }


def population_runs(registry: Registry, ref: str) -> list[RunInfo]:
    """The members of the population ``ref`` names (a member run, or the population id),
    in the order they were created; [] when ``ref`` is a run outside any population."""
    try:
        run = registry.get_run(ref)
    except UserError as missing:
        runs = registry.list_runs(tags=[f"{POPULATION_TAG}{ref}"])
        if not runs:
            raise missing from None
    else:
        tag = next((t for t in run.tags if t.startswith(POPULATION_TAG)), None)
        if tag is None:
            return []
        runs = registry.list_runs(tags=[tag])
    return sorted(runs, key=lambda r: (r.created_at, r.id))


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
    if not has_own_trainer(config):
        return resume_population([run], registry, on_progress=on_progress)[0]
    trainable, _ = build_trainable(config)
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
    return learn([run.id], [config], Solo(trainable, config), registry, counters, on_progress)[0]


def common_checkpoints(registry: Registry, runs: list[RunInfo]) -> list[CheckpointInfo]:
    """Each run's checkpoint at the latest step at which every run has one ([] if there is
    no such step): where a population resumes."""
    by_run = [{c.step: c for c in registry.checkpoints(run.id)} for run in runs]
    steps = set.intersection(*(set(found) for found in by_run))
    return [found[max(steps)] for found in by_run] if steps else []


def resume_population(
    runs: list[RunInfo],
    registry: Registry,
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[TrainResult]:
    """Continue an interrupted population (`population_runs`; a solo run is a population
    of one) from the latest step at which every member has a checkpoint (from scratch if
    there is none), bit for bit. A checkpoint that does not fit is refused (UserError)
    before anything is stored."""
    if all(run.status == "finished" for run in runs):
        what = f"population of run {runs[0].id}" if len(runs) > 1 else f"run {runs[0].id}"
        raise UserError(f"{what} already finished; nothing to resume")
    configs = [build_config(run.config) for run in runs]
    population = build_population(configs, registry)
    latest = common_checkpoints(registry, runs)
    step = latest[0].step if latest else None
    counters = {"env_steps": 0, "hero_samples": 0, "iterations": 0}
    if latest:
        expected = zip(population.policy_states(), population.state_dict(), strict=True)
        states = []
        for run, info, (policies, state) in zip(runs, latest, expected, strict=True):
            saved = checkpoints.from_bytes(registry.read_checkpoint(info))
            label = f"checkpoint of run {run.id} at step {step}"
            checkpoints.check_resume_state(saved, MemberView(policies, state), label)
            states.append(saved)
        label = f"checkpoint of run {runs[0].id} at step {step}"
        checkpoints.load_members_state(population, states, label)
        counters = states[0]["counters"]
    for run in runs:
        registry.delete_metrics_after(run.id, -1 if step is None else step)
        registry.set_status(run.id, "running")
    run_ids = [run.id for run in runs]
    return learn(run_ids, configs, population, registry, counters, on_progress)


class Solo:
    """One run's `Trainable` as a population of one."""

    def __init__(self, trainable: Trainable, config: Config) -> None:
        self.trainable = trainable
        self.config = config
        self.device = trainable.device

    def iterate(self) -> list[Iteration]:
        return [self.trainable.iterate()]

    def set_lr_fraction(self, fraction: float) -> None:
        self.trainable.set_learning_rate(self.config.ppo.lr * fraction)

    def evaluate(self, episodes: int, seeds: list[int], final: bool = False) -> list[dict]:
        return [self.trainable.evaluate(episodes, seeds[0], final)]

    def policy_states(self) -> list[dict[str, dict[str, torch.Tensor]]]:
        return [self.trainable.policy_states()]

    def state_dict(self) -> list[dict[str, Any]]:
        return [self.trainable.state_dict()]

    def close(self) -> None:
        """Its trainer holds no worker processes."""


class MemberView:
    """One member's part of a fresh population (its policies and state), as
    `checkpoints.check_resume_state` reads a trainer."""

    def __init__(self, policies: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]):
        self.policies, self.state = policies, state

    def policy_states(self) -> dict[str, dict[str, torch.Tensor]]:
        return self.policies

    def state_dict(self) -> dict[str, Any]:
        return self.state
