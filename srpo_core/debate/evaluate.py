"""Evaluate two debate policies together: joint accuracy and each one's accuracy.

A debate policy is a base model directory plus, optionally, a LoRA adapter's weights; a
trained one is registered as `RUN/agent0` or `RUN/agent1` (spec: base model and LoRA
shape; weights: the run's checkpoint). Without an adapter it is the untuned base model,
the paper's "untuned partner". For cross-play:

    a = load_debate_policy(registry, "RUN_A/agent0")
    b = load_debate_policy(registry, "RUN_B/agent1")      # or untuned(model_dir)
    result = evaluate_policies(a, b, held_out_problems("../shared/gsm8k", 200), seed=0)
    result.joint_accuracy, result.accuracy            # both right; (a's, b's)

Greedy decoding by default, so the result does not depend on the seed; with
``greedy=False`` the seed fixes the sampled texts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srpo_core.debate.data import Problem, generate_problems, load_gsm8k
from srpo_core.debate.models import Debater, LoraSpec, Roster
from srpo_core.debate.rollout import play_debate
from srpo_core.errors import UserError
from srpo_core.policy_loading import checkpoint_state
from srpo_core.registry import NotFoundError, PolicyInfo, Registry
from srpo_core.seeding import make_generator

POLICY_KIND = "debate-lora"
UNTUNED_KIND = "untuned"
"""Registry kind of an untuned base model registered as a partner (a zoo member)."""


@dataclass(frozen=True)
class DebatePolicy:
    model_dir: str
    adapter: dict[str, torch.Tensor] | None = None
    """LoRA weights keyed as peft's get_peft_model_state_dict; None = untuned base model."""
    lora: LoraSpec | None = None
    name: str = ""
    """A label for tables: the registry ref or `untuned:<dir>`."""


UNTUNED = "untuned:"


def untuned(model_dir: str) -> DebatePolicy:
    """The base model without any adapter."""
    return DebatePolicy(model_dir, name=f"{UNTUNED}{model_dir}")


