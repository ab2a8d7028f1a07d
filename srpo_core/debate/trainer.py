"""IPPO and SRPO for two debating LLM agents (srpo-notes sections 3 and 5).

Rewards. c[r, p] is 1 when position p's answer in round r is right. The team outcome of a
round is the mean of the two (env.team_reward = "mean") or 1 only when both are right
("both"). Round-level shaping: every non-final round pays env.round_shaping times its team
outcome, the final round pays its team outcome; both positions get the same rewards (a
team game), and a turn's return is the reward-to-go over rounds, discounted by ppo.gamma.

IPPO: agent 0 and agent 1 debate; each learns from its own turns with that return.
SRPO: hero i debates with adversary i, a LoRA adapter on the partner's base model that
starts as a copy of the partner (algo.adversary_init). The hero learns as in IPPO; the
adversary learns from the negated return and stays near the *current* partner policy
through a per-token KL (exact over the vocabulary, direction algo.kl_direction) of weight
1/tau: as a reward penalty (env.kl_placement = "reward", the authors' LLM code: token t
of round r is charged the KL of its remaining tokens and of the later rounds' turns) or
as a loss term ("loss"). Adversaries learn first, so their KL targets are the partners
that played.

Advantage (env.advantage): "baseline" subtracts the batch mean of the turn's return per
role and round; "value" subtracts a linear value head on the prompt's last hidden state
(detached: the critic never moves the adapter), fitted to the same returns. Every token
of a turn gets its turn's advantage (plus, for the adversary with the reward-placed KL,
its own KL-to-go). Then PPO-clip over the generated tokens, ppo.epochs x ppo.minibatches
(over problems), the token mean over each minibatch, entropy bonus algo.eps for heroes
(and adversaries with algo.adversary_entropy = "eps"). One Adam optimiser per adapter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch

from srpo_core.algos.base import Iteration
from srpo_core.algos.ppo import clipped_surrogate, explained_variance
from srpo_core.config import Config
from srpo_core.debate.data import Problem, generate_problems, load_gsm8k
from srpo_core.debate.evaluate import evaluate_pair
from srpo_core.debate.generation import (
    Generation,
    last_prompt_hidden,
    response_logits,
    token_entropy,
    token_kl,
    token_logprobs,
)
from srpo_core.debate.models import Debater, LoraSpec, Roster
from srpo_core.debate.rollout import Debate, Turn, play_debate
from srpo_core.errors import UserError
from srpo_core.seeding import make_generator, sub_seed

AGENTS = ("agent0", "agent1")
ADVERSARIES = ("adversary0", "adversary1")


def team_outcomes(correct: torch.Tensor, how: str) -> torch.Tensor:
    """(rounds, 2, B) correctness -> (rounds, B) team outcome per round."""
    return correct.mean(1) if how == "mean" else correct.prod(1)


def shaped_rewards(team: torch.Tensor, shaping: float) -> torch.Tensor:
    """Non-final rounds pay ``shaping`` x their team outcome, the final round pays it in full."""
    weights = torch.full((team.shape[0], 1), shaping, dtype=team.dtype)
    weights[-1] = 1.0
    return weights * team


def returns_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """(rounds, ...) rewards -> discounted sum from each round on."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for r in reversed(range(rewards.shape[0])):
        running = rewards[r] + gamma * running
        out[r] = running
    return out


def kl_to_go(kl: list[torch.Tensor], masks: list[torch.Tensor], gamma: float):
    """Per-token KL charges (B, T) of each round: the KL of this and the remaining tokens
    of the turn, plus the discounted KL of the later rounds' turns."""
    totals = torch.stack([(k * m).sum(-1) for k, m in zip(kl, masks, strict=True)])  # (rounds, B)
    later = returns_to_go(totals, gamma) - totals
    return [
        (k * m).flip(-1).cumsum(-1).flip(-1) + later[r].unsqueeze(-1)
        for r, (k, m) in enumerate(zip(kl, masks, strict=True))
    ]


@dataclass
class Sample:
    """One role's turns in one batch of debates, with what PPO needs per round."""

    turns: list[Turn]
    advantages: list[torch.Tensor]
    """(B, T) per round."""
    targets: torch.Tensor
    """(rounds, B) value-head targets: each turn's return from its first token."""
    old_logp: list[torch.Tensor] = field(default_factory=list)
    partner: Debater | None = None
    """Adversaries with the loss-placed KL: the partner policy the KL points to."""
    kl_mean: float | None = None
    """Adversaries: mean per-token KL to the partner in the rollout."""


