"""The PPO core and the distributions against hand computations and torch.distributions."""

import math

import pytest
import torch
from torch import distributions as D

from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.algos.ppo import clipped_surrogate, explained_variance, gae, turn_gae
from srpo_core.config import PPOSection, resolve
from srpo_core.distributions import Categorical, DiagGaussian
from srpo_core.envs.base import Discrete
from srpo_core.population.members import Coefficients
from srpo_core.population.stacked import to_members
from srpo_core.population.terms import value_loss
from srpo_core.population.updates import Role, hero_update


def test_gae_matches_hand_computation_with_episode_end():
    # One env, three steps, the episode ends after step 1 (index 1).
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[False], [True], [False]])
    last_value = torch.tensor([2.0])
    g, lam = 0.9, 0.8
    d2 = 3.0 + g * 2.0 - 1.5  # bootstraps from last_value
    d1 = 2.0 - 1.0  # episode ended: no bootstrap
    d0 = 1.0 + g * 1.0 - 0.5
    a2, a1 = d2, d1  # nothing flows back across the episode end
    a0 = d0 + g * lam * a1
    adv, ret = gae(rewards, values, dones, last_value, g, lam)
    assert adv.squeeze(-1).tolist() == pytest.approx([a0, a1, a2])
    assert ret.squeeze(-1).tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5])


def test_clipped_surrogate_hand_computed():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.7]))
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0])
    # min(r A, clip(r) A) with clip 0.2: 1.2, 0.5, -2.2, -0.8
    loss, stats = clipped_surrogate(logp, old, adv, 0.2)
    assert float(loss) == pytest.approx(-(1.2 + 0.5 - 2.2 - 0.8) / 4)
    assert float(stats["clipfrac"]) == pytest.approx(0.75)
    ratios = torch.tensor([1.5, 0.5, 1.1, 0.7])
    assert float(stats["approx_kl"]) == pytest.approx(float(((ratios - 1) - ratios.log()).mean()))


def test_value_loss_and_explained_variance():
    # one member's rows [1, 2]; the population's batched loss (`population.terms`)
    v, old, ret = torch.tensor([[1.0, 3.0]]), torch.zeros(1, 2), torch.tensor([[2.0, 2.0]])
    clip = torch.tensor([[0.5]])

    def loss(clip_vloss: bool) -> float:
        return float(value_loss(v, old, ret, clip, PPOSection(clip_vloss=clip_vloss), None))

    assert loss(clip_vloss=False) == pytest.approx(0.5)
    # clipped values are 0.5 and 0.5 -> squared errors 2.25 each dominate; 0.5 * 2.25
    assert loss(clip_vloss=True) == pytest.approx(1.125)
    returns = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(returns, returns) == 1.0


def test_categorical_matches_torch_and_exact_kl():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    ours, theirs = Categorical(a), D.Categorical(logits=a)
    actions = torch.tensor([0, 1, 2, 3, 1])
    assert torch.allclose(ours.log_prob(actions), theirs.log_prob(actions))
    assert torch.allclose(ours.entropy(), theirs.entropy())
    direct = (a.softmax(-1) * (a.log_softmax(-1) - b.log_softmax(-1))).sum(-1)
    assert torch.allclose(ours.kl(Categorical(b)), direct, atol=1e-6)


def test_categorical_mask_never_samples_illegal_actions():
    logits = torch.zeros(1000, 3)
    mask = torch.tensor([True, False, True]).expand(1000, 3)
    actions = Categorical(logits, mask).sample(torch.Generator().manual_seed(1))
    assert not (actions == 1).any()


def test_gaussian_matches_torch_and_closed_form_kl():
    mean_a, mean_b = torch.tensor([[0.3, -1.0]]), torch.tensor([[0.0, 0.5]])
    ls_a, ls_b = torch.tensor([0.1, -0.4]), torch.tensor([-0.2, 0.3])
    ours = DiagGaussian(mean_a, ls_a)
    theirs = D.Independent(D.Normal(mean_a, ls_a.exp()), 1)
    x = torch.tensor([[0.7, -0.2]])
    assert torch.allclose(ours.log_prob(x), theirs.log_prob(x))
    assert torch.allclose(ours.entropy(), theirs.entropy())
    other = D.Independent(D.Normal(mean_b, ls_b.exp()), 1)
    assert torch.allclose(ours.kl(DiagGaussian(mean_b, ls_b)), D.kl_divergence(theirs, other))


def test_sampling_is_reproducible_from_the_generator():
    dist = DiagGaussian(torch.zeros(3, 1), torch.zeros(1))
    first = dist.sample(torch.Generator().manual_seed(7))
    again = dist.sample(torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    draws = dist.sample(torch.Generator().manual_seed(8))
    assert not torch.equal(first, draws)
    big = DiagGaussian(torch.zeros(20000, 1), torch.tensor([math.log(2.0)]))
    assert float(big.sample(torch.Generator().manual_seed(0)).std()) == pytest.approx(2.0, rel=0.03)


def test_gumbel_max_sampling_matches_the_probabilities():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 40_000
    dist = Categorical(probs.log().expand(n, 4))
    counts = torch.bincount(dist.sample(torch.Generator().manual_seed(3)), minlength=4)
    sigma = (probs * (1 - probs) / n).sqrt()
    assert ((counts / n - probs).abs() < 4 * sigma).all(), counts


def test_turn_gae_hand_computed_two_players_alternating():
    # Agent 0 acts at steps 0 and 2, agent 1 at 1 and 3; both receive the shared reward of
    # every step. Env 0 runs on; in env 1 the episode ends with step 1 (agent 1's move).
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0], [4.0, 4.0]])
    dones = torch.tensor([[False, False], [False, True], [False, False], [False, False]])
    nan = float("nan")  # values at the other player's steps must never be used
    values = torch.tensor([[0.5, 0.5], [nan, nan], [1.0, 1.0], [nan, nan]])
    acting = torch.tensor([[True, True], [False, False], [True, True], [False, False]])
    last_value = torch.tensor([2.0, 2.0])  # agent 0's value after the rollout (its turn)
    g, lam = 0.9, 0.8
    # Per own turn: the turn's reward is the discounted sum of the steps until agent 0
    # acts again, discounted by g^2 to its next decision, lambda per own turn.
    a2 = (0.0 + g * 4.0) + g**2 * 2.0 - 1.0
    a0 = (1.0 + g * 2.0) + g**2 * 1.0 - 0.5 + g**2 * lam * a2
    a0_ended = (1.0 + g * 2.0) - 0.5  # nothing after the episode end
    adv, ret = turn_gae(rewards, values, dones, last_value, g, lam, acting)
    assert adv[0].tolist() == pytest.approx([a0, a0_ended])
    assert adv[2].tolist() == pytest.approx([a2, a2])
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a0_ended + 0.5])


