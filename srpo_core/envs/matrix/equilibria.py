"""Risk-averse quantal response equilibria (RQE) of two-player matrix games.

Player i's utility is u_i(a_0, a_1) = R(a_0, a_1) - c_i(a_i). With risk aversion tau_i >= 0 and
bounded rationality eps > 0 it values a pair of mixed strategies as

    U_i(x_i, x_j) = min_p E_{a_i~x_i, a_j~p}[u_i] + KL(p || x_j) / tau_i + eps * H(x_i)

(arXiv 2602.21515). U_i is strictly concave in x_i, so each best response BR_i(x_j) is unique,
and an RQE is a mutual best response. tau_i -> 0 gives the logit quantal response equilibrium.

Every equilibrium, unstable ones included, is a fixed point of x_k -> BR_k(BR_o(x_k)) on the
simplex of the player k with fewer actions. For two actions that is a 1-D root search, done
exhaustively by a grid scan; for more it is a multi-start root search from a simplex lattice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq, minimize_scalar, root
from scipy.special import softmax

Vector = np.ndarray


@dataclass(frozen=True)
class Equilibrium:
    """One RQE: each player's mixed strategy, and how far it is from a mutual best response."""

    strategies: tuple[tuple[float, ...], tuple[float, ...]]
    residual: float
    """max_i ||x_i - BR_i(x_j)||_inf."""

    def expected_costs(self, costs: Sequence[ArrayLike]) -> tuple[float, float]:
        """E_{x_i}[c_i] per player: the private effort each one puts in."""
        c0, c1 = (float(np.dot(x, c)) for x, c in zip(self.strategies, costs, strict=True))
        return c0, c1

    def free_riding_degree(self, costs: Sequence[ArrayLike]) -> float:
        """|E[c_0] - E[c_1]|: zero when both players carry the same share of the cost."""
        c0, c1 = self.expected_costs(costs)
        return abs(c0 - c1)

    def to_dict(self, costs: Sequence[ArrayLike] | None = None) -> dict:
        """JSON-ready form; with the game's costs it also reports who pays for the team."""
        out: dict = {"strategies": [list(x) for x in self.strategies], "residual": self.residual}
        if costs is not None:
            out["expected_costs"] = list(self.expected_costs(costs))
            out["free_riding_degree"] = self.free_riding_degree(costs)
        return out


def _worst_case(utility: Vector, x: Vector, opponent: Vector, tau: float) -> Vector:
    """The adversary's reweighting p* ∝ x_j exp(-tau ubar) of the opponent's strategy."""
    with np.errstate(divide="ignore"):  # an opponent action of probability 0 stays at 0
        z = np.log(opponent) - tau * (x @ utility)
    w = np.exp(z - z.max())
    return w / w.sum()


def _risk_value(ubar: Vector, opponent: Vector, tau: float) -> float:
    """min_p E_p[ubar] + KL(p || opponent) / tau, in closed form."""
    mean = opponent @ ubar
    if tau == 0:
        return float(mean)
    w = -tau * (ubar - mean)
    top = w.max()
    # log E[exp(w)] without cancellation when tau is small and without overflow when large.
    if top < 1:
        log_mean = np.log1p(opponent @ np.expm1(w))
    else:
        log_mean = top + np.log(opponent @ np.exp(w - top))
    return float(mean - log_mean / tau)


