"""SRPO's adversary update (eq. 9) on a hand-built batch, against the equation written out
here with torch.distributions: the loss -L_CLIP(-A_hero) + KL / tau - [eps * H], its
gradient through Adam's first step, each `kl_direction`, `adversary_entropy`, and where the
adversary starts (`adversary_init`)."""

import copy

import pytest
import torch
from torch import distributions as D

from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.config import AlgoSection, PPOSection, resolve
from srpo_core.distributions import Categorical
from srpo_core.envs.base import Discrete
from srpo_core.population.members import Coefficients
from srpo_core.population.updates import Role, adversary_update
from srpo_core.train import build_population

STATES, ACTIONS, LR = 6, 3, 0.1
ADAM_EPS = 10.0
"""Adam's first step is -lr * g / (|g| + eps): with a large eps it is almost linear in the
gradient g, so the update shows its size, not only its sign."""


def hand_batch():
    """One step of six envs: observations, the actions taken and their log-probs under the
    adversary now (so every ratio is 1), the hero's advantages, the partner's logits."""
    g = torch.Generator().manual_seed(0)
    net = ActorCritic(NetSpec(4, Discrete(ACTIONS), (8,), "tanh", False, critic=False))
    net.reset_parameters(g)
    obs = torch.randn(1, STATES, 4, generator=g)
    actions = torch.tensor([[0, 1, 2, 0, 1, 2]])
    with torch.no_grad():
        logp = net.distribution(obs.reshape(STATES, 4), None).log_prob(actions.reshape(-1))
    batch = {"obs": obs, "actions": actions, "logp": logp.reshape(1, STATES)}
    hero_advantages = torch.tensor([[1.0, -2.0, 0.5, -0.5, 3.0, -1.0]])
    partner_logits = torch.randn(STATES, ACTIONS, generator=g)
    return net, batch, hero_advantages, partner_logits


def equation_9(net, batch, hero_advantages, partner_logits, algo: AlgoSection) -> torch.Tensor:
    """The loss the adversary minimises, written from the paper (ratios are 1 here, so the
    clipped surrogate is the mean of the negated hero advantages times the ratio)."""
    logits = net.actor_head(net.actor_body(batch["obs"].reshape(STATES, 4)))
    phi = D.Categorical(logits=logits)
    ratio = torch.exp(phi.log_prob(batch["actions"].reshape(-1)) - batch["logp"].reshape(-1))
    surrogate = (ratio * -hero_advantages.reshape(-1)).mean()
    partner = D.Categorical(logits=partner_logits)
    if algo.kl_direction == "adversary-partner":
        kl = D.kl_divergence(phi, partner).mean()
    else:
        kl = D.kl_divergence(partner, phi).mean()
    entropy_weight = algo.eps if algo.adversary_entropy == "eps" else 0.0
    return -surrogate + kl / algo.tau - entropy_weight * phi.entropy().mean()


def update(net, batch, hero_advantages, partner_logits, algo: AlgoSection):
    """One eq. (9) update of ``net`` as the adversary of a population of one; ``net``'s
    weights become the updated ones."""
    ppo = PPOSection(
        lr=LR, adam_eps=ADAM_EPS, epochs=1, minibatches=1, norm_adv=False, max_grad_norm=0.0
    )
    config = resolve(presets=["gridworld-srpo"])
    config.ppo, config.algo = ppo, algo
    coef = Coefficients.of([config], torch.device("cpu"))
    role = Role.of([net], coef)
    members = {  # member layout: [1, rows, ...]
        "obs": batch["obs"].reshape(1, STATES, 4),
        "actions": batch["actions"].reshape(1, STATES),
        "logp": batch["logp"].reshape(1, STATES),
        "advantages": hero_advantages.reshape(1, STATES),
    }
    partner = Categorical(partner_logits.unsqueeze(0)).frozen()
    adversary_update(role, members, partner, config, coef, [torch.Generator()])
    net.load_state_dict(role.net.member_state(0))


@pytest.mark.parametrize("kl_direction", ["adversary-partner", "partner-adversary"])
@pytest.mark.parametrize("adversary_entropy", ["none", "eps"])
@pytest.mark.parametrize("tau", [0.5, 10.0])
def test_the_update_follows_equation_9(kl_direction, adversary_entropy, tau):
    """The weights after one update moved by Adam's first step on the gradient of the
    equation above."""
    net, batch, hero_advantages, partner_logits = hand_batch()
    algo = AlgoSection(
        name="srpo", tau=tau, eps=0.3, kl_direction=kl_direction,
        adversary_entropy=adversary_entropy,
    )  # fmt: skip
    reference = copy.deepcopy(net)
    loss = equation_9(reference, batch, hero_advantages, partner_logits, algo)
    grads = torch.autograd.grad(loss, list(reference.parameters()), allow_unused=True)
    before = [p.detach().clone() for p in net.parameters()]
    update(net, batch, hero_advantages, partner_logits, algo)
    for old, new, grad in zip(before, net.parameters(), grads, strict=True):
        expected = -LR * grad / (grad.abs() + ADAM_EPS)
        torch.testing.assert_close(new.detach() - old, expected, rtol=1e-3, atol=2e-7)


@pytest.mark.parametrize("init", ["partner", "fresh"])
def test_the_adversary_starts_as_the_partner_or_fresh(init):
    config = resolve(presets=["gridworld-srpo"], sets=[f"algo.adversary_init='{init}'"])
    population = build_population([config])
    for hero, adversaries in population.adversaries.items():
        for partner, role in adversaries.items():
            partner_weights = population.heroes[partner].net.member_state(0)
            own = role.net.member_state(0)
            assert own.keys() <= partner_weights.keys()
            same = all(torch.equal(own[k], partner_weights[k]) for k in own)
            assert same == (init == "partner"), (hero, partner)