def test_turn_gae_is_gae_when_every_step_is_a_decision():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    dones = torch.rand(7, 3, generator=g) < 0.3
    last = torch.randn(3, generator=g)
    expected = gae(rewards, values, dones, last, 0.99, 0.95)
    got = turn_gae(rewards, values, dones, last, 0.99, 0.95, torch.ones(7, 3, dtype=torch.bool))
    assert torch.allclose(got[0], expected[0], atol=1e-5)
    assert torch.allclose(got[1], expected[1], atol=1e-5)


def _turn_batch(seed: int) -> dict:
    """A turn-based rollout of one seat: it acts at every other step, with legal masks."""
    g = torch.Generator().manual_seed(seed)
    t, b, n = 6, 4, 5
    acting = (torch.arange(t).unsqueeze(1) + torch.arange(b)) % 2 == 0
    mask = torch.rand(t, b, n, generator=g) < 0.7
    mask[..., 0] = True
    actions = torch.where(mask, torch.rand(t, b, n, generator=g), -1.0).argmax(-1)
    return {
        "obs": torch.randn(t, b, 3, generator=g),
        "actions": actions,
        "logp": -torch.rand(t, b, generator=g) - 1.0,
        "utility": torch.randn(t, b, generator=g),
        "dones": torch.zeros(t, b, dtype=torch.bool),
        "values": torch.randn(t, b, generator=g),
        "last_value": torch.randn(b, generator=g),
        "mask": mask,
        "acting": acting,
    }


def _update(batch: dict, **ppo) -> torch.Tensor:
    """One eq. (8) update (`population.updates.hero_update`, a population of one) of a
    turn-based seat's batch; the updated weights, flat."""
    net = ActorCritic(NetSpec(3, Discrete(5), (8,), "tanh", False, critic=True))
    net.reset_parameters(torch.Generator().manual_seed(0))
    config = resolve(presets=["gridworld-ippo"])
    config.ppo = PPOSection(epochs=2, minibatches=2, num_envs=4, num_steps=6, **ppo)
    coef = Coefficients.of([config], torch.device("cpu"))
    role = Role.of([net], coef)
    args = (batch["utility"], batch["values"], batch["dones"], batch["last_value"])
    advantages, returns = turn_gae(*args, config.ppo.gamma, config.ppo.gae_lambda, batch["acting"])
    steps = {
        **{k: batch[k] for k in ("obs", "actions", "logp", "values", "mask", "acting")},
        "critic": batch["acting"],
        "advantages": advantages,
        "returns": returns,
    }
    rows = {k: to_members(v if v.dim() > 2 else v.unsqueeze(-1), 1) for k, v in steps.items()}
    rows = {k: v if steps[k].dim() > 2 else v.squeeze(-1) for k, v in rows.items()}
    hero_update(role, rows, config, coef, [torch.Generator().manual_seed(1)])
    return torch.cat([p.detach().flatten() for p in role.net.member_state(0).values()])


def test_other_players_steps_are_masked_out_of_the_losses():
    batch = _turn_batch(0)
    reference = _update(dict(batch))
    # Change everything recorded at the steps where the seat did not act: same update.
    noise = _turn_batch(1)
    other = ~batch["acting"]
    changed = dict(batch)
    for key in ("obs", "actions", "logp", "values", "mask"):
        changed[key] = torch.where(
            other.reshape(*other.shape, *[1] * (batch[key].dim() - 2)), noise[key], batch[key]
        )
    assert torch.equal(_update(changed), reference)
    # ... while one of its own decisions does change it.
    own = dict(batch)
    own["actions"] = batch["actions"].clone()
    own["actions"][0, 0] = (batch["actions"][0, 0] + 1) % 5
    own["mask"] = batch["mask"].clone()
    own["mask"][0, 0] = True
    assert not torch.equal(_update(own), reference)


def test_separate_critic_learning_rate():
    """A population's roles: the critic's parameters at ppo.critic_lr, the actor's at
    ppo.lr."""
    net = ActorCritic(NetSpec(3, Discrete(2), (4,), "tanh", False, critic=True))
    config = resolve(presets=["gridworld-ippo"], sets=["ppo.lr=7e-4", "ppo.critic_lr=1e-3"])
    role = Role.of([net], Coefficients.of([config], torch.device("cpu")))
    named = zip(role.net.names, role.optimizer.lr, strict=True)
    rates = {name: float(lr.flatten()[0]) for name, lr in named}
    assert rates == {
        name: pytest.approx(1e-3 if name.startswith("critic_") else 7e-4) for name in rates
    }