def best_response(utility: ArrayLike, opponent: ArrayLike, tau: float, eps: float) -> Vector:
    """argmax_x U_i(x, opponent) for the utility table u_i[a_i, a_j] (own action first).

    Newton on the first-order condition eps * z = U p*(x) in logits z (x = softmax z), which
    stays accurate when some probabilities are tiny. Its Jacobian eps I + tau U Cov_p U^T Cov_x
    has eigenvalues >= eps, and its step always raises U_i, so backtracking on the strictly
    concave U_i makes it converge from anywhere; near the answer it takes full steps and
    converges quadratically. It starts from the risk-neutral response, exact at tau = 0.
    """
    utility, opponent = np.asarray(utility, dtype=float), np.asarray(opponent, dtype=float)

    def state(z: Vector) -> tuple[Vector, Vector, Vector, float]:
        log_x = z - z.max()
        log_x -= np.log(np.exp(log_x).sum())
        x = np.exp(log_x)
        p = _worst_case(utility, x, opponent, tau)
        value = _risk_value(x @ utility, opponent, tau) - eps * (x @ log_x)
        return x, p, eps * z - utility @ p, value

    z = utility @ opponent / eps
    x, p, gap, value = state(z)
    for _ in range(200):
        up = utility @ p
        cov_x = np.diag(x) - np.outer(x, x)
        jacobian = (
            eps * np.eye(len(z)) + tau * ((utility * p) @ utility.T - np.outer(up, up)) @ cov_x
        )
        step = -np.linalg.solve(jacobian, gap)
        if np.abs(step).max() < 1e-11 * (1 + np.abs(z).max()):
            break
        gain = -gap @ cov_x @ step  # d/dt U_i(softmax(z + t step)) at t = 0, >= 0
        t = 1.0
        new = state(z + step)
        slack = 1e-13 * (1 + abs(value))  # roundoff: flat stretches must not stall the search
        while new[3] < value + 1e-4 * t * gain - slack and t > 1e-9:
            t /= 2
            new = state(z + t * step)
        z = z + t * step
        x, p, gap, value = new
    else:
        raise RuntimeError(f"best response did not converge (tau={tau}, eps={eps}): too stiff")
    return x


def _validate(
    reward: ArrayLike,
    costs: Sequence[ArrayLike],
    tau: float | Sequence[float],
    eps: float,
) -> tuple[tuple[Vector, Vector], tuple[float, float]]:
    """Per-player utility tables u_i[a_i, a_j] and risk aversions; ValueError on bad input."""
    r = np.asarray(reward, dtype=float)
    if r.ndim != 2 or min(r.shape) < 2:
        raise ValueError(f"reward must be an (n0, n1) table with n0, n1 >= 2, got shape {r.shape}")
    if len(costs) != 2:
        raise ValueError(f"costs must be a pair (c_0, c_1), got {len(costs)} entries")
    c = [np.asarray(ci, dtype=float) for ci in costs]
    for i, ci in enumerate(c):
        if ci.shape != (r.shape[i],):
            raise ValueError(f"costs[{i}] must have shape ({r.shape[i]},), got {ci.shape}")
    taus = (tau, tau) if np.ndim(tau) == 0 else tuple(tau)
    if len(taus) != 2:
        raise ValueError(f"tau must be a number or a pair (tau_0, tau_1), got {tau!r}")
    numbers = [r.ravel(), *c, np.asarray(taus, dtype=float), np.asarray([eps], dtype=float)]
    if not all(np.isfinite(a).all() for a in numbers):
        raise ValueError("reward, costs, tau and eps must all be finite numbers")
    if min(taus) < 0:
        raise ValueError(f"tau must be >= 0 (0 is risk neutral), got {tau!r}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0 (a quantal response needs noise), got {eps}")
    return (r - c[0][:, None], r.T - c[1][:, None]), (float(taus[0]), float(taus[1]))


