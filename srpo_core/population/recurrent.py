"""Independent recurrent learners (A2C, or PPO) against a pool of co-players, for K
members at once (``net.recurrent`` > 0; a solo run is a population of one).

The same frame as `trainer.Population` (per-member generators, coefficients, Adams and
checkpoints; one env batch of K x n envs) with the recurrent pieces swapped in: the GRU
policies stacked (`StackedRecurrentNet`), a rollout of sequences (`sequences.play`), and
an update over whole env columns, never cuts in time (`sequence_update`). A2C is PPO with
one epoch and one minibatch: at ratio 1 the clipped surrogate's gradient is the policy
gradient A * grad log pi. The co-players of ``train.partners`` (the IPD's tabular agents
or a zoo's members) are `srpo_core.envs.ipd.partners.PartnerPool`, each member's slice
drawn from its own generator.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSpec
from srpo_core.agents.seat import Seat
from srpo_core.algos.base import Iteration, prefixed
from srpo_core.algos.ppo import gae
from srpo_core.config import Config
from srpo_core.distributions import Categorical
from srpo_core.envs.base import Discrete
from srpo_core.envs.ipd.memory_one import PROBES
from srpo_core.envs.ipd.partners import KIND_WEIGHTS, PartnerPool
from srpo_core.errors import UserError
from srpo_core.population import member_state, terms, updates
from srpo_core.population.frame import PopulationFrame
from srpo_core.population.members import Coefficients
from srpo_core.population.optim import MemberAdam
from srpo_core.population.sequences import Memory, Sequences, by_member, play, play_metrics
from srpo_core.population.stacked_recurrent import StackedRecurrentNet
from srpo_core.population.terms import Stats
from srpo_core.population.updates import Role
from srpo_core.rollout import MemberGenerators, Runner
from srpo_core.seeding import make_generator, sub_seed
from srpo_core.side_by_side import SideBySide


class RecurrentPopulation(PopulationFrame):
    """K recurrent runs of one shape (`members.check_population`) trained together."""

    def __init__(
        self,
        configs: list[Config],
        device: torch.device,
        frozen: dict[int, Seat] | None = None,
        pool_members: list[list[list[Seat]]] | None = None,
    ) -> None:
        """``pool_members``: per member, per seat, its own copies of the zoo members it
        may meet (``train.partners=zoo:NAME``)."""
        super().__init__(configs, device)
        if frozen:
            raise UserError("recurrent learners do not play with frozen seats yet")
        self.frozen: dict[int, Seat] = {}
        base, game = self.config, self.game
        self.identity = bool(base.env.identity)  # recurrent learners train on the IPD only
        partners = base.train.partners
        if partners.startswith("zoo:") and pool_members is None:
            raise UserError(f"train.partners={partners} needs the zoo's members (a registry)")
        if self.identity and pool_members is not None:
            raise UserError("env.identity describes tabular co-players; zoo members have none")
        init = [make_generator(torch.device("cpu"), sub_seed(s, "init")) for s in self.seeds]
        self.init_generators = init
        self.heroes = {
            i: self._role(game.obs_dims[i], space) for i, space in enumerate(game.action_spaces)
        }
        self.generator = MemberGenerators(
            [make_generator(device, sub_seed(s, "sample")) for s in self.seeds]
        )
        self.update_generators = {
            i: [make_generator(device, sub_seed(s, f"update/{self.agents[i]}")) for s in self.seeds]
            for i in self.heroes
        }
        self.side_by_side = SideBySide(base.run.parallel_updates, base.run.threads)
        num_envs = base.ppo.num_envs
        self.runner = Runner(self.env_batch(num_envs, [sub_seed(s, "env0") for s in self.seeds]))
        self.pool = PartnerPool(
            KIND_WEIGHTS[partners.split(":", 1)[0]],
            num_envs * self.members,
            device,
            [make_generator(device, sub_seed(s, "partners")) for s in self.seeds],
            members=pool_members,
        )
        self.memory = Memory.fresh(self.nets(), num_envs, device)

    def _role(self, obs_dim: int, space: Any) -> Role:
        """One seat's learner in every member, each network initialised from its member's
        init generator (seat after seat), with an Adam of each member's coefficients."""
        if not isinstance(space, Discrete):
            raise UserError("recurrent policies need discrete actions")
        net = self.config.net
        spec = RecurrentSpec(obs_dim, space.n, net.recurrent, net.embed)
        nets = []
        for generator in self.init_generators:
            model = RecurrentActorCritic(spec)
            model.reset_parameters(generator)
            nets.append(model.to(self.device))
        stacked = StackedRecurrentNet(nets)
        coef = self.coef
        rates = [coef.critic_lr if n.startswith("critic_") else coef.lr for n in stacked.names]
        optimizer = MemberAdam(stacked.parameters(), rates, coef.adam_eps, coef.max_grad_norm)
        return Role(stacked, optimizer)

    def nets(self) -> list[StackedRecurrentNet]:
        return [self.heroes[i].net for i in range(len(self.agents))]

    # --- training --------------------------------------------------------------------

    def roles(self) -> dict[str, Role]:
        """Each trained role by the name its policy is published under."""
        return {self.agents[i]: role for i, role in self.heroes.items()}

    def iterate(self) -> list[Iteration]:
        config, ppo = self.config, self.config.ppo
        seqs = play(
            self.runner,
            self.nets(),
            self.pool,
            self.memory,
            ppo.num_steps,
            self.generator,
            self.identity,
        )
        stats = prefixed("train/", play_metrics(seqs, self.members, self.pool.label))
        jobs = [
            functools.partial(
                sequence_update,
                self.heroes[i],
                seqs[i],
                config,
                self.coef,
                self.update_generators[i],
            )
            for i in self.heroes
        ]
        for i, update in zip(self.heroes, self.side_by_side.run(jobs), strict=True):
            stats |= prefixed(f"{self.agents[i]}/", update)
        samples = ppo.num_envs * ppo.num_steps
        return [
            Iteration(metrics, env_steps=samples, hero_samples=samples)
            for metrics in terms.per_member_metrics(stats)
        ]

    # --- evaluation ------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, episodes: int, seeds: list[int], final: bool = False) -> list[dict]:
        """Per member, one episode per env of its learners together, and of each learner
        against each probe in `PROBES` (in the other seat), from its own evaluation seed;
        per-round figures (see docs/envs/ipd.md)."""
        rounds = int(self.config.env.rounds)
        rng = MemberGenerators(
            [make_generator(self.device, sub_seed(s, "eval-actions")) for s in seeds]
        )
        matchups: list[tuple[str, tuple[float, ...], torch.Tensor | None]] = [
            ("learners", (1.0, 0.0, 0.0), None)
        ]
        for name, params in PROBES.items():
            fixed = None if params is None else torch.tensor(params)
            for kind in (1, 2):
                weights = tuple(float(k == kind) for k in range(3))
                matchups.append((name, weights, fixed))
        out: Stats = {}
        sums: dict[str, list[torch.Tensor]] = {}
        for index, (name, weights, fixed) in enumerate(matchups):
            env = self.env_batch(
                episodes, [sub_seed(s, f"eval-env/{index}") for s in seeds], evaluation=True
            )
            generators = [
                make_generator(self.device, sub_seed(s, f"eval-pool/{index}")) for s in seeds
            ]
            pool = PartnerPool(weights, env.num_envs, self.device, generators, fixed)
            memory = Memory.fresh(self.nets(), episodes, self.device)
            seqs = play(Runner(env), self.nets(), pool, memory, rounds, rng, self.identity)
            for key, value in play_metrics(seqs, self.members).items():
                sums.setdefault(f"{name}/{key.split('/')[-1]}", []).append(value)
            if name == "learners":
                r0 = by_member(seqs[0].utility, self.members).sum(1) / episodes
                r1 = by_member(seqs[1].utility, self.members).sum(1) / episodes
                out["return"] = (r0 + r1) / 2
                # How unequally the learners split their payoffs: 0 when they cooperate or
                # defect alike, 3 when one always defects on an unconditional cooperator.
                gap = by_member(seqs[0].utility.sum(0, keepdim=True), self.members)
                gap = gap - by_member(seqs[1].utility.sum(0, keepdim=True), self.members)
                out["extortion"] = gap.abs().mean(1) / rounds
        # each key's mean over the matchups where a member played such steps (at most two)
        out |= {key: torch.stack(values).nanmean(0) for key, values in sums.items()}
        return terms.per_member_metrics(out)

    def close(self) -> None:
        """Its envs hold no worker processes."""

    # --- state -----------------------------------------------------------------------

    def state_dict(self) -> list[dict[str, Any]]:
        """Per member, its optimisers, generators, env slice, memory and partners."""
        return [
            {
                "optimizers": {
                    name: r.optimizer.member_state(k) for name, r in self.roles().items()
                },
                "generator": self.generator.generators[k].get_state(),
                "init_generator": self.init_generators[k].get_state(),
                "update_generators": {
                    i: g[k].get_state() for i, g in self.update_generators.items()
                },
                "runners": [member_state.member_runner_state(self.runner, k, self.members)],
                "memory": self.memory.member_state(k),
                "pool": self.pool.member_state(k),
            }
            for k in range(self.members)
        ]

    def load_state_dict(self, policies: list[dict], states: list[dict[str, Any]]) -> None:
        for k, (policy, state) in enumerate(zip(policies, states, strict=True)):
            for name, role in self.roles().items():
                role.net.load_member_state(k, policy[name])
                role.optimizer.load_member_state(k, state["optimizers"][name])
            self.generator.generators[k].set_state(state["generator"])
            self.init_generators[k].set_state(state["init_generator"])
            for i, generators in self.update_generators.items():
                generators[k].set_state(state["update_generators"][i])
        member_state.load_runner_states(self.runner, [s["runners"][0] for s in states])
        self.memory = Memory.joined([s["memory"] for s in states])
        self.pool.load_member_states([s["pool"] for s in states])


