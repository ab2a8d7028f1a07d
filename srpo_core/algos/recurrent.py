"""Independent recurrent learners (A2C, or PPO) against a pool of co-players.

Why a module of its own: the feed-forward trainer (`rollout.collect`, `population.updates`)
recomputes log-probs from single observations and shuffles single steps. A recurrent
policy needs its memory carried from step to step, zeroed at episode starts, and updates
over whole sequences. This module keeps its own rollout of sequences (the hidden state
at the rollout's first step is stored, so `RecurrentActorCritic.unroll` replays the acting
computation exactly; minibatches are sets of env columns, never cuts in time) and reuses
the PPO pieces (`gae`, `Learner`). A2C is PPO with one epoch and one minibatch: at ratio 1
the clipped surrogate's gradient is the policy gradient A * grad log pi.

The co-players of ``train.partners`` (the IPD's pool of tabular agents or zoo members) are
`srpo_core.agents.ipd_partners.PartnerPool`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from srpo_core.agents.ipd_partners import KIND_WEIGHTS, PartnerPool
from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSpec
from srpo_core.algos.base import Algorithm, Iteration, prefixed
from srpo_core.algos.ppo import Learner, explained_variance, gae
from srpo_core.distributions import Categorical
from srpo_core.envs.base import Discrete
from srpo_core.envs.ipd.env import IDENTITY, C
from srpo_core.envs.ipd.memory_one import PROBES
from srpo_core.errors import UserError
from srpo_core.rollout import Runner
from srpo_core.seeding import make_generator, sub_seed


@dataclass
class Memory:
    """What carries over between rollouts: per seat the GRU state, previous action and
    reward, and which envs' current observation opens an episode."""

    hidden: list[torch.Tensor]
    prev_action: list[torch.Tensor]
    prev_reward: list[torch.Tensor]
    starts: torch.Tensor

    @classmethod
    def fresh(cls, nets: list[RecurrentActorCritic], num_envs: int, device) -> Memory:
        return cls(
            hidden=[net.initial_state(num_envs, device) for net in nets],
            prev_action=[
                torch.full((num_envs,), net.no_action, dtype=torch.long, device=device)
                for net in nets
            ],
            prev_reward=[torch.zeros(num_envs, device=device) for _ in nets],
            starts=torch.ones(num_envs, dtype=torch.bool, device=device),
        )

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Sequences:
    """One seat's rollout, [T, B] unless noted."""

    obs: torch.Tensor
    """[T, B, obs_dim] as the learner saw it (identity filled in)."""
    prev_action: torch.Tensor
    prev_reward: torch.Tensor
    starts: torch.Tensor
    hidden0: torch.Tensor
    """[B, H]: the GRU state before step 0."""
    actions: torch.Tensor
    logp: torch.Tensor
    """The learner's log-prob of the action taken (also where a pool partner acted)."""
    values: torch.Tensor
    utility: torch.Tensor
    dones: torch.Tensor
    learner: torch.Tensor
    """bool: the learner played this seat (not a pool partner)."""
    partner_pooled: torch.Tensor
    """bool: a pool partner (tabular agent or zoo member) played the other seat."""
    partner_utility: torch.Tensor
    last_value: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    """[B]: V of the observation after the rollout."""


@torch.no_grad()
def play(
    runner: Runner,
    nets: list[RecurrentActorCritic],
    pool: PartnerPool,
    memory: Memory,
    num_steps: int,
    generator: torch.Generator,
    identity: bool,
) -> list[Sequences]:
    """Play ``num_steps`` steps, every seat's learner acting unless the pool puts a partner
    there; the learners' memories reset where an episode starts."""
    seats = range(len(nets))
    record: list[dict[str, list[torch.Tensor]]] = [{} for _ in seats]
    hidden0 = []
    for t in range(num_steps):
        starts = memory.starts
        if bool(starts.any()):
            pool.begin(starts)
        joint = []
        for i, net in enumerate(nets):
            memory.hidden[i] = memory.hidden[i] * ~starts.unsqueeze(-1)
            memory.prev_action[i] = memory.prev_action[i].masked_fill(starts, net.no_action)
            memory.prev_reward[i] = memory.prev_reward[i].masked_fill(starts, 0.0)
            if t == 0:
                hidden0.append(memory.hidden[i])
            obs = runner.obs[i]
            if identity:
                obs = obs.clone()
                obs[:, IDENTITY] = pool.identity(i)
            logits, value, hidden = net.step(
                obs, memory.prev_action[i], memory.prev_reward[i], memory.hidden[i]
            )
            dist = Categorical(logits)
            partnered = pool.partner_in(i)
            action = torch.where(partnered, pool.act(i, obs, generator), dist.sample(generator))
            for key, value_t in (
                ("obs", obs),
                ("prev_action", memory.prev_action[i]),
                ("prev_reward", memory.prev_reward[i]),
                ("starts", starts),
                ("actions", action),
                ("logp", dist.log_prob(action)),
                ("values", value),
                ("learner", ~partnered),
                ("partner_pooled", pool.partner_in(1 - i)),
            ):
                record[i].setdefault(key, []).append(value_t)
            memory.hidden[i] = hidden
            joint.append(action)
        step, _ = runner.step(joint)
        utility = step.reward - step.cost
        for i in seats:
            pool.observe(i, joint[i], step)
            memory.prev_action[i] = joint[i]
            memory.prev_reward[i] = utility[i]
            record[i].setdefault("utility", []).append(utility[i])
            record[i].setdefault("partner_utility", []).append(utility[1 - i])
            record[i].setdefault("dones", []).append(step.done)
        memory.starts = step.done
    out = []
    for i, net in enumerate(nets):
        seq = Sequences(hidden0=hidden0[i], **{k: torch.stack(v) for k, v in record[i].items()})
        starts = memory.starts
        obs = runner.obs[i]
        if identity:
            obs = obs.clone()
            obs[:, IDENTITY] = pool.identity(i)
        _, seq.last_value, _ = net.step(
            obs,
            memory.prev_action[i].masked_fill(starts, net.no_action),
            memory.prev_reward[i].masked_fill(starts, 0.0),
            memory.hidden[i] * ~starts.unsqueeze(-1),
        )
        out.append(seq)
    return out