def _scan(through: Callable[[Vector], Vector], grid: int) -> list[Vector]:
    """Zeros of g(q) = through((q, 1 - q))[0] - q on [0, 1].

    Sign changes between grid points are refined with brentq. A local minimum of |g| without a
    sign change may hide a tangency or two roots in one cell: probe it by extremising g there.
    """

    def g(q: float) -> float:
        return through(np.array([q, 1.0 - q]))[0] - q

    qs = np.linspace(0.0, 1.0, grid + 1)
    gs = np.array([g(q) for q in qs])
    roots = [q for q, v in zip(qs, gs, strict=True) if v == 0.0]
    for a, b, ga, gb in zip(qs[:-1], qs[1:], gs[:-1], gs[1:], strict=True):
        if ga * gb < 0:
            roots.append(brentq(g, a, b, xtol=1e-15))
    for i in range(1, grid):
        a, b, s = qs[i - 1], qs[i + 1], np.sign(gs[i])
        if s * gs[i - 1] > 0 and s * gs[i + 1] > 0 and abs(gs[i]) <= min(abs(gs[[i - 1, i + 1]])):
            dip = minimize_scalar(
                lambda q, s=s: s * g(q), bounds=(a, b), method="bounded", options={"xatol": 1e-14}
            )
            if dip.fun < 0:
                roots += [brentq(g, a, dip.x, xtol=1e-15), brentq(g, dip.x, b, xtol=1e-15)]
            else:  # a tangency, if the residual check accepts it
                roots.append(dip.x)
    return [np.array([q, 1.0 - q]) for q in roots]


def _multistart(through: Callable[[Vector], Vector], n: int, starts: int) -> list[Vector]:
    """Candidate fixed points of `through` from every point of a simplex lattice.

    Solved in logit coordinates (gauge z_0 = 0), where the simplex constraints disappear.
    """

    def gap(z: Vector) -> Vector:
        y = through(softmax(np.r_[0.0, z]))
        return np.log(y[1:] / y[0]) - z

    found = []
    for bars in itertools.combinations(range(starts + n - 1), n - 1):
        counts = np.diff([-1, *bars, starts + n - 1]) - 1  # stars and bars: sums to `starts`
        x = 0.9 * counts / starts + 0.1 / n  # pulled inside the simplex
        sol = root(gap, np.log(x[1:] / x[0]), method="hybr", options={"xtol": 1e-13})
        found.append(softmax(np.r_[0.0, sol.x]))
    return found


def find_rqe(
    reward: ArrayLike,
    costs: Sequence[ArrayLike],
    tau: float | Sequence[float],
    eps: float,
    *,
    grid: int = 200,
    starts: int = 6,
    tol: float = 1e-8,
) -> list[Equilibrium]:
    """All RQE of the game u_i = R - c_i, sorted by x_0[0] descending.

    tau is one risk aversion for both players or a pair (tau_0, tau_1); eps > 0. `grid` is the
    scan resolution when a player has two actions (then the search is exhaustive up to roots
    closer than a grid cell, which the scan also probes); otherwise `starts` sets the lattice
    of starting points, C(starts + n - 1, n - 1) of them. Only points with residual < tol are
    kept, deduplicated to 1e-6. RuntimeError if a best response is too stiff to converge (seen
    only when tau * range(u) and range(u) / eps are both in the thousands).
    """
    utils, taus = _validate(reward, costs, tau, eps)
    if grid < 2 or starts < 1:
        raise ValueError(f"need grid >= 2 and starts >= 1, got grid={grid}, starts={starts}")

    def respond(i: int, x_j: Vector) -> Vector:
        return best_response(utils[i], x_j, taus[i], eps)

    k = 0 if len(utils[0]) <= len(utils[1]) else 1  # search the smaller player's simplex

    def through(x_k: Vector) -> Vector:
        return respond(k, respond(1 - k, x_k))

    n = len(utils[k])
    candidates = _scan(through, grid) if n == 2 else _multistart(through, n, starts)
    found: list[Equilibrium] = []
    for x_k in candidates:
        pair = (x_k, respond(1 - k, x_k))
        x0, x1 = pair if k == 0 else pair[::-1]
        residual = max(np.abs(x0 - respond(0, x1)).max(), np.abs(x1 - respond(1, x0)).max())
        flat = np.r_[x0, x1]
        if residual < tol and all(
            np.abs(flat - np.r_[e.strategies[0], e.strategies[1]]).max() > 1e-6 for e in found
        ):
            found.append(Equilibrium((tuple(map(float, x0)), tuple(map(float, x1))), residual))
    return sorted(found, key=lambda e: -e.strategies[0][0])
