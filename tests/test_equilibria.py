"""RQE oracle: the paper's collaborate/defect table, closed forms, and brute-force optimality."""

import itertools
import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax

from srpo_core.envs.matrix.equilibria import Equilibrium, best_response, find_rqe

# Collaborate/defect (arXiv 2602.21515, Example 4.2): R = 1 if anyone collaborates, C costs 0.4.
COLLAB_R = [[1.0, 1.0], [1.0, 0.0]]
COLLAB_C = ([0.4, 0.0], [0.4, 0.0])
EPS = 0.2

# (P0(C), P1(C)) of every equilibrium, from the paper.
PAPER_TABLE = {
    0.0: [(0.8833, 0.1952), (0.5555, 0.5555), (0.1952, 0.8833)],
    0.5: [(0.8425, 0.2802), (0.5837, 0.5837), (0.2802, 0.8425)],
    0.8: [(0.7063, 0.4826), (0.5988, 0.5988), (0.4826, 0.7063)],
    1.0: [(0.6082, 0.6082)],
    2.0: [(0.6486, 0.6486)],
    5.0: [(0.7268, 0.7268)],
    10.0: [(0.7942, 0.7942)],
}


def risk_averse_utility(x_i, x_j, utility, tau, eps):
    """U_i from its definition's closed form, independent of the module; utility[a_i, a_j].

    x_i may be a stack of strategies (rows), giving one value per row.
    """
    ubar = np.asarray(x_i) @ utility
    inner = ubar @ x_j if tau == 0 else -logsumexp(-tau * ubar, b=x_j, axis=-1) / tau
    return inner - eps * np.sum(x_i * np.log(x_i), axis=-1)


@pytest.mark.parametrize("tau", PAPER_TABLE)
def test_collab_defect_matches_paper(tau):
    eqs = find_rqe(COLLAB_R, COLLAB_C, tau, EPS)
    got = [(e.strategies[0][0], e.strategies[1][0]) for e in eqs]
    assert len(got) == len(PAPER_TABLE[tau]), got
    np.testing.assert_allclose(got, PAPER_TABLE[tau], atol=1e-3)
    assert all(e.residual < 1e-8 for e in eqs)


def test_scan_probe_finds_roots_sharing_a_coarse_cell():
    # At grid=7 two of the three roots share a cell; only the |g| dip probe finds them.
    eqs = find_rqe(COLLAB_R, COLLAB_C, 0.8, EPS, grid=7)
    got = [e.strategies[0][0] for e in eqs]
    np.testing.assert_allclose(got, [0.7063, 0.5988, 0.4826], atol=1e-3)


def test_free_riding_degree_and_json():
    low, mid, high = (e.to_dict(COLLAB_C) for e in find_rqe(COLLAB_R, COLLAB_C, 0.0, EPS)[::-1])
    # E[c_i] = 0.4 * P_i(C): the defector free-rides on the collaborator.
    assert low["free_riding_degree"] == pytest.approx(0.4 * (0.8833 - 0.1952), abs=1e-3)
    assert high["expected_costs"] == pytest.approx([0.4 * 0.8833, 0.4 * 0.1952], abs=1e-3)
    assert mid["free_riding_degree"] == pytest.approx(0.0, abs=1e-9)
    assert json.loads(json.dumps(mid))["strategies"][0] == pytest.approx([0.5555, 0.4445], abs=1e-3)
    assert set(Equilibrium(((1.0, 0.0), (0.0, 1.0)), 0.0).to_dict()) == {"strategies", "residual"}