def model_dir_sha256(model_dir: str | Path) -> str:
    """sha256 over a model directory: every file's relative path and contents, in order."""
    root = Path(model_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def register_untuned(registry: Registry, model_dir: str) -> str:
    """Register the untuned base model in ``model_dir`` as a debate partner (the paper's
    "untuned partner", e.g. a zoo member) with the sha256 of its files, checked again
    whenever it plays; returns its ref `untuned:debate/NAME-HASH8`."""
    path = Path(model_dir).resolve()
    if not path.is_dir():
        raise UserError(f"no model directory {model_dir}")
    sha = model_dir_sha256(path)
    return registry.register_policy(
        run_id=None,
        role=f"{path.name}-{sha[:8]}",
        env="debate",
        kind=UNTUNED_KIND,
        spec={"model_dir": str(path), "sha256": sha, "seat": "*"},
    )


def verify_untuned(info: PolicyInfo) -> str:
    """The model directory of a registered untuned policy, after checking that its files
    still hash to what was registered."""
    model_dir = info.spec["model_dir"]
    if not Path(model_dir).is_dir() or model_dir_sha256(model_dir) != info.spec["sha256"]:
        raise UserError(f"{info.id}: {model_dir} is gone or its files changed since it joined")
    return model_dir


def policy_from_ref(registry: Registry, ref: str, *, step: int | None = None) -> DebatePolicy:
    """`RUN/agentN` (optionally at ``step``), a registered untuned base model, or
    `untuned:MODEL_DIR` (any directory, unregistered)."""
    try:
        info = registry.get_policy(ref)
    except NotFoundError:
        if ref.startswith(UNTUNED):
            return untuned(ref.removeprefix(UNTUNED))
        raise
    if info.kind == UNTUNED_KIND:
        return DebatePolicy(verify_untuned(info), name=info.id)
    return load_debate_policy(registry, ref, step=step)


def load_debate_policy(registry: Registry, ref: str, *, step: int | None = None) -> DebatePolicy:
    """A trained debate agent (`RUN/agent0`) at its latest checkpoint, or at ``step``."""
    info = registry.get_policy(ref)
    if info.env != "debate" or info.spec.get("kind") != POLICY_KIND:
        raise UserError(f"policy {ref} is not a debate agent (env {info.env})")
    state = checkpoint_state(registry, info, step)
    return DebatePolicy(
        model_dir=info.spec["model_dir"],
        adapter=state["policies"][info.role],
        lora=LoraSpec.from_dict(info.spec["lora"]),
        name=info.id,
    )


def held_out_problems(
    data_dir: str, count: int, *, seed: int = 0, generated_max: int = 20
) -> list[Problem]:
    """The first ``count`` GSM8K test problems of ``data_dir``, or ``count`` generated ones
    (data_dir = "generated") drawn from ``seed``."""
    if data_dir == "generated":
        return generate_problems(count, seed, generated_max)
    return load_gsm8k(data_dir, "test")[:count]


@dataclass(frozen=True)
class PairResult:
    joint_accuracy: float
    """Share of problems both seats answer right in the final round."""
    accuracy: tuple[float, float]
    """Each seat's final-round accuracy."""
    accuracy_by_round: tuple[tuple[float, float], ...]
    problems: int
    final_texts: tuple[tuple[str, ...], tuple[str, ...]]
    """Each seat's final-round replies, in problem order (for inspection and caching)."""
    both_correct: tuple[float, ...]
    """Per problem: 1.0 when both seats' final answers are right."""

    def metrics(self) -> dict[str, float]:
        """Flat metric names; `return` is the joint accuracy (the headline number)."""
        out = {
            "return": self.joint_accuracy,
            "joint_accuracy": self.joint_accuracy,
            "agent0/accuracy": self.accuracy[0],
            "agent1/accuracy": self.accuracy[1],
        }
        for r, (a0, a1) in enumerate(self.accuracy_by_round):
            out[f"agent0/accuracy_round{r + 1}"] = a0
            out[f"agent1/accuracy_round{r + 1}"] = a1
        return out


def evaluate_pair(
    roster: Roster,
    seats: tuple[Debater, Debater],
    problems: list[Problem],
    *,
    rounds: int,
    max_new_tokens: int,
    seed: int = 0,
    greedy: bool = True,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> PairResult:
    """Debate every problem (in batches) between two seats of a loaded roster."""
    if not problems:
        raise UserError("no problems to evaluate on")
    generator = make_generator(roster.device, seed)
    parts, texts = [], ([], [])
    for start in range(0, len(problems), batch_size):
        debate = play_debate(
            roster,
            seats,
            problems[start : start + batch_size],
            rounds=rounds,
            max_new_tokens=max_new_tokens,
            generator=generator,
            temperature=temperature,
            greedy=greedy,
        )
        parts.append(debate.correct())
        for position in (0, 1):
            texts[position].extend(debate.turns[-1][position].gen.texts)
    correct = torch.cat(parts, dim=-1)  # (rounds, 2, N)
    by_round = tuple((float(c[0].mean()), float(c[1].mean())) for c in correct)
    return PairResult(
        joint_accuracy=float(correct[-1].prod(0).mean()),
        accuracy=by_round[-1],
        accuracy_by_round=by_round,
        problems=len(problems),
        final_texts=(tuple(texts[0]), tuple(texts[1])),
        both_correct=tuple(float(x) for x in correct[-1].prod(0)),
    )


def evaluate_policies(
    first: DebatePolicy,
    second: DebatePolicy,
    problems: list[Problem],
    *,
    rounds: int = 3,
    max_new_tokens: int = 256,
    seed: int = 0,
    greedy: bool = True,
    device: str = "cpu",
    dtype: str = "auto",
    batch_size: int = 64,
) -> PairResult:
    """Load both policies (a shared base model once) and let them debate: ``first`` in
    position 0, ``second`` in position 1."""
    roster = Roster([first.model_dir, second.model_dir], device=torch.device(device), dtype=dtype)
    seats = []
    for position, policy in enumerate((first, second)):
        base = roster.base_of(policy.model_dir)
        if policy.adapter is None:
            seats.append(Debater(base, None))
            continue
        if policy.lora is None:
            raise UserError(f"policy {policy.name} has adapter weights but no LoRA shape")
        seat = roster.add_adapter(base, f"seat{position}", policy.lora, seed=0)
        try:
            roster.load_adapter_state(seat, policy.adapter)
        except RuntimeError as exc:  # shapes differ: the adapter belongs to another model
            raise UserError(f"policy {policy.name} does not fit {policy.model_dir}") from exc
        seats.append(seat)
    return evaluate_pair(
        roster,
        (seats[0], seats[1]),
        problems,
        rounds=rounds,
        max_new_tokens=max_new_tokens,
        seed=seed,
        greedy=greedy,
        batch_size=batch_size,
    )


def play_debate_seating(
    registry: Registry,
    *,
    agent: str,
    agent_step: int | None = None,
    seat: str = "agent0",
    partner: str,
    partner_step: int | None = None,
    env_values: dict[str, Any],
    episodes: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """One cross-play seating of the debate env, in the shape of `crossplay.play_seating`:
    ``agent`` (a ref as `policy_from_ref` reads it) in ``seat`` (agent0 = first speaker),
    ``partner`` in the other, on ``episodes`` test problems of the run's data
    (``env_values`` = a debate run's stored env config). `agent/return` is the joint
    accuracy, `episode_returns` the per-problem both-right indicator."""
    if seat not in ("agent0", "agent1"):
        raise UserError(f"a debate seat is agent0 or agent1, not {seat}")
    policies = [
        policy_from_ref(registry, agent, step=agent_step),
        policy_from_ref(registry, partner, step=partner_step),
    ]
    if seat == "agent1":
        policies.reverse()
    problems = held_out_problems(
        env_values.get("data_dir", "generated"),
        episodes,
        seed=seed,
        generated_max=int(env_values.get("generated_max", 20)),
    )
    result = evaluate_policies(
        policies[0],
        policies[1],
        problems,
        rounds=int(env_values.get("rounds", 3)),
        max_new_tokens=int(env_values.get("max_new_tokens", 256)),
        seed=seed,
        device=device,
        dtype=str(env_values.get("dtype", "auto")),
    )
    position = 0 if seat == "agent0" else 1
    return {
        "agent/return": result.joint_accuracy,
        "joint_accuracy": result.joint_accuracy,
        "agent/accuracy": result.accuracy[position],
        "partner/accuracy": result.accuracy[1 - position],
        "episode_returns": list(result.both_correct),
        "device": device,
    }


def crossplay_seating(registry: Registry, seating: Any, setup: Any) -> dict[str, Any]:
    """`srpo crossplay`'s seating (agent in one seat, the partner in the other) played as a
    debate on ``setup.episodes`` held-out problems: the return is the joint accuracy."""
    ((_, partner),) = seating.partners
    metrics = play_debate_seating(
        registry,
        agent=seating.agent.ref,
        agent_step=seating.agent.step,
        seat=seating.seat,
        partner=partner.ref,
        partner_step=partner.step,
        env_values=setup.env_values,
        episodes=setup.episodes,
        seed=setup.seed,
        device=setup.device,
    )
    joint = metrics["joint_accuracy"]
    return {**metrics, "return": joint, "team_reward": joint}
