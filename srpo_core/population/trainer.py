"""IPPO and SRPO for K members at once: one env batch, one forward pass per step and seat,
one batched update per learner role.

Each member is the run its config describes (srpo-notes section 3, as `algos.ippo` and
`algos.srpo` implement it for one run): independent feed-forward heroes, SRPO with one
adversary per hero and partner seat. Every random number a member uses (init, env,
sampling, minibatch order) comes from generators seeded from its own seed, and its rows
only meet its own weights, so its numbers do not depend on who else is in the population.
Per-member coefficients (`members.PER_MEMBER`) are [K] tensors broadcast over its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from srpo_core.agents.distributions import Categorical, DiagGaussian, Distribution
from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.algos.base import Iteration, make_generator, prefixed, sub_seed
from srpo_core.algos.ppo import gae
from srpo_core.config import Config
from srpo_core.envs import make_env
from srpo_core.envs.base import BatchedEnv, Discrete
from srpo_core.population.members import Coefficients, check_population
from srpo_core.population.optim import MemberAdam
from srpo_core.population.stacked import StackedNet, StackedSeat, to_members
from srpo_core.rollout import MemberGenerators, Runner, Seat, collect, play_episodes

Stats = dict[str, torch.Tensor]
"""Per-member statistics: name -> [K]."""


@dataclass
class Role:
    """One learner role of every member: their networks stacked, their Adams."""

    net: StackedNet
    optimizer: MemberAdam


class Population:
    """K runs of one shape (`members.check_population`) trained together."""

    def __init__(
        self, configs: list[Config], device: torch.device, fixed: dict[int, Seat] | None = None
    ) -> None:
        """``fixed``: seats that play along without learning (a Tag runner), by index;
        policies of any batch size, the same for every member."""
        check_population(configs)
        self.fixed = dict(fixed or {})
        self.configs = configs
        self.config = base = configs[0]
        self.device = device
        self.members = len(configs)
        self.coef = Coefficients.of(configs, device)
        self.seeds = [c.run.seed for c in configs]
        probe = make_env(base.env, 1, torch.device("cpu"), 0)
        self.agents = probe.agents
        self.action_spaces = probe.action_spaces
        self.obs_dims = probe.obs_dims
        self.init_generators = [
            make_generator(torch.device("cpu"), sub_seed(s, "init")) for s in self.seeds
        ]
        seats = [i for i in range(len(self.agents)) if i not in self.fixed]
        hero_nets = {i: self._build(self._spec(i, critic=True)) for i in seats}
        self.heroes = {i: self._role(nets) for i, nets in hero_nets.items()}
        self.srpo = base.algo.name == "srpo"
        self.adversaries: dict[int, dict[int, Role]] = {}
        if self.srpo:
            self.adversaries = {
                i: {j: self._adversary(j, hero_nets[j]) for j in seats if j != i} for i in seats
            }
        self.generator = MemberGenerators(
            [make_generator(device, sub_seed(s, "sample")) for s in self.seeds]
        )
        self.update_generators = {
            i: [make_generator(device, sub_seed(s, f"update/{self.agents[i]}")) for s in self.seeds]
            for i in seats
        }
        self.rollout_seats = seats if self.srpo else [None]
        """Per runner, the hero whose adversaries it plays with (SRPO), or None (IPPO)."""
        env_names = [f"env{i}" for i in seats] if self.srpo else ["env0"]
        self.runners = [Runner(self._env(base.ppo.num_envs, name)) for name in env_names]

    # --- construction ----------------------------------------------------------------

    def _spec(self, seat: int, *, critic: bool) -> NetSpec:
        net = self.config.net
        return NetSpec(
            obs_dim=self.obs_dims[seat],
            action_space=self.action_spaces[seat],
            hidden=tuple(net.hidden),
            activation=net.activation,
            shared_trunk=net.shared_trunk,
            critic=critic,
            log_std_init=net.log_std_init,
        )

    def _build(self, spec: NetSpec) -> list[ActorCritic]:
        """One network per member, each initialised from its member's init generator."""
        nets = []
        for generator in self.init_generators:
            net = ActorCritic(spec)
            net.reset_parameters(generator, orthogonal=self.config.net.ortho_init)
            nets.append(net)
        return nets

    def _adversary(self, partner: int, partner_nets: list[ActorCritic]) -> Role:
        nets = self._build(self._spec(partner, critic=False))
        if self.config.algo.adversary_init == "partner":
            for net, source in zip(nets, partner_nets, strict=True):
                own = net.state_dict()
                net.load_state_dict({k: v for k, v in source.state_dict().items() if k in own})
        return self._role(nets)

    def _role(self, nets: list[ActorCritic]) -> Role:
        net = StackedNet([n.to(self.device) for n in nets])
        coef = self.coef
        rates = [coef.critic_lr if name.startswith("critic_") else coef.lr for name in net.names]
        optimizer = MemberAdam(net.parameters(), rates, coef.adam_eps, coef.max_grad_norm)
        return Role(net, optimizer)

    def _env(self, num_envs: int, name: str) -> BatchedEnv:
        """One env batch of ``num_envs`` per member, each slice seeded from its member."""
        seeds = [sub_seed(s, name) for s in self.seeds]
        env = make_env(self.config.env, num_envs * self.members, self.device, seeds[0])
        env.split_generators(seeds)
        return env

    # --- training --------------------------------------------------------------------

    def roles(self) -> dict[str, Role]:
        return {self.agents[i]: role for i, role in self.heroes.items()}

    def learners(self) -> list[Role]:
        adversaries = [a for advs in self.adversaries.values() for a in advs.values()]
        return [*self.heroes.values(), *adversaries]

    def set_lr_fraction(self, fraction: float) -> None:
        for role in self.learners():
            role.optimizer.scale_lr(fraction)

    def iterate(self) -> list[Iteration]:
        ppo = self.config.ppo
        stats: Stats = {}
        for seat, runner in zip(self.rollout_seats, self.runners, strict=True):
            if seat is None:
                stats |= self._ippo_rollout(runner)
            else:
                stats |= self._srpo_rollout(seat, runner)
        samples = ppo.num_envs * ppo.num_steps
        env_steps = samples * len(self.runners)
        return [
            Iteration(metrics, env_steps=env_steps, hero_samples=samples)
            for metrics in self._per_member(stats)
        ]

    def _seats(self, replace: dict[int, Role]) -> list[Seat]:
        chosen = {i: StackedSeat(role.net) for i, role in {**self.heroes, **replace}.items()}
        return [chosen.get(i, self.fixed.get(i)) for i in range(len(self.agents))]

    def _collect(self, runner: Runner, seats: list[Seat]):
        everyone = range(len(seats))  # behaviour terms are computed per member below
        return collect(runner, seats, self.config.ppo.num_steps, self.generator, everyone)

    def _ippo_rollout(self, runner: Runner) -> Stats:
        batches, episodes = self._collect(runner, self._seats({}))
        stats = self._episode_stats("train/", episodes, list(self.heroes))
        for i, hero in self.heroes.items():
            batch = self._behaviour(hero.net, batches[i], runner.obs[i])
            hero_stats, _ = self._hero_update(hero, batch, self.update_generators[i])
            stats |= prefixed(f"{self.agents[i]}/", hero_stats)
            stats |= self._action_stats(i, batch, f"{self.agents[i]}/")
        return stats

    def _srpo_rollout(self, i: int, runner: Runner) -> Stats:
        adversaries = self.adversaries[i]
        batches, episodes = self._collect(runner, self._seats(adversaries))
        agent = self.agents[i]
        stats = self._episode_stats(f"{agent}/vs_adversary/", episodes, [i])
        hero = self._behaviour(self.heroes[i].net, batches[i], runner.obs[i])
        adv_batches, targets = {}, {}
        for j, adversary in adversaries.items():  # the partners' policies before any update
            adv_batches[j] = self._behaviour(adversary.net, batches[j], None)
            with torch.no_grad():
                targets[j] = _frozen(self.heroes[j].net.distribution(adv_batches[j]["obs"]))
        rngs = self.update_generators[i]
        hero_stats, advantages = self._hero_update(self.heroes[i], hero, rngs)
        stats |= prefixed(f"{agent}/", hero_stats)
        stats |= self._action_stats(i, hero, f"{agent}/")
        solo = len(adversaries) == 1
        for j, adversary in adversaries.items():
            prefix = f"{agent}/adversary/" + ("" if solo else f"{self.agents[j]}/")
            adv_stats = self._adversary_update(
                adversary, adv_batches[j], advantages, targets[j], rngs
            )
            stats |= prefixed(prefix, adv_stats)
            stats |= self._action_stats(j, adv_batches[j], prefix)
        return stats

    @torch.no_grad()
    def _behaviour(
        self, net: StackedNet, batch: dict[str, torch.Tensor], last_obs: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """A seat's rollout in member layout [K, T * n, ...] with what PPO needs from the
        policy that acted: log-probs, mean action probabilities, values (critics)."""
        members = self.members
        out = {
            "obs": to_members(batch["obs"], members),
            "actions": _rows(batch["actions"], members)
            if batch["actions"].dim() == 2
            else to_members(batch["actions"], members),
            "utility": batch["utility"],  # [T, K * n]: GAE runs on the env layout
            "dones": batch["dones"],
        }
        dist = net.distribution(out["obs"])
        out["logp"] = dist.log_prob(out["actions"])
        if isinstance(dist, Categorical):
            out["probs"] = dist.probs.mean(1)
        if net.has_critic:
            out["values"] = net.value(out["obs"])
            last = net.value(to_members(last_obs, members)).reshape(-1)
            out["last_value"] = last
        return out

    def _gae(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Advantages and returns in member layout [K, T * n], per member's gamma/lambda."""
        members, num_envs = self.members, self.config.ppo.num_envs
        steps = batch["utility"].shape[0]
        values = _env_layout(batch["values"], members, steps)
        gamma = self.coef.gamma.repeat_interleave(num_envs)
        lam = self.coef.gae_lambda.repeat_interleave(num_envs)
        advantages, returns = gae(
            batch["utility"], values, batch["dones"], batch["last_value"], gamma, lam
        )
        return _rows(advantages, members), _rows(returns, members)

    def _hero_update(
        self, role: Role, batch: dict[str, torch.Tensor], rngs: list[torch.Generator]
    ) -> tuple[Stats, torch.Tensor]:
        """Eq. (8) per member: L_CLIP + eps * entropy, plus the critic's regression.
        Returns the stats and the advantages [K, T * n] (SRPO's adversaries negate them)."""
        ppo, coef, net = self.config.ppo, self.coef, role.net
        advantages, returns = self._gae(batch)
        clip = coef.clip.unsqueeze(1)

        def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
            obs = _take(batch["obs"], idx)
            dist = net.distribution(obs)
            adv = _take(advantages, idx)
            adv = _normalise(adv) if ppo.norm_adv else adv
            logp = dist.log_prob(_take(batch["actions"], idx))
            pg_loss, stats = _clipped_surrogate(logp, _take(batch["logp"], idx), adv, clip)
            v_loss = _value_loss(
                net.value(obs), _take(batch["values"], idx), _take(returns, idx), clip, ppo
            )
            entropy = dist.entropy().mean(1)
            loss = pg_loss + coef.vf_coef * v_loss - coef.eps * entropy
            stats |= {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy}
            return loss.sum(), stats

        stats = self._optimise(role, advantages.shape[1], loss_fn, rngs)
        stats["explained_variance"] = _explained_variance(batch["values"], returns)
        return stats, advantages

    def _adversary_update(
        self,
        role: Role,
        batch: dict[str, torch.Tensor],
        hero_advantages: torch.Tensor,
        partner: Distribution,
        rngs: list[torch.Generator],
    ) -> Stats:
        """Eq. (9) per member: L_CLIP on -A_hero + (1/tau) * KL - [eps * entropy]."""
        ppo, algo, coef, net = self.config.ppo, self.config.algo, self.coef, role.net
        advantages = -hero_advantages
        clip = coef.clip.unsqueeze(1)
        ent_coef = coef.eps if algo.adversary_entropy == "eps" else torch.zeros_like(coef.eps)

        def loss_fn(idx: torch.Tensor | slice) -> tuple[torch.Tensor, Stats]:
            dist = net.distribution(_take(batch["obs"], idx))
            adv = _take(advantages, idx)
            adv = _normalise(adv) if ppo.norm_adv else adv
            logp = dist.log_prob(_take(batch["actions"], idx))
            pg_loss, stats = _clipped_surrogate(logp, _take(batch["logp"], idx), adv, clip)
            target = _take_dist(partner, idx)
            forward = algo.kl_direction == "adversary-partner"
            kl = (dist.kl(target) if forward else target.kl(dist)).mean(1)
            entropy = dist.entropy().mean(1)
            loss = pg_loss + kl / coef.tau - ent_coef * entropy
            stats |= {"policy_loss": pg_loss, "kl_partner": kl, "entropy": entropy}
            return loss.sum(), stats

        return self._optimise(role, advantages.shape[1], loss_fn, rngs)

    def _optimise(self, role: Role, size: int, loss_fn, rngs: list[torch.Generator]) -> Stats:
        """PPO's epochs x minibatches, every member at once; each member's minibatch order
        from its own generator. Mean of each stat over the steps."""
        ppo = self.config.ppo
        minibatch = size // ppo.minibatches
        steps: list[Stats] = []
        for _ in range(ppo.epochs):
            if ppo.minibatches == 1:
                parts: list[torch.Tensor | slice] = [slice(None)]
            else:
                orders = [torch.randperm(size, generator=g, device=g.device) for g in rngs]
                order = torch.stack(orders).to(self.device)
                parts = list(order.split(minibatch, dim=1))
            for idx in parts:
                loss, step_stats = loss_fn(idx)
                role.optimizer.zero_grad()
                loss.backward()
                role.optimizer.clip_grads()
                role.optimizer.step()
                steps.append({k: v.detach() for k, v in step_stats.items()})
        return {key: _mean([s[key] for s in steps]) for key in steps[0]}

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

    def _per_member(self, stats: Stats) -> list[dict[str, float]]:
        """[K] tensors -> one metrics dict per member, in one transfer."""
        keys = list(stats)
        table = torch.stack([stats[k].float().to("cpu") for k in keys]).T.tolist()
        return [
            {k: v for k, v in zip(keys, row, strict=True) if v == v}  # NaN: nothing to report
            for row in table
        ]

    # --- evaluation ------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, episodes: int, seeds: list[int], final: bool = False) -> list[dict]:
        """Each member's heroes playing together, one episode per env, from each member's
        own evaluation seed (the training RNG is untouched)."""
        env = make_env(self.config.env, episodes * self.members, self.device, 0)
        env.split_generators([sub_seed(s, "eval-env") for s in seeds])
        rng = MemberGenerators(
            [make_generator(self.device, sub_seed(s, "eval-actions")) for s in seeds]
        )
        played = play_episodes(env, self._seats({}), rng)
        team = list(self.heroes)
        return [p.summary(self.agents, team) for p in played.split(self.members, env.num_envs)]

    # --- state -----------------------------------------------------------------------

    def policy_states(self) -> list[dict[str, dict[str, torch.Tensor]]]:
        """Per member, each trained role's weights as its own run's policy."""
        return [
            {name: role.net.member_state(k) for name, role in self.roles().items()}
            for k in range(self.members)
        ]

    def state_dict(self) -> list[dict[str, Any]]:
        """Per member, its optimisers, generators and env slices."""
        return [self._member_state(k) for k in range(self.members)]

    def _member_state(self, k: int) -> dict[str, Any]:
        return {
            "optimizers": {name: r.optimizer.member_state(k) for name, r in self.roles().items()},
            "adversaries": {
                i: {
                    j: {"net": a.net.member_state(k), "optimizer": a.optimizer.member_state(k)}
                    for j, a in advs.items()
                }
                for i, advs in self.adversaries.items()
            },
            "generator": self.generator.generators[k].get_state(),
            "init_generator": self.init_generators[k].get_state(),
            "update_generators": {i: g[k].get_state() for i, g in self.update_generators.items()},
            "runners": [member_runner_state(r, k, self.members) for r in self.runners],
        }

    def load_state_dict(self, policies: list[dict], states: list[dict[str, Any]]) -> None:
        for k, (policy, state) in enumerate(zip(policies, states, strict=True)):
            for name, role in self.roles().items():
                role.net.load_member_state(k, policy[name])
                role.optimizer.load_member_state(k, state["optimizers"][name])
            for i, advs in self.adversaries.items():
                for j, adversary in advs.items():
                    saved = state["adversaries"][i][j]
                    adversary.net.load_member_state(k, saved["net"])
                    adversary.optimizer.load_member_state(k, saved["optimizer"])
            self.generator.generators[k].set_state(state["generator"])
            self.init_generators[k].set_state(state["init_generator"])
            for i, generators in self.update_generators.items():
                generators[k].set_state(state["update_generators"][i])
        for r, runner in enumerate(self.runners):
            load_runner_states(runner, [state["runners"][r] for state in states])


def member_runner_state(runner: Runner, k: int, members: int) -> dict[str, Any]:
    """Member k's slice of a population runner's state (`Runner.state_dict`)."""
    state = runner.state_dict()
    width = runner.env.num_envs // members
    rows = slice(k * width, (k + 1) * width)
    return {
        "env": runner.env.member_state(state["env"], k, members),
        "obs": [obs[rows].clone() for obs in state["obs"]],
        "info_keys": state["info_keys"],
        "sums": None if state["sums"] is None else state["sums"][:, rows].clone(),
    }


def load_runner_states(runner: Runner, states: list[dict[str, Any]]) -> None:
    """A population runner from its members' slices (`member_runner_state`)."""
    first = states[0]
    sums = None if first["sums"] is None else torch.cat([s["sums"] for s in states], 1)
    obs = [torch.cat([s["obs"][i] for s in states]) for i in range(len(first["obs"]))]
    env = runner.env.join_member_states([s["env"] for s in states])
    runner.load_state_dict({"env": env, "obs": obs, "info_keys": first["info_keys"], "sums": sums})


# --- batched PPO terms: [K, N] in, [K] out ---------------------------------------------


def _rows(x: torch.Tensor, members: int) -> torch.Tensor:
    """[T, K * n] -> [K, T * n] (member layout; see `to_members`)."""
    return to_members(x.unsqueeze(-1), members).squeeze(-1)


def _env_layout(x: torch.Tensor, members: int, steps: int) -> torch.Tensor:
    """[K, T * n] -> [T, K * n]."""
    return x.reshape(members, steps, -1).transpose(0, 1).reshape(steps, -1)


def _take(x: torch.Tensor, idx: torch.Tensor | slice) -> torch.Tensor:
    """Rows ``idx`` [K, m] of each member from [K, N, ...] (a slice: all of them)."""
    if isinstance(idx, slice):
        return x
    if x.dim() == 2:
        return x.gather(1, idx)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _take_dist(dist: Distribution, idx: torch.Tensor | slice) -> Distribution:
    if isinstance(dist, Categorical):
        return Categorical(_take(dist.raw, idx))
    return DiagGaussian(_take(dist.mean, idx), _take(dist.log_std, idx))


def _frozen(dist: Distribution) -> Distribution:
    if isinstance(dist, Categorical):
        return dist.frozen()
    return DiagGaussian(dist.mean.detach().clone(), dist.log_std.detach().clone())


def _mean(values: list[torch.Tensor]) -> torch.Tensor:
    """The mean of [K] tensors, added one by one (a reduction over a stacked [S, K] table
    adds in another order with one member than with many)."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total / len(values)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] < 2:
        return x
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-8)


def _clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: torch.Tensor
) -> tuple[torch.Tensor, Stats]:
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = -torch.min(ratio * advantages, clipped * advantages).mean(1)
    with torch.no_grad():
        stats = {
            "approx_kl": ((ratio - 1) - log_ratio).mean(1),
            "clipfrac": ((ratio - 1).abs() > clip).float().mean(1),
        }
    return loss, stats


def _value_loss(values, old_values, returns, clip, ppo) -> torch.Tensor:
    loss = (values - returns) ** 2
    if ppo.clip_vloss:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss.mean(1)


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    var = returns.var(1)
    out = 1 - (returns - values).var(1) / var
    return torch.where(var == 0, torch.full_like(out, float("nan")), out)
