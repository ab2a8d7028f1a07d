"""The report's statistics (srpo_core.intervals, report.statistics, report.curves) against
cases computed by hand, against scipy, and against numbers printed by rliable itself.

The rliable numbers come from rliable 1.2.0 installed in a throwaway virtual environment
(arch 7.2.0, pandas 2.3.3 - rliable does not import with pandas 3 -, numpy 2.4.6, scipy
1.17.1, Python 3.11), with ``np.random.seed(0)`` before each call (rliable's bootstrap draws
from numpy's global generator):

    from rliable import library as rly, metrics
    metrics.aggregate_iqm(A); metrics.aggregate_mean(A)
    rly.get_interval_estimates({"A": A}, lambda s: np.array(
        [metrics.aggregate_iqm(s), metrics.aggregate_mean(s)]), reps=50000)
    rly.create_performance_profile({"A": A}, TAUS, reps=50000)
    metrics.probability_of_improvement(A, B)
    rly.get_interval_estimates({"A,B": [A, B]}, metrics.probability_of_improvement, reps=50000)

Point estimates must match exactly. Intervals are Monte Carlo estimates from other random
draws (and rliable's 50,000 resamples against our 10,000 / 2,000), so they are compared
within about one step of the statistic's lattice of possible values.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from srpo_core import intervals
from srpo_core.intervals import (
    bootstrap_bands,
    bootstrap_ci,
    estimate,
    improvement_ci,
    iqm,
    iqm_statistic,
    mean_statistic,
    probability_of_improvement,
    profile_statistic,
)
from srpo_core.registry import RunInfo
from srpo_core.report import format_number
from srpo_core.report.curves import learning_curves
from srpo_core.report.selection import settings
from srpo_core.report.statistics import collect, score_stats
from srpo_core.zoo.games import config_hash

# Runs x tasks, as rliable takes them.
A = np.array(
    [[12.5, 3.0], [7.0, 4.5], [9.5, 4.5], [15.0, 2.0], [8.0, 6.5],
     [11.0, 5.0], [30.0, 3.5], [6.5, 4.0], [10.0, 1.0], [9.0, 5.5]]
)  # fmt: skip
B = np.array(
    [[7.0, 4.5], [8.5, 2.5], [5.0, 3.0], [12.5, 4.5], [6.0, 2.0],
     [9.5, 0.5], [7.0, 3.5], [4.0, 4.0]]
)  # fmt: skip
TAUS = [0.0, 3.0, 4.5, 7.0, 10.0, 20.0]
RLIABLE = {
    "A": {
        "iqm": 6.6,
        "mean": 7.9,
        "iqm_ci": (5.8, 7.6),
        "mean_ci": (6.225, 10.275),
        "profile": [1.0, 0.85, 0.65, 0.4, 0.2, 0.05],
        "profile_low": [1.0, 0.7, 0.5, 0.25, 0.05, 0.0],
        "profile_high": [1.0, 1.0, 0.8, 0.5, 0.35, 0.15],
    },
    "B": {
        "iqm": 4.8125,
        "mean": 5.25,
        "iqm_ci": (4.0, 5.75),
        "mean_ci": (4.3125, 6.28125),
        "profile": [1.0, 0.75, 0.4375, 0.1875, 0.0625, 0.0],
        "profile_low": [1.0, 0.5625, 0.3125, 0.0625, 0.0, 0.0],
        "profile_high": [1.0, 0.9375, 0.5, 0.375, 0.1875, 0.0],
    },
}
RLIABLE_P_A_OVER_B = 0.725  # per task 0.775 and 0.675
RLIABLE_P_CI = (0.546875, 0.878125)


def _strata(matrix: np.ndarray) -> list[list[float]]:
    return matrix.T.tolist()


# ---- IQM ------------------------------------------------------------------------------------


def test_iqm_drops_a_quarter_at_each_end_as_rliable_and_scipy_do():
    assert iqm([1, 2, 3, 4]) == 2.5  # 1 and 4 dropped
    assert iqm([5, 1, 4, 2, 3]) == 3.0  # int(5/4) = 1 at each end: mean of 2, 3, 4
    assert iqm(range(1, 9)) == 4.5  # 2 at each end: mean of 3..6
    assert iqm([0, 0, 1, 100]) == 0.5  # the outlier is gone
    assert iqm([1, 2, 3]) == 2.0  # below 4 values: the mean
    # No fractional weights: for 6 values int(1.5) = 1 goes at each end, as scipy's
    # trim_mean(x, 0.25) (rliable's aggregate_iqm) does.
    assert iqm([1, 2, 3, 4, 5, 100]) == (2 + 3 + 4 + 5) / 4
    values = np.random.default_rng(3).normal(size=(7, 23))
    for row in values:
        for n in range(1, 24):
            assert iqm(row[:n]) == pytest.approx(trim_mean(row[:n], 0.25), abs=1e-12)


@pytest.mark.parametrize("name", ["A", "B"])
def test_iqm_mean_and_intervals_match_rliable(name):
    ref = RLIABLE[name]
    strata = _strata(A if name == "A" else B)
    point, low, high = estimate(strata, iqm_statistic)
    assert float(point) == pytest.approx(ref["iqm"], abs=1e-12)
    assert (low, high) == pytest.approx(ref["iqm_ci"], abs=0.1)
    point, low, high = estimate(strata, mean_statistic)
    assert float(point) == pytest.approx(ref["mean"], abs=1e-12)
    assert (low, high) == pytest.approx(ref["mean_ci"], abs=0.1)


def test_two_seeds_give_the_interval_from_one_to_the_other():
    # Below 4 seeds the IQM is the mean; resampled means of [1, 3] are 1, 2, 3 with
    # probabilities 1/4, 1/2, 1/4: the 2.5th percentile is 1, the 97.5th 3.
    point, low, high = estimate([[1.0, 3.0]], iqm_statistic)
    assert (float(point), low, high) == (2.0, 1.0, 3.0)
    point, low, high = estimate([[2.5] * 5], iqm_statistic)
    assert (float(point), low, high) == (2.5, 2.5, 2.5)


def test_stratified_bootstrap_resamples_within_each_task():
    # Task 1 scores 0, task 2 scores 1, three runs each: every stratified resample keeps
    # three of each, IQM of [0, 0, 0, 1, 1, 1] = mean of [0, 0, 1, 1] = 0.5: a point.
    assert estimate([[0, 0, 0], [1, 1, 1]], iqm_statistic)[1:] == (0.5, 0.5)
    # Pooled as one task, the number k of ones among 6 draws is Binomial(6, 1/2); the IQM
    # is 0 for k <= 1 (P = 7/64 > 2.5%) and 1 for k >= 5: the interval is [0, 1].
    assert estimate([[0, 0, 0, 1, 1, 1]], iqm_statistic)[1:] == (0.0, 1.0)


def test_every_task_needs_a_run():
    with pytest.raises(ValueError):
        estimate([[1.0], []], iqm_statistic)


# ---- performance profiles -------------------------------------------------------------------


def test_profile_is_the_fraction_strictly_above_each_threshold():
    fraction, low, high = estimate([[1, 2, 3, 4]], profile_statistic([0, 1, 2.5, 4]))
    assert fraction.tolist() == [1.0, 0.75, 0.5, 0.0]
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0
    # Two tasks pool their runs: 3 of 5 runs above 1.5.
    fraction, *_ = estimate([[1, 2, 3], [1, 5]], profile_statistic([1.5]))
    assert fraction.tolist() == [0.6]


@pytest.mark.parametrize("name", ["A", "B"])
def test_profiles_match_rliable(name):
    ref = RLIABLE[name]
    fraction, low, high = estimate(
        _strata(A if name == "A" else B),
        profile_statistic(TAUS),
        resamples=intervals.PROFILE_RESAMPLES,
    )
    assert fraction.tolist() == pytest.approx(ref["profile"], abs=1e-12)
    # One run of B's 16 is 0.0625: within one run of rliable's band.
    assert low.tolist() == pytest.approx(ref["profile_low"], abs=0.07)
    assert high.tolist() == pytest.approx(ref["profile_high"], abs=0.07)


# ---- probability of improvement -------------------------------------------------------------


def test_probability_of_improvement_by_hand():
    assert probability_of_improvement([[3, 4]], [[1, 2]]) == 1.0
    assert probability_of_improvement([[1, 2]], [[3, 4]]) == 0.0
    # Pairs (1,2) 0, (1,3) 0, (2,2) 1/2, (2,3) 0: 0.5 / 4.
    assert probability_of_improvement([[1, 2]], [[2, 3]]) == 0.125
    # 12 pairs: x=1 wins 1/2 (tie with 1), each x=2 wins 1/2 + 1/2 + 1, x=3 wins 3: 7.5 / 12;
    # rliable printed 0.625 too.
    assert probability_of_improvement([[1, 2, 2, 3]], [[2, 2, 1]]) == 0.625
    # Averaged over tasks: 1 on the first, 0 on the second.
    assert probability_of_improvement([[3], [0]], [[1], [5]]) == 0.5
    assert probability_of_improvement([[1.0, 2.0]], [[1.0, 2.0]]) == 0.5
    with pytest.raises(ValueError):
        probability_of_improvement([[1.0]], [[1.0], [2.0]])


def test_improvement_interval_by_hand():
    # P is monotone in each run: its smallest resample value has X's worst run drawn twice and
    # Y's best twice (probability 1/16 > 2.5%), its largest the reverse.
    assert improvement_ci([[1, 2]], [[2, 3]]) == (0.0, 0.5)
    assert improvement_ci([[3, 4]], [[1, 2]]) == (1.0, 1.0)
    assert improvement_ci([[1, 5]], [[2, 3]]) == (0.0, 1.0)


def test_probability_of_improvement_matches_rliable():
    assert probability_of_improvement(_strata(A), _strata(B)) == pytest.approx(
        RLIABLE_P_A_OVER_B, abs=1e-12
    )
    assert probability_of_improvement(_strata(B), _strata(A)) == pytest.approx(
        1 - RLIABLE_P_A_OVER_B, abs=1e-12
    )
    assert improvement_ci(_strata(A), _strata(B)) == pytest.approx(RLIABLE_P_CI, abs=0.01)


# ---- learning-curve bands -------------------------------------------------------------------


def test_bands_by_hand_and_per_step_as_the_bootstrap_of_the_mean():
    low, high = bootstrap_bands(np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 0.0]]))
    assert low.tolist() == [1.0, 5.0, 0.0] and high.tolist() == [3.0, 5.0, 2.0]
    one = np.array([[1.0, 2.0, 4.0]])
    assert [b.tolist() for b in bootstrap_bands(one)] == [[1.0, 2.0, 4.0]] * 2
    # Each step's band is bootstrap_ci of that step's values (the same draws), also across
    # the chunks the steps are computed in.
    values = np.random.default_rng(1).normal(size=(6, 300))
    low, high = bootstrap_bands(values, chunk=128)
    for step in (0, 127, 128, 299):
        assert (low[step], high[step]) == pytest.approx(bootstrap_ci(values[:, step]), abs=1e-12)


def _run(name: str, seed: int, algo: str = "srpo", tau: float = 10.0, **env) -> RunInfo:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    config = {
        "algo": {"name": algo, "tau": tau},
        "env": {"name": "matrix", **env},
        "run": {"seed": seed},
    }
    return RunInfo(name, "matrix", algo, tau, 0.2, seed, config, "h", "0", None,
                   "finished", None, (), "", now, now, now, 0, 0)  # fmt: skip


class _Metrics:
    """A registry that only logs metrics: run id -> (steps, values)."""

    def __init__(self, logged: dict[str, tuple[list[int], list[float]]]) -> None:
        self.logged = logged

    def metrics(self, run_id: str, keys: list[str]) -> pd.DataFrame:
        steps, values = self.logged[run_id]
        return pd.DataFrame({"step": steps, "key": keys[0], "value": values})


def test_curves_count_a_repeated_seed_once():
    runs = [_run("a", 0), _run("b", 1), _run("c", 0)]  # c repeats a's seed
    registry = _Metrics({"a": ([10, 20], [1, 3]), "c": ([10, 20], [3, 5]), "b": ([10, 20], [6, 0])})
    (curve,) = learning_curves(registry, settings(runs), "eval/return")
    # Seed 0 is the mean of a and c: [2, 4]; with seed 1 [6, 0], two seeds span the band.
    assert (curve.seeds, curve.duplicates) == (2, 1)
    assert curve.steps.tolist() == [10, 20]
    assert curve.mean.tolist() == [4.0, 2.0]
    assert curve.low.tolist() == [2.0, 0.0] and curve.high.tolist() == [6.0, 4.0]


# ---- per-method statistics ------------------------------------------------------------------


def test_methods_are_settings_without_env_keys_and_tasks_are_env_configs():
    runs = [
        _run("i1", 0, "ippo", 0.0, payoff=1),
        _run("i2", 1, "ippo", 0.0, payoff=1),
        _run("i3", 0, "ippo", 0.0, payoff=2),
        _run("i4", 0, "ippo", 0.0, payoff=2),  # repeats i3's setting and seed
        _run("s1", 0, payoff=1),
        _run("s2", 1, payoff=1),
        _run("s3", 0, payoff=2),
    ]
    score = {"i1": 1, "i2": 2, "i3": 10, "i4": 12, "s1": 3, "s2": 1.5, "s3": 20}
    scores = collect(settings(runs), score)
    one = config_hash(runs[0].config["env"])
    two = config_hash(runs[2].config["env"])
    assert scores.methods == ("ippo tau=0", "srpo tau=10")
    assert scores.strata["ippo tau=0"] == dict(sorted({one: (1, 2), two: (11,)}.items()))
    assert scores.strata["srpo tau=10"] == dict(sorted({one: (3, 1.5), two: (20,)}.items()))
    assert scores.duplicates == 1

    stats = score_stats(scores)
    ippo, srpo = stats.rows
    assert (ippo.seeds, ippo.tasks) == (3, 2)
    # IQM of [1, 2, 11] (3 values: the mean); task 2's one run is in every resample, task 1
    # gives [1, 1], [1, 2] or [2, 2]: IQMs 13/3, 14/3, 5.
    assert ippo.iqm == pytest.approx(14 / 3)
    assert ippo.iqm_ci == pytest.approx((13 / 3, 5.0))
    # Mean of the task means (1.5 + 11) / 2; resampled: (1 + 11) / 2 to (2 + 11) / 2.
    assert ippo.mean == 6.25 and ippo.mean_ci == (6.0, 6.5)
    # P(srpo > ippo): task 1 3/4 (3 beats 1 and 2, 1.5 beats 1), task 2 1. The interval:
    # task 1 ranges over 0..1 (each extreme with probability 1/16), task 2 stays 1.
    (better,) = stats.improvements
    assert (better.x, better.y, better.tasks) == ("srpo tau=10", "ippo tau=0", 2)
    assert better.probability == 0.875 and better.ci == (0.5, 1.0)
    assert stats.baseline == "each ippo method"
    # Thresholds from 1 - 0.95 to 20 + 0.95 (5% of the range beyond the scores).
    assert stats.taus[0] == pytest.approx(0.05) and stats.taus[-1] == pytest.approx(20.95)
    assert stats.taus[50] == pytest.approx(10.5)
    assert [p.fraction[50] for p in stats.profiles] == pytest.approx([1 / 3, 1 / 3])
    assert [p.fraction[0] for p in stats.profiles] == [1.0, 1.0]
    assert [p.fraction[-1] for p in stats.profiles] == [0.0, 0.0]


def test_without_ippo_every_method_is_compared_with_the_first():
    runs = [_run(f"r{tau}-{seed}", seed, tau=tau) for tau in (1.0, 3.0, 10.0) for seed in (0, 1)]
    scores = collect(settings(runs), {r.id: r.tau + r.seed for r in runs})
    stats = score_stats(scores)
    assert [(i.x, i.y) for i in stats.improvements] == [
        ("srpo tau=3", "srpo tau=1"),
        ("srpo tau=10", "srpo tau=1"),
    ]
    assert [i.probability for i in stats.improvements] == [1.0, 1.0]
    alone = score_stats(collect(settings(runs[:2]), {"r1.0-0": 1.0, "r1.0-1": 2.0}))
    assert alone.improvements == ()
    # One seed per method: the points, but no interval (nothing to resample).
    single = score_stats(collect(settings(runs[::2]), {"r1.0-0": 1.0, "r3.0-0": 2.0}))
    rows = [(r.iqm, r.iqm_ci, r.mean_ci) for r in single.rows]
    assert rows == [(1.0, None, None), (2.0, None, None)]
    assert [(i.probability, i.ci) for i in single.improvements] == [(1.0, None)]


# ---- precision ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.123456, "0.123"),
        (12.3456, "12.3"),
        (123.456, "123"),
        (1234.56, "1235"),
        (0.00123456, "0.00123"),
        (0.5, "0.500"),
        (-0.015, "-0.0150"),
        (9.9996, "10.0"),
        (99.96, "100"),
        (0.0, "0"),
        (-0.0, "0"),
        (2.5e-5, "2.50e-05"),
        (1.5e7, "1.50e+07"),
        (None, "n/a"),
        (float("nan"), "n/a"),
    ],
)
def test_three_significant_digits(value, text):
    assert format_number(value) == text