def sequence_update(
    learner: Learner,
    seq: Sequences,
    ent_coef: float,
    reward_scale: float,
    generator: torch.Generator,
) -> dict[str, float]:
    """The clipped surrogate (A2C with one epoch and minibatch), value regression and
    entropy bonus over whole env columns, weighted to the steps the learner played."""
    ppo, net = learner.ppo, learner.net
    advantages, returns = gae(
        seq.utility * reward_scale, seq.values, seq.dones, seq.last_value, ppo.gamma, ppo.gae_lambda
    )
    weight = seq.learner.float()

    def loss_fn(cols: torch.Tensor | slice) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, values = net.unroll(
            seq.obs[:, cols],
            seq.prev_action[:, cols],
            seq.prev_reward[:, cols],
            seq.hidden0[cols],
            seq.starts[:, cols],
        )
        dist = Categorical(logits)
        w = weight[:, cols]
        count = w.sum().clamp_min(1.0)
        log_ratio = dist.log_prob(seq.actions[:, cols]) - seq.logp[:, cols]
        ratio = log_ratio.exp()
        adv = advantages[:, cols]
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - ppo.clip, 1 + ppo.clip) * adv)
        pg_loss = -(surrogate * w).sum() / count
        v_loss = 0.5 * (((values - returns[:, cols]) ** 2) * w).sum() / count
        entropy = (dist.entropy() * w).sum() / count
        loss = pg_loss + ppo.vf_coef * v_loss - ent_coef * entropy
        with torch.no_grad():
            approx_kl = ((((ratio - 1) - log_ratio) * w).sum() / count).detach()
        stats = {
            "policy_loss": pg_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": approx_kl,
        }
        return loss, stats

    metrics = learner.optimise(seq.obs.shape[1], loss_fn, generator)
    rows = seq.learner
    metrics["explained_variance"] = explained_variance(seq.values[rows], returns[rows])
    return metrics


def play_metrics(seqs: list[Sequences], partners: str = "tabular") -> dict[str, float]:
    """Per round, over the steps a learner played, against learners and against tabular
    agents: its cooperation rate, its payoff, and its advantage (its payoff minus the
    co-player's; > 0 means it takes more of the surplus than it leaves, as an extortioner
    does, Press & Dyson 2012)."""
    out: dict[str, float] = {}
    for name, against in (("learners", False), (partners, True)):
        coop, reward, advantage, count = 0.0, 0.0, 0.0, 0.0
        for seq in seqs:
            rows = seq.learner & (seq.partner_pooled == against)
            coop += float((seq.actions[rows] == C).float().sum())
            reward += float(seq.utility[rows].sum())
            advantage += float((seq.utility - seq.partner_utility)[rows].sum())
            count += float(rows.sum())
        if count:
            out[f"vs_{name}/cooperation"] = coop / count
            out[f"vs_{name}/reward"] = reward / count
            out[f"vs_{name}/advantage"] = advantage / count
    return out