class DebateLearner:
    """One adapter, its optimiser and (env.advantage = "value") its value head."""

    def __init__(self, roster: Roster, seat: Debater, config: Config, entropy: float) -> None:
        self.seat = seat
        self.entropy = entropy
        params = roster.parameters(seat)
        self.value_head = None
        if config.env.advantage == "value":
            hidden = roster.bases[seat.base].hidden_size
            self.value_head = torch.nn.Linear(hidden, 1).to(roster.device)
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)
        self.params = params + (list(self.value_head.parameters()) if self.value_head else [])
        groups = [{"params": params, "lr": config.ppo.lr, "base_lr": config.ppo.lr}]
        if self.value_head is not None:
            lr = config.env.value_lr
            groups.append({"params": list(self.value_head.parameters()), "lr": lr, "base_lr": lr})
        self.optimizer = torch.optim.Adam(groups, eps=config.ppo.adam_eps)

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict()}
        if self.value_head is not None:
            state["value_head"] = self.value_head.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])


def load_problems(config: Config) -> tuple[list[Problem], list[Problem]]:
    """(training pool, evaluation problems): GSM8K train / the first run.eval_episodes of
    test, or two generated pools with seeds of their own."""
    env, seed = config.env, config.run.seed
    count = max(config.run.eval_episodes, 1)
    if env.uses_generated_data():
        train = generate_problems(
            env.generated_size, sub_seed(seed, "train-data"), env.generated_max
        )
        return train, generate_problems(count, sub_seed(seed, "eval-data"), env.generated_max)
    return load_gsm8k(env.data_dir, "train"), load_gsm8k(env.data_dir, "test")[:count]


