"""IPPO and SRPO for K members at once (a solo run is a population of one): one env batch,
one forward pass per step and seat, one batched update per learner role.

SRPO (srpo-notes section 3), per iteration, for each hero i:
1. roll out hero theta_i with adversary phi_i in every partner seat -> D_i;
2. hero advantages from its own critic on D_i;
3. hero:      maximise L_CLIP(theta_i; D_i) + eps * H(theta_i)                      (eq. 8)
   adversary: maximise -L_CLIP(hero advantages, phi_i's own ratio)
                       - (1/tau) * KL(phi_i || theta_-i) on the states of D_i        (eq. 9)
   with theta_-i the partner's *current* policy (evaluated before this iteration's
   updates), the KL exact from logits. Heroes never play each other during training.
IPPO (tau = 0) learns from one rollout of the heroes together. Frozen seats (a Tag runner)
play along in every rollout and never learn.

Policy sharing (``algo.share_policy``, the paper's Hanabi set-up) publishes one policy, the
role ``shared``, that fits every trained seat. IPPO: it plays every trained seat and learns
from all of them. SRPO: one hero and one adversary; each env draws the seat the hero plays,
the adversary plays the other trained seats and learns from its decisions, each weighted by
the hero's advantage at that step of that env, negated, with the KL taken to the shared
policy on the adversary's states. One rollout per iteration, so env steps and hero samples
coincide.

Every random number a member uses (init, env, sampling, minibatch order) comes from
generators seeded from its own seed, and its rows only meet its own weights, so its
numbers do not depend on who else is in the population. Per-member coefficients
(`members.PER_MEMBER`) are [K] tensors broadcast over its rows.

Turn-based envs (Hanabi): a seat's policy learns only from the steps where it acted and its
critic at its bootstrap steps (where it or, for a hero, one of its adversaries acted: the
adversaries need the hero's advantage there; `ppo.turn_gae`); an adversary learns from its
own turns. Members act at different steps, so the critic's means are weighted (0/1 weights
over a member's rows) and the policy terms run each member's own decisions through its own
slice of the stacked network (`updates.policy_terms`): no forward pass on the steps where
it did not act, and no shape that depends on the other members. A shared policy's rows
are, at each step and env, those of the seat that acted (`layout.turn_rows`), so it learns
from T * n rows per member, not S times as many mostly idle ones. With several
minibatches each is a random slice of all rows, so how many of them count varies from
minibatch to minibatch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.agents.seat import Seat
from srpo_core.algos.base import Iteration, prefixed
from srpo_core.algos.ppo import gae, turn_gae
from srpo_core.config import Config
from srpo_core.distributions import Categorical, Distribution
from srpo_core.envs.base import Discrete
from srpo_core.errors import UserError
from srpo_core.population import layout, member_state, terms, updates
from srpo_core.population.frame import PopulationFrame
from srpo_core.population.layout import Batch, decision_steps, pick, split_roles
from srpo_core.population.stacked import StackedNet, StackedSeat, to_members
from srpo_core.population.terms import Stats
from srpo_core.population.updates import Role
from srpo_core.rollout import MemberGenerators, Runner, collect, play_episodes
from srpo_core.seeding import make_generator, sub_seed
from srpo_core.side_by_side import SideBySide

SHARED = "shared"
"""The role of a policy shared by every trained seat (``algo.share_policy``)."""


@dataclass
class _Rollout:
    """Hero ``hero``'s SRPO rollout in member layout, ready to learn from."""

    hero: int
    stats: Stats
    batch: Batch
    adversaries: dict[int, Batch]
    targets: dict[int, Distribution]


class HeroOrAdversary:
    """A seat of shared SRPO's rollout: the hero in the envs where ``is_hero`` [K * n], the
    adversary elsewhere (where the seat does not act, the env ignores its action and the
    updates weigh it 0)."""

    def __init__(self, hero: Role, adversary: Role, is_hero: torch.Tensor) -> None:
        self.hero, self.adversary = StackedSeat(hero.net), StackedSeat(adversary.net)
        self.is_hero = is_hero

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        hero = self.hero.distribution(obs, mask)
        return pick(self.is_hero, hero, self.adversary.distribution(obs, mask))