class RecurrentIPPO(Algorithm):
    """Independent learners with GRU policies (``net.recurrent`` > 0), against the pool of
    ``train.partners``; A2C with ``ppo.epochs = ppo.minibatches = 1``."""

    name = "ippo"

    def make_heroes(self) -> dict[int, Learner]:
        if self.frozen:
            raise UserError("recurrent learners do not play with frozen seats yet")
        net = self.config.net
        heroes = {}
        for i, space in enumerate(self.action_spaces):
            if not isinstance(space, Discrete):
                raise UserError("recurrent policies need discrete actions")
            spec = RecurrentSpec(self.obs_dims[i], space.n, net.recurrent, net.embed)
            model = RecurrentActorCritic(spec)
            model.reset_parameters(self.init_generator)
            heroes[i] = Learner(model.to(self.device), self.config.ppo)
        return heroes

    def setup(self) -> None:
        config = self.config
        self.identity = bool(getattr(config.env, "identity", False))
        if self.identity and config.env.name != "ipd":
            raise UserError("co-player identities exist for env ipd only")
        num_envs = config.ppo.num_envs
        self.runner = Runner(self.make_env(num_envs, sub_seed(config.run.seed, "env0")))
        pool_rng = make_generator(self.device, sub_seed(config.run.seed, "partners"))
        partners = config.train.partners
        weights = KIND_WEIGHTS[partners.split(":", 1)[0]]
        if partners.startswith("zoo:") and self.pool_members is None:
            raise UserError(f"train.partners={partners} needs the zoo's members (a registry)")
        if self.identity and self.pool_members is not None:
            raise UserError("env.identity describes tabular co-players; zoo members have none")
        self.pool = PartnerPool(weights, num_envs, self.device, pool_rng, members=self.pool_members)
        self.memory = Memory.fresh(self.nets(), num_envs, self.device)

    def nets(self) -> list[RecurrentActorCritic]:
        return [self.heroes[i].net for i in range(len(self.agents))]

    def iterate(self) -> Iteration:
        config = self.config
        ppo = config.ppo
        seqs = play(
            self.runner,
            self.nets(),
            self.pool,
            self.memory,
            ppo.num_steps,
            self.generator,
            self.identity,
        )
        metrics = prefixed("train/", play_metrics(seqs, self.pool.label))
        eps, scale, rngs = config.algo.eps, config.train.reward_scale, self.update_generators
        updates = self.per_hero(
            lambda i: sequence_update(self.heroes[i], seqs[i], eps, scale, rngs[i])
        )
        for i, update in updates.items():
            metrics |= prefixed(f"{self.agents[i]}/", update)
        samples = ppo.num_envs * ppo.num_steps
        return Iteration(metrics, env_steps=samples, hero_samples=samples)

    def evaluate(self, episodes: int, seed: int, final: bool = False) -> dict[str, float]:
        """One episode per env of the learners together, and of each learner against each
        probe in `PROBES` (in the other seat); per-round figures (see docs/envs/ipd.md)."""
        rounds = int(self.config.env.rounds)
        gen = make_generator(self.device, sub_seed(seed, "eval-actions"))
        out: dict[str, float] = {}
        matchups: list[tuple[str, tuple[float, ...], torch.Tensor | None]] = [
            ("learners", (1.0, 0.0, 0.0), None)
        ]
        for name, params in PROBES.items():
            fixed = None if params is None else torch.tensor(params)
            for kind in (1, 2):
                weights = tuple(float(k == kind) for k in range(3))
                matchups.append((name, weights, fixed))
        sums: dict[str, list[float]] = {}
        for index, (name, weights, fixed) in enumerate(matchups):
            env = self.make_env(episodes, sub_seed(seed, f"eval-env/{index}"), evaluation=True)
            pool_rng = make_generator(self.device, sub_seed(seed, f"eval-pool/{index}"))
            pool = PartnerPool(weights, episodes, self.device, pool_rng, fixed)
            memory = Memory.fresh(self.nets(), episodes, self.device)
            seqs = play(Runner(env), self.nets(), pool, memory, rounds, gen, self.identity)
            for key, value in play_metrics(seqs).items():
                sums.setdefault(f"{name}/{key.split('/')[-1]}", []).append(value)
            if name == "learners":
                r0, r1 = seqs[0].utility.sum(0), seqs[1].utility.sum(0)
                out["return"] = float((r0 + r1).mean() / 2)
                # How unequally the learners split their payoffs: 0 when they cooperate or
                # defect alike, 3 when one always defects on an unconditional cooperator.
                out["extortion"] = float((r0 - r1).abs().mean() / rounds)
        out |= {key: sum(v) / len(v) for key, v in sums.items()}
        return out

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "runners": [self.runner.state_dict()],
            "memory": self.memory.state_dict(),
            "pool": self.pool.state_dict(),
        }

    def load_state_dict(self, policies: dict[str, dict], state: dict[str, Any]) -> None:
        super().load_state_dict(policies, state)
        self.runner.load_state_dict(state["runners"][0])
        self.memory = Memory(**state["memory"])
        self.pool.load_state_dict(state["pool"])