@pytest.mark.parametrize("tau", [0.0, 1.0, 7.0, (0.3, 4.0)])
@pytest.mark.parametrize("transpose", [False, True])
def test_separable_game_has_the_softmax_closed_form(tau, transpose):
    # R = f(a_0) + g(a_1): the opponent only shifts U_i by a constant, so for any risk aversion
    # the unique RQE is x_0 = softmax((f - c_0)/eps), x_1 = softmax((g - c_1)/eps).
    f, g = np.array([0.5, 0.0, 0.2]), np.array([0.1, 0.7])
    c0, c1 = np.array([0.1, 0.5, 0.3]), np.array([1.0, 0.2])
    if transpose:
        f, g, c0, c1 = g, f, c1, c0
    eqs = find_rqe(f[:, None] + g[None, :], (c0, c1), tau, EPS)
    assert len(eqs) == 1
    np.testing.assert_allclose(eqs[0].strategies[0], softmax((f - c0) / EPS), atol=1e-9)
    np.testing.assert_allclose(eqs[0].strategies[1], softmax((g - c1) / EPS), atol=1e-9)


@pytest.mark.parametrize("tau", [0.0, 0.5, 3.0])
def test_best_response_maximises_the_risk_averse_utility(tau):
    utility = np.array([[0.6, 0.6], [1.0, 0.0]])
    opponent = np.array([0.3, 0.7])
    best = minimize_scalar(
        lambda q: -risk_averse_utility(np.array([q, 1 - q]), opponent, utility, tau, EPS),
        bounds=(1e-9, 1 - 1e-9),
        method="bounded",
        options={"xatol": 1e-12},
    )
    assert best_response(utility, opponent, tau, EPS)[0] == pytest.approx(best.x, abs=1e-6)


def _grid_argmax(objective, center, half_width, points=201):
    """Best point of the 3-simplex on a square grid of (x_0, x_1) around `center`."""
    a, b = np.meshgrid(*(np.linspace(c - half_width, c + half_width, points) for c in center[:2]))
    xs = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
    xs = xs[(xs > 1e-12).all(axis=1)]
    return xs[np.argmax(objective(xs))]


def test_three_action_coordination_game_against_brute_force():
    # Symmetric coordination: R = 1 when both pick the same action, otherwise 0; no costs.
    reward, costs, tau = np.eye(3), (np.zeros(3), np.zeros(3)), 0.5
    eqs = find_rqe(reward, costs, tau, EPS)
    # By symmetry: the uniform point, three "agree on a" points and three "split on a pair".
    assert len(eqs) == 7
    points = {tuple(np.round(e.strategies[0] + e.strategies[1], 6)) for e in eqs}
    for perm in itertools.permutations(range(3)):
        assert {tuple(p[list(perm) + [3 + i for i in perm]]) for p in map(np.array, points)} == (
            points
        )
    assert any(np.allclose(e.strategies, 1 / 3) for e in eqs)
    for e in eqs:
        for i in range(2):
            x_i, x_j = np.array(e.strategies[i]), np.array(e.strategies[1 - i])

            def objective(x, x_j=x_j):
                return risk_averse_utility(x, x_j, reward, tau, EPS)

            best = _grid_argmax(objective, (0.5, 0.5), 0.5)  # the whole simplex, step 0.005
            for half_width in (0.01, 2e-4):  # zoom in: U_i is concave, so no other peak
                best = _grid_argmax(objective, best, half_width)
            np.testing.assert_allclose(best, x_i, atol=1e-5)
            assert objective(x_i) >= objective(best) - 1e-12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau": -0.1}, "tau must be >= 0"),
        ({"tau": (0.1, 0.2, 0.3)}, "tau must be a number or a pair"),
        ({"eps": 0.0}, "eps must be > 0"),
        ({"reward": [[1.0, np.nan], [1.0, 0.0]]}, "finite"),
        ({"tau": float("inf")}, "finite"),
        ({"reward": [1.0, 0.0]}, "reward must be an"),
        ({"costs": ([0.4, 0.0], [0.4, 0.0, 0.1])}, r"costs\[1\] must have shape \(2,\)"),
        ({"costs": ([0.4, 0.0],)}, "costs must be a pair"),
        ({"grid": 1}, "grid >= 2"),
    ],
)
def test_invalid_input_is_rejected(kwargs, message):
    args = {"reward": COLLAB_R, "costs": COLLAB_C, "tau": 0.5, "eps": EPS} | kwargs
    with pytest.raises(ValueError, match=message):
        find_rqe(**args)