class DebateTrainer:
    """IPPO (algo.name = ippo) or SRPO on debates; the roles' adapters live in a Roster."""

    def __init__(self, config: Config, device: torch.device) -> None:
        env, ppo, algo = config.env, config.ppo, config.algo
        if env.batch_size % ppo.minibatches:
            raise UserError(
                f"ppo.minibatches ({ppo.minibatches}) must divide env.batch_size ({env.batch_size})"
            )
        self.config = config
        self.device = device
        self.train_problems, self.eval_problems = load_problems(config)
        dirs = [env.model_dir, env.partner_model_dir or env.model_dir]
        self.roster = Roster(dirs, device=device, dtype=env.dtype)
        bases = [self.roster.base_of(d) for d in dirs]
        self.lora = LoraSpec(env.lora_rank, env.lora_alpha, tuple(env.lora_targets))
        seed = config.run.seed
        self.seats: dict[str, Debater] = {}
        for i, role in enumerate(AGENTS):
            self.seats[role] = self.roster.add_adapter(
                bases[i], role, self.lora, sub_seed(seed, f"lora/{role}")
            )
        self.srpo = algo.name == "srpo"
        if self.srpo:
            for i, role in enumerate(ADVERSARIES):
                partner = AGENTS[1 - i]  # the adversary replaces hero i's partner
                self.seats[role] = self.roster.add_adapter(
                    bases[1 - i], role, self.lora, sub_seed(seed, f"lora/{role}")
                )
                if algo.adversary_init == "partner":
                    state = self.roster.adapter_state(self.seats[partner])
                    self.roster.load_adapter_state(self.seats[role], state)
        adversary_entropy = algo.eps if algo.adversary_entropy == "eps" else 0.0
        self.learners = {
            role: DebateLearner(
                self.roster, seat, config, adversary_entropy if role in ADVERSARIES else algo.eps
            )
            for role, seat in self.seats.items()
        }
        self.sample_generator = make_generator(device, sub_seed(seed, "sample"))
        self.data_generator = make_generator(torch.device("cpu"), sub_seed(seed, "data"))

    # ---- what the run publishes -------------------------------------------------------

    def policy_states(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each agent's adapter weights: what checkpoints publish as partners."""
        return {role: self.roster.adapter_state(self.seats[role]) for role in AGENTS}

    def evaluate(self, episodes: int, seed: int, final: bool = False) -> dict[str, float]:
        """The two agents debating the evaluation problems (``run.eval_episodes`` of them,
        drawn at start-up), greedy. The ``final`` evaluation also pairs each agent with its
        partner's untuned base model: `agent0/untuned_partner/accuracy` (the agent's own)
        and `.../joint_accuracy`."""
        env = self.config.env
        agents = (self.seats["agent0"], self.seats["agent1"])

        def play(seats: tuple[Debater, Debater]):
            return evaluate_pair(
                self.roster,
                seats,
                self.eval_problems,
                rounds=env.rounds,
                max_new_tokens=env.max_new_tokens,
                seed=seed,
            )

        metrics = play(agents).metrics()
        if final:
            for i, role in enumerate(AGENTS):
                partner = Debater(agents[1 - i].base, None)
                result = play((agents[0], partner) if i == 0 else (partner, agents[1]))
                metrics[f"{role}/untuned_partner/accuracy"] = result.accuracy[i]
                metrics[f"{role}/untuned_partner/joint_accuracy"] = result.joint_accuracy
        return metrics

    def set_learning_rate(self, lr: float) -> None:
        """Scale every group (adapter at ppo.lr, value head at env.value_lr) by lr / ppo.lr."""
        for learner in self.learners.values():
            for group in learner.optimizer.param_groups:
                group["lr"] = group["base_lr"] * lr / self.config.ppo.lr

    # ---- one iteration ----------------------------------------------------------------

    def iterate(self) -> Iteration:
        env = self.config.env
        index = torch.randint(
            len(self.train_problems), (env.batch_size,), generator=self.data_generator
        )
        problems = [self.train_problems[int(i)] for i in index]
        metrics: dict[str, float] = {}
        samples: dict[str, Sample] = {}
        if self.srpo:
            for i, hero in enumerate(AGENTS):
                adversary = ADVERSARIES[i]
                seats = [self.seats[hero], self.seats[adversary]]
                if i == 1:
                    seats.reverse()
                debate = self._play(tuple(seats), problems)
                samples[hero] = self._hero_sample(debate, i, hero)
                samples[adversary] = self._adversary_sample(debate, 1 - i, adversary, hero)
                metrics |= _outcome_metrics(debate, hero, i, adversary)
            env_steps = 2 * env.batch_size
        else:
            debate = self._play((self.seats["agent0"], self.seats["agent1"]), problems)
            for i, role in enumerate(AGENTS):
                samples[role] = self._hero_sample(debate, i, role)
            metrics |= _outcome_metrics(debate, "agent0", 0, "agent1")
            env_steps = env.batch_size
        for role in (*ADVERSARIES, *AGENTS):  # adversaries first: their partners as played
            if role in samples:
                stats = self._update(self.learners[role], samples[role])
                metrics |= {f"{role}/{k}": v for k, v in stats.items()}
        return Iteration(metrics=metrics, env_steps=env_steps, hero_samples=env.batch_size)

    def _play(self, seats: tuple[Debater, Debater], problems: list[Problem]) -> Debate:
        env = self.config.env
        return play_debate(
            self.roster,
            seats,
            problems,
            rounds=env.rounds,
            max_new_tokens=env.max_new_tokens,
            generator=self.sample_generator,
            temperature=env.temperature,
        )

    def _team_returns(self, debate: Debate) -> torch.Tensor:
        env = self.config.env
        team = team_outcomes(debate.correct(), env.team_reward)
        return returns_to_go(shaped_rewards(team, env.round_shaping), self.config.ppo.gamma)

    @torch.no_grad()
    def _scores(self, learner: DebateLearner, turns: list[Turn], partner: Debater | None = None):
        """Per round: old log-probs (B, T); value predictions (rounds, B) or None; and, given
        a ``partner``, the KL (B, T) to it. Rows go through the model env.forward_batch at
        a time, so only that many rows of vocabulary-sized logits exist at once."""
        temperature = self.config.env.temperature
        logps, values, kls = [], [], []
        for turn in turns:
            parts: dict[str, list[torch.Tensor]] = defaultdict(list)
            for rows in self._chunks(turn.gen.response_ids.shape[0]):
                gen = _rows(turn.gen, rows)
                if partner is not None:  # first: activating it switches the shared base
                    partner_logits = self._logits(partner, gen)
                with self.roster.active(learner.seat) as (model, _):
                    logits = response_logits(model, gen)
                    parts["logp"].append(token_logprobs(logits, gen.response_ids, temperature))
                    if learner.value_head is not None:
                        hidden = last_prompt_hidden(model, gen)
                        parts["value"].append(learner.value_head(hidden).squeeze(-1).cpu())
                if partner is not None:
                    parts["kl"].append(self._kl(logits, partner_logits))
            logps.append(torch.cat(parts["logp"]))
            if parts["value"]:
                values.append(torch.cat(parts["value"]))
            if parts["kl"]:
                kls.append(torch.cat(parts["kl"]))
        return logps, (torch.stack(values) if values else None), kls

    def _chunks(self, size: int) -> list[torch.Tensor]:
        return list(torch.arange(size, device=self.device).split(self.config.env.forward_batch))

    @staticmethod
    def _advantages(turn_returns: torch.Tensor, values: torch.Tensor | None) -> torch.Tensor:
        """(rounds, B) turn advantages: return minus the batch mean or the value head."""
        if values is None:
            return turn_returns - turn_returns.mean(dim=1, keepdim=True)
        return turn_returns - values

    def _hero_sample(self, debate: Debate, position: int, role: str) -> Sample:
        turns = [pair[position] for pair in debate.turns]
        returns = self._team_returns(debate)
        logps, values, _ = self._scores(self.learners[role], turns)
        turn_adv = self._advantages(returns, values).to(self.device)
        advantages = [turn_adv[r].unsqueeze(-1) * t.gen.response_mask for r, t in enumerate(turns)]
        return Sample(turns, advantages, returns, logps)

    def _adversary_sample(self, debate: Debate, position: int, role: str, hero: str) -> Sample:
        """The adversary's turns, rewarded with the hero's negated return (and the KL)."""
        algo, env = self.config.algo, self.config.env
        partner = self.seats[AGENTS[1 - AGENTS.index(hero)]]
        turns = [pair[position] for pair in debate.turns]
        masks = [t.gen.response_mask for t in turns]
        weight = 1.0 / algo.tau
        base = -self._team_returns(debate)
        logps, values, kl = self._scores(self.learners[role], turns, partner)
        if env.kl_placement == "reward":
            charges = kl_to_go(kl, masks, self.config.ppo.gamma)
            # Token t's return is base - weight * charge_t; the turn's is taken at t = 0.
            starts = base - weight * torch.stack([c[:, 0].cpu() for c in charges])
            turn_adv = self._advantages(starts, values).to(self.device)
            advantages = [
                (turn_adv[r].unsqueeze(-1) + weight * (c[:, :1] - c)) * m
                for r, (c, m) in enumerate(zip(charges, masks, strict=True))
            ]
            sample = Sample(turns, advantages, starts, logps)
        else:
            turn_adv = self._advantages(base, values).to(self.device)
            advantages = [turn_adv[r].unsqueeze(-1) * m for r, m in enumerate(masks)]
            sample = Sample(turns, advantages, base, logps, partner=partner)
        tokens = max(float(sum(m.sum() for m in masks)), 1.0)
        sample.kl_mean = float(sum((k * m).sum() for k, m in zip(kl, masks, strict=True))) / tokens
        return sample

    @torch.no_grad()
    def _logits(self, seat: Debater, gen: Generation) -> torch.Tensor:
        with self.roster.active(seat) as (model, _):
            return response_logits(model, gen)

    def _kl(self, own_logits: torch.Tensor, partner_logits: torch.Tensor) -> torch.Tensor:
        """(B, T) KL in the direction of algo.kl_direction (adversary-partner = the paper's)."""
        temperature = self.config.env.temperature
        if self.config.algo.kl_direction == "adversary-partner":
            return token_kl(own_logits, partner_logits, temperature)
        return token_kl(partner_logits, own_logits, temperature)

    # ---- PPO on one adapter ------------------------------------------------------------

    def _update(self, learner: DebateLearner, sample: Sample) -> dict[str, float]:
        ppo, env = self.config.ppo, self.config.env
        advantages = sample.advantages
        if ppo.norm_adv:
            masks = [t.gen.response_mask for t in sample.turns]
            flat = torch.cat([a[m.bool()] for a, m in zip(advantages, masks, strict=True)])
            mean, std = flat.mean(), flat.std() + 1e-8  # advantage normalisation, over valid tokens
            advantages = [(a - mean) / std * m for a, m in zip(advantages, masks, strict=True)]
        stats: dict[str, list[float]] = defaultdict(list)
        batch = env.batch_size
        size = batch // ppo.minibatches
        for _ in range(ppo.epochs):
            order = torch.randperm(batch, generator=self.sample_generator, device=self.device)
            for start in range(0, batch, size):
                learner.optimizer.zero_grad(set_to_none=True)
                parts = self._accumulate(learner, sample, advantages, order[start : start + size])
                if ppo.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(learner.params, ppo.max_grad_norm)
                learner.optimizer.step()
                for k, v in parts.items():
                    stats[k].append(v)
        out = {k: sum(v) / len(v) for k, v in stats.items()}
        if sample.kl_mean is not None:
            out["kl_partner"] = sample.kl_mean
        return out

    def _accumulate(
        self, learner: DebateLearner, sample: Sample, advantages, rows
    ) -> dict[str, float]:
        """Gradients of one minibatch's loss, env.forward_batch rows of one round at a time:
        PPO-clip and entropy as means over the minibatch's generated tokens (each piece
        weighted by its share of them), the loss-placed KL likewise, the value loss as a
        mean over the minibatch's turns."""
        temperature, clip = self.config.env.temperature, self.config.ppo.clip
        gens = [_rows(turn.gen, rows) for turn in sample.turns]
        tokens = float(sum(g.response_mask.sum() for g in gens))
        turns = len(gens) * len(rows)
        sums: dict[str, float] = defaultdict(float)
        values, targets = [], []
        for r, round_gen in enumerate(gens):
            for chunk in self._chunks(len(rows)):
                gen, picked = _rows(round_gen, chunk), rows[chunk]
                mask = gen.response_mask.bool()
                share = float(mask.sum()) / tokens  # > 0: every reply has a first token
                if sample.partner is not None:  # first: activating it switches the base
                    partner_logits = self._logits(sample.partner, gen)
                with self.roster.active(learner.seat) as (model, _):
                    logits = response_logits(model, gen)
                    logp = token_logprobs(logits, gen.response_ids, temperature)[mask]
                    pg, diag = clipped_surrogate(
                        logp, sample.old_logp[r][picked][mask], advantages[r][picked][mask], clip
                    )
                    entropy = token_entropy(logits, temperature)[mask].mean()
                    loss = pg - learner.entropy * entropy
                    parts = {"policy_loss": pg.detach(), "entropy": entropy.detach(), **diag}
                    if sample.partner is not None:
                        kl = self._kl(logits, partner_logits)[mask].mean()
                        loss = loss + kl / self.config.algo.tau
                        parts["kl_loss"] = kl.detach()
                    if learner.value_head is not None:
                        with torch.no_grad():
                            hidden = last_prompt_hidden(model, gen)
                        value = learner.value_head(hidden).squeeze(-1)
                        target = sample.targets[r][picked.cpu()].to(self.device)
                        squares = 0.5 * ((value - target) ** 2).sum() / turns
                        loss = loss + self.config.ppo.vf_coef * squares / share
                        sums["value_loss"] += float(squares.detach())
                        values.append(value.detach())
                        targets.append(target)
                    (loss * share).backward()
                for k, v in parts.items():
                    sums[k] += float(v) * share
        if values:
            sums["explained_variance"] = explained_variance(torch.cat(values), torch.cat(targets))
        return dict(sums)

    # ---- checkpoints -------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "adapters": {r: self.roster.adapter_state(s) for r, s in self.seats.items()},
            "learners": {r: learner.state_dict() for r, learner in self.learners.items()},
            "sample_generator": self.sample_generator.get_state(),
            "data_generator": self.data_generator.get_state(),
        }

    def load_state_dict(self, policies: dict[str, dict], state: dict) -> None:
        """Restore a checkpoint; every adapter (``policies`` repeats the agents') is in
        ``state``."""
        for role, seat in self.seats.items():
            self.roster.load_adapter_state(seat, state["adapters"][role])
        for role, learner in self.learners.items():
            learner.load_state_dict(state["learners"][role])
        self.sample_generator.set_state(state["sample_generator"])
        self.data_generator.set_state(state["data_generator"])


def _rows(gen: Generation, rows: torch.Tensor) -> Generation:
    texts = [gen.texts[int(i)] for i in rows]
    return Generation(
        gen.prompt_ids[rows],
        gen.prompt_mask[rows],
        gen.response_ids[rows],
        gen.response_mask[rows],
        texts,
    )


def _outcome_metrics(debate: Debate, first: str, position: int, second: str) -> dict[str, float]:
    """Training accuracy of each seat in the final round and per round, plus joint accuracy."""
    correct = debate.correct()  # (rounds, 2, B)
    roles = {position: first, 1 - position: second}
    out = {f"{roles[p]}/accuracy": float(correct[-1, p].mean()) for p in (0, 1)}
    for r in range(correct.shape[0]):
        for p in (0, 1):
            out[f"{roles[p]}/accuracy_round{r + 1}"] = float(correct[r, p].mean())
    out[f"{first}/joint_accuracy"] = float(correct[-1].prod(0).mean())
    return out
