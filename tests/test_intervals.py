"""The percentile bootstrap against cases computed by hand."""

from statistics import fmean

import pytest

from srpo_core.evaluation.pool import tp_cp
from srpo_core.intervals import bootstrap_ci


def test_two_values_span_from_one_to_the_other():
    # resampled means of [a, b]: a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4, so the
    # 2.5th percentile is a and the 97.5th is b
    assert bootstrap_ci([1.0, 3.0]) == (1.0, 3.0)


def test_constant_values_give_a_point_and_empty_gives_none():
    assert bootstrap_ci([2.5] * 7) == (2.5, 2.5)
    assert bootstrap_ci([]) is None


def test_interval_narrows_with_more_seeds_and_holds_the_mean():
    few = bootstrap_ci([0.0, 1.0] * 3)
    many = bootstrap_ci([0.0, 1.0] * 50)
    assert few[0] < many[0] <= 0.5 <= many[1] < few[1]
    # 100 fair coin flips: the normal approximation gives 0.5 +- 1.96 * 0.05
    assert many == pytest.approx((0.402, 0.598), abs=0.015)


def test_a_repeated_seed_counts_once():
    """b2 repeats b's seed: b and b2 become one seed (entries averaged, b-b2 pairs are TP)."""
    returns = {("a", "a"): 10.0, ("b", "b"): 20.0, ("a", "b"): 4.0, ("b", "a"): 6.0}
    returns |= {("b2", "b2"): 22.0, ("b", "b2"): 21.0, ("b2", "b"): 21.0}
    returns |= {("a", "b2"): 8.0, ("b2", "a"): 2.0}
    group_of = {"a": "m", "b": "m", "b2": "m"}
    stats = tp_cp(returns, group_of, seed_of={"a": 0, "b": 1, "b2": 1})["m"]
    assert stats.runs == 2
    assert stats.tp == pytest.approx(fmean([10.0, fmean([20.0, 22.0, 21.0, 21.0])]))
    assert stats.cp == pytest.approx(fmean([fmean([4.0, 8.0]), fmean([6.0, 2.0])]))
    assert stats.cp_ci == (4.0, 6.0)
    assert tp_cp(returns, group_of)["m"].runs == 3  # without seeds: three runs


def test_tp_cp_intervals_are_over_runs():
    returns = {("a", "a"): 10.0, ("b", "b"): 20.0, ("a", "b"): 4.0, ("b", "a"): 6.0}
    stats = tp_cp(returns, {"a": "m", "b": "m"})["m"]
    assert stats.tp_ci == (10.0, 20.0) and stats.cp_ci == (4.0, 6.0)
    assert stats.drop_ci == (6.0, 14.0)  # per run: 10 - 4 and 20 - 6