def sequence_update(
    role: Role, seq: Sequences, config: Config, coef: Coefficients, rngs: list[torch.Generator]
) -> Stats:
    """Per member: the clipped surrogate (A2C with one epoch and minibatch), value
    regression and entropy bonus (weight ``algo.eps``) over whole env columns, weighted to
    the steps the learner played; each member's column order from its own generator."""
    ppo, net, members = config.ppo, role.net, role.net.members
    steps, width = seq.utility.shape
    n = width // members
    per_env = functools.partial(torch.repeat_interleave, repeats=n)
    advantages, returns = gae(
        seq.utility * config.train.reward_scale,
        seq.values,
        seq.dones,
        seq.last_value,
        per_env(coef.gamma),
        per_env(coef.gae_lambda),
    )
    columns = torch.arange(members, device=seq.utility.device).unsqueeze(1)

    def grid(x: torch.Tensor) -> torch.Tensor:
        """[T, K * n, ...] -> [T, K, n, ...]."""
        return x.view(steps, members, n, *x.shape[2:])

    data = {
        "obs": grid(seq.obs),
        "prev_action": grid(seq.prev_action),
        "prev_reward": grid(seq.prev_reward),
        "starts": grid(seq.starts),
        "actions": grid(seq.actions),
        "logp": grid(seq.logp),
        "advantages": grid(advantages),
        "returns": grid(returns),
        "weight": grid(seq.learner.float()),
    }

    def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
        if isinstance(idx, slice):
            cols, hidden0 = data, seq.hidden0
        else:  # each member's own columns [K, m]
            cols = {key: value[:, columns, idx] for key, value in data.items()}
            hidden0 = seq.hidden0[columns, idx]
        logits, values = net.unroll(
            cols["obs"], cols["prev_action"], cols["prev_reward"], hidden0, cols["starts"]
        )
        dist = Categorical(logits)
        rows = functools.partial(_member_rows, members=members)
        weight = rows(cols["weight"])
        log_ratio = rows(dist.log_prob(cols["actions"]) - cols["logp"])
        ratio = log_ratio.exp()
        adv, clip = rows(cols["advantages"]), coef.clip.unsqueeze(1)
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
        pg_loss = -terms.mean_over(surrogate, weight)
        v_loss = 0.5 * terms.mean_over((rows(values) - rows(cols["returns"])) ** 2, weight)
        entropy = terms.mean_over(rows(dist.entropy()), weight)
        loss = pg_loss + coef.vf_coef * v_loss - coef.eps * entropy
        with torch.no_grad():
            approx_kl = terms.mean_over((ratio - 1) - log_ratio, weight)
        stats = {
            "policy_loss": pg_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": approx_kl,
        }
        return loss.sum(), stats

    stats = updates.optimise(role, n, loss_fn, ppo, rngs)
    learner = by_member(seq.learner, members).float()
    stats["explained_variance"] = terms.explained_variance(
        by_member(seq.values, members), by_member(returns, members), learner
    )
    return stats


def _member_rows(x: torch.Tensor, members: int) -> torch.Tensor:
    """[T, K, m] -> [K, T * m]: each member's rows together, as `terms` reduces them."""
    return x.movedim(1, 0).reshape(members, -1)
