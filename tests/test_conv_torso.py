"""The convolutional torso for grid observations (``net.conv``): it reads overcooked-ai's
lossless encoding in the package's own layout, a stored policy acts as it trained, and
configurations it cannot serve are one line."""

import pytest
import torch

from srpo_core.agents.networks import ActorCritic, NetSpec, torso_forward
from srpo_core.config import resolve
from srpo_core.envs import env_spec
from srpo_core.envs.base import Discrete
from srpo_core.envs.overcooked.layouts import layout_planner
from srpo_core.errors import UserError
from srpo_core.train import build_population

LOSSLESS = ["env.backend='torch'", "env.obs='lossless'", "ppo.num_envs=4", "ppo.num_steps=16"]


def test_the_torso_reads_the_packages_grid_cell_by_cell():
    """A 3x3 kernel that copies one mask from the centre cell maps the flat lossless
    observation back onto the package's [x][y][mask] array: every cell's value is the
    package's own encoding of that cell."""
    mdp, _ = layout_planner("cramped_room")
    state = mdp.get_standard_start_state()
    encoded = mdp.lossless_state_encoding(state)[0]  # [width, height, 26], player 0's view
    width, height, masks = encoded.shape
    obs = torch.tensor(encoded, dtype=torch.float32).reshape(1, -1)
    for mask in (0, 1, 10, 11, 12):  # the players' locations, pots, counters, onion dispensers
        kernel = torch.zeros(1, masks, 3, 3)
        kernel[0, mask, 1, 1] = 1.0
        maps = torso_forward([(kernel, torch.zeros(1))], (width, height, masks), obs)
        expected = torch.tensor(encoded[:, :, mask], dtype=torch.float32).reshape(1, -1)
        assert torch.equal(maps, expected), mask
        assert maps.sum() > 0, mask  # the chosen masks are not empty at the start


def test_the_spec_names_the_grid_and_round_trips():
    config = resolve(presets=["overcooked-ippo"], sets=LOSSLESS)
    game = env_spec(config.env)
    assert game.grid(0) == (5, 4, 26) and game.obs_dims[0] == 5 * 4 * 26
    featurized = resolve(presets=["overcooked-ippo"], sets=["env.backend='torch'"])
    assert env_spec(featurized.env).grid(0) is None
    spec = NetSpec(520, Discrete(6), (64, 64), "tanh", False, True, conv=(8, 4), grid=(5, 4, 26))
    assert NetSpec.from_dict(spec.to_dict()) == spec
    assert spec.features == 4 * 5 * 4
    for bad in ({"grid": [5, 4]}, {"grid": [5, 4, 25]}, {"conv": [0, 4]}, {"grid": [5, 4, "x"]}):
        with pytest.raises(ValueError):  # stored specs are input: refused as they are read
            NetSpec.from_dict(spec.to_dict() | bad)
    plain = NetSpec(96, Discrete(6), (64, 64), "tanh", False, True)
    assert "conv" not in plain.to_dict()  # specs stored before the option read as before
    assert NetSpec.from_dict(plain.to_dict()) == plain


def test_a_stored_policy_acts_as_it_trained():
    """The module cross-play loads from a member's stored weights gives the training's
    stacked network's action probabilities and values (within float32 rounding)."""
    config = resolve(presets=["overcooked-ippo"], sets=[*LOSSLESS, "net.conv=[8]"])
    population = build_population([config])
    population.iterate()
    role = population.roles()["agent0"]
    net = ActorCritic(NetSpec.from_dict(role.net.spec.to_dict()))
    net.load_state_dict(population.policy_states()[0]["agent0"])
    obs = population.runners[0].obs[0]
    with torch.no_grad():
        probs = net.distribution(obs).probs
        stacked = role.net.distribution(obs.unsqueeze(0)).probs[0]
        values = role.net.value(obs.unsqueeze(0))[0]
        assert torch.allclose(probs, stacked, atol=1e-6)
        assert torch.allclose(net.value(obs), values, atol=1e-5)
    assert set(net.state_dict()) >= {"actor_conv.0.weight", "critic_conv.0.bias"}


@pytest.mark.parametrize(
    "preset, sets, message",
    [
        ("overcooked-ippo", ["env.backend='torch'", "net.conv=[8]"], "needs a grid observation"),
        ("gridworld-ippo", ["net.conv=[8]"], "needs a grid observation"),
        (
            "overcooked-ippo",
            [*LOSSLESS, "net.conv=[8]", "net.shared_trunk=true"],
            "separate actor and critic",
        ),
        ("ipd-mixed", ["net.conv=[8]"], "net.conv is for feed-forward policies"),
        ("overcooked-ippo", [*LOSSLESS, "net.conv=[0]"], "net.conv"),
    ],
)
def test_configurations_it_cannot_serve_are_refused(preset, sets, message):
    with pytest.raises(UserError, match=message):
        build_population([resolve(presets=[preset], sets=sets)])