class Population(PopulationFrame):
    """K runs of one shape (`members.check_population`) trained together."""

    def __init__(
        self, configs: list[Config], device: torch.device, frozen: dict[int, Seat] | None = None
    ) -> None:
        """``frozen``: seats that play along without learning (a Tag runner), by index;
        policies of any batch size, the same for every member."""
        super().__init__(configs, device)
        self.frozen = dict(frozen or {})
        base, game = self.config, self.game
        self.action_spaces = game.action_spaces
        self.obs_dims = game.obs_dims
        self.init_generators = [
            make_generator(torch.device("cpu"), sub_seed(s, "init")) for s in self.seeds
        ]
        seats = [i for i in range(len(self.agents)) if i not in self.frozen]
        self.srpo = base.algo.name == "srpo"
        shared = base.algo.share_policy
        if shared:
            self._check_shareable(seats)
        self.groups = {SHARED: seats} if shared else {self.agents[i]: [i] for i in seats}
        """Each learner role's name and the seats its hero plays."""
        firsts = [group[0] for group in self.groups.values()]
        hero_nets = {i: self._build(self._spec(i, critic=True)) for i in firsts}
        roles = {i: Role.of(nets, self.coef) for i, nets in hero_nets.items()}
        self.heroes = {i: roles[group[0]] for group in self.groups.values() for i in group}
        self.adversaries: dict[int, dict[int, Role]] = {}
        self.adversary: Role | None = None
        """Shared SRPO's one adversary (independent heroes have `adversaries`)."""
        if self.srpo and shared:
            self.adversary = self._adversary(seats[0], hero_nets[seats[0]])
        elif self.srpo:
            self.adversaries = {
                i: {j: self._adversary(j, hero_nets[j]) for j in seats if j != i} for i in seats
            }
        self.generator = MemberGenerators(
            [make_generator(device, sub_seed(s, "sample")) for s in self.seeds]
        )
        self.update_generators = {
            i: [make_generator(device, sub_seed(s, f"update/{self.agents[i]}")) for s in self.seeds]
            for i in firsts
        }
        """Per learner role (by its first seat), its update's and its adversaries' RNGs."""
        env_names = [f"env{i}" for i in self.adversaries] or ["env0"]  # independent SRPO: per hero
        self.runners = [
            Runner(self.env_batch(base.ppo.num_envs, [sub_seed(s, name) for s in self.seeds]))
            for name in env_names
        ]
        self.side_by_side = SideBySide(base.run.parallel_updates, base.run.threads)
        """Independent heroes (and SRPO's with their adversaries) update side by side."""

    # --- construction ----------------------------------------------------------------

    def _check_shareable(self, seats: list[int]) -> None:
        """One policy in every trained seat needs seats alike (as `SharedHeroes`); shared
        SRPO needs a second seat for its adversary."""
        first = (self.obs_dims[seats[0]], self.action_spaces[seats[0]])
        for i in seats:
            if (self.obs_dims[i], self.action_spaces[i]) != first:
                raise UserError(
                    "algo.share_policy needs the same observation size and action space in "
                    f"every trained seat ({self.agents[i]} differs from {self.agents[seats[0]]})"
                )
        if self.srpo and len(seats) < 2:
            raise UserError("shared SRPO needs at least two trained seats (hero and adversary)")

    def _spec(self, seat: int, *, critic: bool) -> NetSpec:
        net = self.config.net
        grid = self.game.grid(seat)
        if net.conv and grid is None:
            raise UserError(
                f"net.conv needs a grid observation, and {self.agents[seat]}'s in env "
                f"{self.config.env.name} is a flat vector (overcooked: --set env.obs='lossless')"
            )
        try:  # NetSpec checks what a torso needs (stored specs are checked the same way)
            return NetSpec(
                obs_dim=self.obs_dims[seat],
                action_space=self.action_spaces[seat],
                hidden=tuple(net.hidden),
                activation=net.activation,
                shared_trunk=net.shared_trunk,
                critic=critic,
                log_std_init=net.log_std_init,
                conv=tuple(net.conv),
                grid=grid if net.conv else None,
            )
        except ValueError as exc:
            raise UserError(f"net.conv: {exc}") from None

    def _build(self, spec: NetSpec) -> list[ActorCritic]:
        """One network per member, each initialised from its member's init generator."""
        nets = []
        for generator in self.init_generators:
            net = ActorCritic(spec)
            net.reset_parameters(generator, orthogonal=self.config.net.ortho_init)
            nets.append(net.to(self.device))
        return nets

    def _adversary(self, partner: int, partner_nets: list[ActorCritic]) -> Role:
        nets = self._build(self._spec(partner, critic=False))
        if self.config.algo.adversary_init == "partner":
            for net, source in zip(nets, partner_nets, strict=True):
                own = net.state_dict()
                net.load_state_dict({k: v for k, v in source.state_dict().items() if k in own})
        return Role.of(nets, self.coef)

    # --- training --------------------------------------------------------------------

    def roles(self) -> dict[str, Role]:
        """Each trained role by the name its policy is published under."""
        return {name: self.heroes[group[0]] for name, group in self.groups.items()}

    def learners(self) -> list[Role]:
        adversaries = [a for advs in self.adversaries.values() for a in advs.values()]
        if self.adversary is not None:
            adversaries.append(self.adversary)
        return [*self.roles().values(), *adversaries]

    def iterate(self) -> list[Iteration]:
        ppo = self.config.ppo
        if self.adversary is not None:
            stats = self._shared_srpo_rollout(self.runners[0])
        elif self.adversaries:
            rollouts = [  # every rollout and KL target before any hero updates (`SRPO`)
                self._srpo_rollout(i, runner)
                for i, runner in zip(self.adversaries, self.runners, strict=True)
            ]
            stats = {}
            jobs = [functools.partial(self._srpo_update, r) for r in rollouts]
            for out in self.side_by_side.run(jobs):  # disjoint roles and RNGs
                stats |= out
        else:
            stats = self._ippo_rollout(self.runners[0])
        samples = ppo.num_envs * ppo.num_steps
        env_steps = samples * len(self.runners)
        return [
            Iteration(metrics, env_steps=env_steps, hero_samples=samples)
            for metrics in terms.per_member_metrics(stats)
        ]

    def seats(self, replace: dict[int, Role] | None = None) -> list[Seat]:
        """Who sits where: heroes and frozen seats' policies, with ``replace`` (adversaries)
        overriding seats."""
        roles = {**self.heroes, **(replace or {})}
        chosen = {i: StackedSeat(role.net) for i, role in roles.items()}
        return [chosen.get(i, self.frozen.get(i)) for i in range(len(self.agents))]

    def _collect(self, runner: Runner, seats: list[Seat]):
        everyone = range(len(seats))  # behaviour terms are computed per member below
        return collect(runner, seats, self.config.ppo.num_steps, self.generator, everyone)

    def _ippo_rollout(self, runner: Runner) -> Stats:
        """Every hero learns from its seats' decisions in one rollout (a shared hero: all
        its seats'), the heroes side by side."""
        batches, episodes = self._collect(runner, self.seats())
        stats = self._episode_stats("train/", episodes, list(self.heroes))

        def update(name: str, group: list[int]) -> Stats:
            hero = self.heroes[group[0]]
            seats = [self._returns(hero.net, batches[i], runner.obs[i]) for i in group]
            batch = self._behaviour(hero.net, self._played(seats))
            rngs = self.update_generators[group[0]]
            out = updates.hero_update(hero, batch, self.config, self.coef, rngs)
            return prefixed(f"{name}/", out) | self._action_stats(group[0], batch, f"{name}/")

        jobs = [functools.partial(update, name, group) for name, group in self.groups.items()]
        for out in self.side_by_side.run(jobs):  # disjoint roles and RNGs
            stats |= out
        return stats

    def _played(self, seats: list[Batch]) -> Batch:
        """The rows one policy learns from, out of the seats it played ([T, K * n] each):
        turn-based, at each step and env the seat that acted (`layout.turn_rows`); else
        every seat's, side by side."""
        if len(seats) == 1:
            return seats[0]
        if "acting" in seats[0]:
            return layout.turn_rows(seats)
        return {key: layout.side_by_side([s[key] for s in seats], self.members) for key in seats[0]}

    def _srpo_rollout(self, i: int, runner: Runner) -> _Rollout:
        """Hero i's rollout with its adversaries in the partner seats, with the partners'
        current policies on the adversaries' states (the KL targets)."""
        adversaries = self.adversaries[i]
        batches, episodes = self._collect(runner, self.seats(adversaries))
        bootstrap = decision_steps([batches[j] for j in (i, *adversaries)])
        hero = self._returns(self.heroes[i].net, batches[i], runner.obs[i], bootstrap)
        advantages = {"advantages": hero["advantages"]}  # their decisions' credit
        played = {
            j: self._behaviour(a.net, batches[j] | advantages) for j, a in adversaries.items()
        }
        return _Rollout(
            hero=i,
            stats=self._episode_stats(f"{self.agents[i]}/vs_adversary/", episodes, [i]),
            batch=self._behaviour(self.heroes[i].net, hero),
            adversaries=played,
            targets={
                j: terms.partner_target(self.heroes[j].net, batch) for j, batch in played.items()
            },
        )

    def _srpo_update(self, rollout: _Rollout) -> Stats:
        """Hero i and its adversaries learn from its rollout (its update RNGs throughout)."""
        i, agent = rollout.hero, self.agents[rollout.hero]
        rngs = self.update_generators[i]
        hero, config, coef = self.heroes[i], self.config, self.coef
        hero_stats = updates.hero_update(hero, rollout.batch, config, coef, rngs)
        stats = rollout.stats | prefixed(f"{agent}/", hero_stats)
        stats |= self._action_stats(i, rollout.batch, f"{agent}/")
        solo = len(rollout.adversaries) == 1
        for j, batch in rollout.adversaries.items():
            prefix = f"{agent}/adversary/" + ("" if solo else f"{self.agents[j]}/")
            adversary = self.adversaries[i][j]
            stats |= prefixed(
                prefix,
                updates.adversary_update(
                    adversary, batch, rollout.targets[j], self.config, self.coef, rngs
                ),
            )
            stats |= self._action_stats(j, batch, prefix)
        return stats

    def _shared_srpo_rollout(self, runner: Runner) -> Stats:
        """Shared SRPO's iteration: each env draws the seat the hero plays (from its
        member's sample generator), the adversary plays the other trained seats and learns
        from its decisions, each weighted by the hero's advantage there, negated."""
        seats, device = list(self.heroes), self.device
        hero, adversary = self.heroes[seats[0]], self.adversary
        draw = torch.cat(  # [K * n]: the index in ``seats`` of the hero's seat in each env
            [
                torch.randint(len(seats), (self.config.ppo.num_envs,), generator=g, device=device)
                for g in self.generator.generators
            ]
        )
        hero_seat = torch.tensor(seats, device=device)[draw]
        players = [
            self.frozen[i] if i in self.frozen else HeroOrAdversary(hero, adversary, hero_seat == i)
            for i in range(len(self.agents))
        ]
        batches, episodes = self._collect(runner, players)
        stats = self._episode_stats(f"{SHARED}/vs_adversary/", episodes, seats)
        own = [batches[i] for i in seats]
        hero_rows, others, others_env = split_roles(own, draw)
        decisions = decision_steps(own)
        envs = torch.arange(draw.shape[0], device=device)
        last_obs = torch.stack([runner.obs[i] for i in seats], 1)[envs, draw]
        hero_rows = self._returns(hero.net, hero_rows, last_obs, decisions)
        if decisions is None:  # simultaneous moves: the other seats' rows, env by env
            others["advantages"] = hero_rows["advantages"][:, others_env]
        else:  # turn-based: at each step the seat that acted, where it was not the hero's
            others = layout.turn_rows(own)
            others["acting"] &= ~hero_rows["acting"]
            others["advantages"] = hero_rows["advantages"]
        hero_batch = self._behaviour(hero.net, hero_rows)
        adversary_batch = self._behaviour(adversary.net, others)
        target = terms.partner_target(hero.net, adversary_batch)  # before any update
        rngs = self.update_generators[seats[0]]
        hero_stats = updates.hero_update(hero, hero_batch, self.config, self.coef, rngs)
        stats |= prefixed(f"{SHARED}/", hero_stats)
        adv_stats = updates.adversary_update(
            adversary, adversary_batch, target, self.config, self.coef, rngs
        )
        stats |= prefixed(f"{SHARED}/adversary/", adv_stats)
        stats |= self._action_stats(seats[0], hero_batch, f"{SHARED}/")
        return stats

    @torch.no_grad()
    def _returns(
        self,
        net: StackedNet,
        batch: Batch,
        last_obs: torch.Tensor,
        bootstrap: torch.Tensor | None = None,
    ) -> Batch:
        """A seat's rollout [T, K * n] with its critic's values and its advantages and
        returns, per member's gamma/lambda. Turn-based: `turn_gae` with the critic
        bootstrapping (and learning: ``critic``) at the ``bootstrap`` steps (default: where
        the seat acted)."""
        members = self.members
        steps, width = batch["utility"].shape
        values = layout.env_layout(net.value(to_members(batch["obs"], members)), members, steps)
        last_value = net.value(to_members(last_obs, members)).reshape(-1)
        gamma = self.coef.gamma.repeat_interleave(width // members)
        lam = self.coef.gae_lambda.repeat_interleave(width // members)
        args = (batch["utility"], values, batch["dones"], last_value, gamma, lam)
        out = batch | {"values": values}
        if "acting" not in batch:
            out["advantages"], out["returns"] = gae(*args)
        else:
            out["critic"] = batch["acting"] if bootstrap is None else bootstrap
            out["advantages"], out["returns"] = turn_gae(*args, out["critic"])
        return out

    @torch.no_grad()
    def _behaviour(self, net: StackedNet, batch: Batch) -> Batch:
        """A policy's rows in member layout [K, T * n, ...], with the log-probs and the
        mean action probabilities (over its decisions) of the policy that acted."""
        members = self.members
        out = {
            key: layout.member_rows(value, members)
            if value.dim() == 2
            else to_members(value, members)
            for key, value in batch.items()
            if key not in ("utility", "dones")  # GAE is done: `_returns`
        }
        dist = net.distribution(out["obs"], out.get("mask"))
        out["logp"] = dist.log_prob(out["actions"])
        if isinstance(dist, Categorical):
            out["probs"] = terms.mean_over(dist.probs, terms.as_weights(out.get("acting")))
        return out

    def _episode_stats(self, prefix: str, episodes, team: list[int]) -> Stats:
        """Each member's episode summary, as [K] tensors (NaN where a member completed
        no episode: such keys are left out of its metrics)."""
        num_envs = self.config.ppo.num_envs * self.members
        summaries = [p.summary(self.agents, team) for p in episodes.split(self.members, num_envs)]
        keys = list(dict.fromkeys(k for s in summaries for k in s))
        nan = float("nan")
        return {
            f"{prefix}{key}": torch.tensor([s.get(key, nan) for s in summaries]) for key in keys
        }

    def _action_stats(self, seat: int, batch: dict[str, torch.Tensor], prefix: str) -> Stats:
        space = self.action_spaces[seat]
        if "probs" not in batch or not isinstance(space, Discrete) or space.n > 8:
            return {}
        labels = space.labels or tuple(str(a) for a in range(space.n))
        return {f"{prefix}p/{label}": batch["probs"][:, a] for a, label in enumerate(labels)}

    # --- evaluation ------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, episodes: int, seeds: list[int], final: bool = False) -> list[dict]:
        """Each member's heroes playing together, one episode per env, from each member's
        own evaluation seed (the training RNG is untouched)."""
        env_seeds = [sub_seed(s, "eval-env") for s in seeds]
        env = self.env_batch(episodes, env_seeds, evaluation=True)
        rng = MemberGenerators(
            [make_generator(self.device, sub_seed(s, "eval-actions")) for s in seeds]
        )
        try:
            played = play_episodes(env, self.seats(), rng)
        finally:
            env.close()
        team = list(self.heroes)
        return [p.summary(self.agents, team) for p in played.split(self.members, env.num_envs)]

    def close(self) -> None:
        """End the envs' worker processes, where they have any."""
        for runner in self.runners:
            runner.env.close()

    # --- state -----------------------------------------------------------------------

    def state_dict(self) -> list[dict[str, Any]]:
        """Per member, its optimisers, generators and env slices."""
        return [self._member_state(k) for k in range(self.members)]

    def _member_state(self, k: int) -> dict[str, Any]:
        state = {
            "optimizers": {name: r.optimizer.member_state(k) for name, r in self.roles().items()},
            "adversaries": {
                i: {j: member_state.role_state(a, k) for j, a in advs.items()}
                for i, advs in self.adversaries.items()
            },
            "generator": self.generator.generators[k].get_state(),
            "init_generator": self.init_generators[k].get_state(),
            "update_generators": {i: g[k].get_state() for i, g in self.update_generators.items()},
            "runners": [member_state.member_runner_state(r, k, self.members) for r in self.runners],
        }
        if self.adversary is not None:
            state["adversary"] = member_state.role_state(self.adversary, k)
        return state

    def load_state_dict(self, policies: list[dict], states: list[dict[str, Any]]) -> None:
        for k, (policy, state) in enumerate(zip(policies, states, strict=True)):
            for name, role in self.roles().items():
                role.net.load_member_state(k, policy[name])
                role.optimizer.load_member_state(k, state["optimizers"][name])
            for i, advs in self.adversaries.items():
                for j, adversary in advs.items():
                    member_state.load_role_state(adversary, k, state["adversaries"][i][j])
            if self.adversary is not None:
                member_state.load_role_state(self.adversary, k, state["adversary"])
            self.generator.generators[k].set_state(state["generator"])
            self.init_generators[k].set_state(state["init_generator"])
            for i, generators in self.update_generators.items():
                generators[k].set_state(state["update_generators"][i])
        for r, runner in enumerate(self.runners):
            member_state.load_runner_states(runner, [state["runners"][r] for state in states])
