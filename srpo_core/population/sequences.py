"""The recurrent learners' rollouts, every member at once: sequences with the memory
carried from step to step and zeroed at episode starts.

The feed-forward collector (`rollout.collect`) recomputes log-probs from single
observations and shuffles single steps. A recurrent policy needs its memory carried, and
its update replays whole sequences: the hidden state at the rollout's first step is stored,
so `StackedRecurrentNet.unroll` repeats the acting computation exactly. Tensors are in env
layout ([..., K * n], member-major, as the env batch) and viewed as [..., K, n] for the
stacked networks. Co-players come from the IPD's `PartnerPool` (``train.partners``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from srpo_core.distributions import Categorical
from srpo_core.envs.ipd.env import IDENTITY, C
from srpo_core.envs.ipd.partners import PartnerPool
from srpo_core.population.stacked_recurrent import StackedRecurrentNet
from srpo_core.population.terms import Stats
from srpo_core.rollout import MemberGenerators, Runner, draw_sample, stack_steps


@dataclass
class Memory:
    """What carries over between rollouts: per seat the GRU state [K, n, H], previous
    action and reward [K * n], and which envs' current observation opens an episode."""

    hidden: list[torch.Tensor]
    prev_action: list[torch.Tensor]
    prev_reward: list[torch.Tensor]
    starts: torch.Tensor

    @classmethod
    def fresh(cls, nets: list[StackedRecurrentNet], num_envs: int, device) -> Memory:
        """``num_envs`` per member."""
        width = nets[0].members * num_envs
        return cls(
            hidden=[net.initial_state(num_envs, device) for net in nets],
            prev_action=[
                torch.full((width,), net.no_action, dtype=torch.long, device=device) for net in nets
            ],
            prev_reward=[torch.zeros(width, device=device) for _ in nets],
            starts=torch.ones(width, dtype=torch.bool, device=device),
        )

    def member_state(self, k: int) -> dict[str, Any]:
        """Member k's memory (its envs' rows)."""
        members = self.hidden[0].shape[0]
        width = self.starts.shape[0] // members
        rows = slice(k * width, (k + 1) * width)
        return {
            "hidden": [h[k].clone() for h in self.hidden],
            "prev_action": [a[rows].clone() for a in self.prev_action],
            "prev_reward": [r[rows].clone() for r in self.prev_reward],
            "starts": self.starts[rows].clone(),
        }

    @classmethod
    def joined(cls, states: list[dict[str, Any]]) -> Memory:
        """The whole population's memory from its members' (`member_state`)."""
        seats = range(len(states[0]["hidden"]))
        return cls(
            hidden=[torch.stack([s["hidden"][i] for s in states]) for i in seats],
            prev_action=[torch.cat([s["prev_action"][i] for s in states]) for i in seats],
            prev_reward=[torch.cat([s["prev_reward"][i] for s in states]) for i in seats],
            starts=torch.cat([s["starts"] for s in states]),
        )


@dataclass
class Sequences:
    """One seat's rollout, [T, K * n] unless noted."""

    obs: torch.Tensor
    """[T, K * n, obs_dim] as the learner saw it (identity filled in)."""
    prev_action: torch.Tensor
    prev_reward: torch.Tensor
    starts: torch.Tensor
    hidden0: torch.Tensor
    """[K, n, H]: the GRU state before step 0."""
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
    """[K * n]: V of the observation after the rollout."""


def _step(
    net: StackedRecurrentNet,
    obs: torch.Tensor,
    prev_action: torch.Tensor,
    prev_reward: torch.Tensor,
    hidden: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`StackedRecurrentNet.step` on env-layout inputs [K * n, ...]: logits [K * n, A],
    value [K * n], hidden [K, n, H]."""
    members, width = hidden.shape[:2]
    logits, value, hidden = net.step(
        obs.view(members, width, -1),
        prev_action.view(members, width),
        prev_reward.view(members, width),
        hidden,
    )
    return logits.reshape(members * width, -1), value.reshape(-1), hidden


def _observation(runner: Runner, seat: int, pool: PartnerPool, identity: bool) -> torch.Tensor:
    obs = runner.obs[seat]
    if identity:
        obs = obs.clone()
        obs[:, IDENTITY] = pool.identity(seat)
    return obs


@torch.no_grad()
def play(
    runner: Runner,
    nets: list[StackedRecurrentNet],
    pool: PartnerPool,
    memory: Memory,
    num_steps: int,
    rng: MemberGenerators,
    identity: bool,
) -> list[Sequences]:
    """Play ``num_steps`` steps, every seat's learner acting unless the pool puts a partner
    there; the learners' memories reset where an episode starts. Each member samples from
    its own generator of ``rng``. Nothing is read back from the device inside the loop."""
    seats = range(len(nets))
    record: list[dict[str, list[torch.Tensor]]] = [{} for _ in seats]
    hidden0, steps = [], []
    pool.draw_ahead(num_steps)
    for t in range(num_steps):
        starts = memory.starts
        pool.begin(starts, t)
        joint = []
        for i, net in enumerate(nets):
            keep = ~starts.view(memory.hidden[i].shape[:2]).unsqueeze(-1)
            memory.hidden[i] = memory.hidden[i] * keep
            memory.prev_action[i] = memory.prev_action[i].masked_fill(starts, net.no_action)
            memory.prev_reward[i] = memory.prev_reward[i].masked_fill(starts, 0.0)
            if t == 0:
                hidden0.append(memory.hidden[i])
            obs = _observation(runner, i, pool, identity)
            logits, value, hidden = _step(
                net, obs, memory.prev_action[i], memory.prev_reward[i], memory.hidden[i]
            )
            dist = Categorical(logits)
            partnered = pool.partner_in(i)
            partner_action = pool.act(i, obs, rng)
            action = torch.where(partnered, partner_action, draw_sample(dist, rng))
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
        step = runner.advance(joint)  # the episodes' sums are tallied after the loop
        steps.append(step)
        utility = step.reward - step.cost
        for i in seats:
            pool.observe(i, joint[i], step)
            memory.prev_action[i] = joint[i]
            memory.prev_reward[i] = utility[i]
            record[i].setdefault("utility", []).append(utility[i])
            record[i].setdefault("partner_utility", []).append(utility[1 - i])
            record[i].setdefault("dones", []).append(step.done)
        memory.starts = step.done
    runner.tally(steps, *stack_steps(steps))
    out = []
    for i, net in enumerate(nets):
        seq = Sequences(hidden0=hidden0[i], **{k: torch.stack(v) for k, v in record[i].items()})
        starts = memory.starts
        keep = ~starts.view(memory.hidden[i].shape[:2]).unsqueeze(-1)
        _, seq.last_value, _ = _step(
            net,
            _observation(runner, i, pool, identity),
            memory.prev_action[i].masked_fill(starts, net.no_action),
            memory.prev_reward[i].masked_fill(starts, 0.0),
            memory.hidden[i] * keep,
        )
        out.append(seq)
    return out


def by_member(x: torch.Tensor, members: int) -> torch.Tensor:
    """[T, K * n, ...] (env layout) -> [K, T * n, ...], each member's rows together."""
    steps, width = x.shape[:2]
    x = x.reshape(steps, members, width // members, *x.shape[2:])
    return x.movedim(1, 0).reshape(members, steps * (width // members), *x.shape[3:])


def play_metrics(seqs: list[Sequences], members: int, partners: str = "tabular") -> Stats:
    """Per member ([K] each), per round, over the steps a learner played, against learners
    and against pool partners: its cooperation rate, its payoff, and its advantage (its
    payoff minus the co-player's; > 0 means it takes more of the surplus than it leaves,
    as an extortioner does, Press & Dyson 2012). NaN where a member played no such step."""
    out: Stats = {}
    for name, against in (("learners", False), (partners, True)):
        device = seqs[0].utility.device
        coop, reward, advantage, count = (torch.zeros(members, device=device) for _ in range(4))
        for seq in seqs:
            rows = by_member(seq.learner & (seq.partner_pooled == against), members).float()
            coop = coop + (by_member(seq.actions == C, members).float() * rows).sum(1)
            reward = reward + (by_member(seq.utility, members) * rows).sum(1)
            gap = by_member(seq.utility - seq.partner_utility, members)
            advantage = advantage + (gap * rows).sum(1)
            count = count + rows.sum(1)
        nan = torch.full_like(count, float("nan"))
        for key, total in (("cooperation", coop), ("reward", reward), ("advantage", advantage)):
            out[f"vs_{name}/{key}"] = torch.where(count > 0, total / count.clamp_min(1), nan)
    return out
