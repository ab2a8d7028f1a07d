"""Confidence intervals over seeds, and the aggregate statistics of rliable (Agarwal et al.,
"Deep RL at the edge of the statistical precipice", NeurIPS 2021) that the report shows.

Each value is one run (one seed); resampling runs with replacement and taking the 2.5th
and 97.5th percentiles of the resampled statistic gives the 95% interval this field reports.
Where a method's runs span several tasks (here: env configurations), the bootstrap is
*stratified*: runs are resampled within each task, so every resample keeps each task's
number of runs (rliable's `StratifiedBootstrap`); with one task it is the plain bootstrap.
Percentiles interpolate linearly, as rliable's (arch's) percentile intervals do.

Every function draws from its own generator seeded with ``seed``, so a report rebuilt from the
same results prints the same intervals. The formulas follow rliable 1.2.0 (`metrics.py`,
`library.py`); tests/test_report_statistics.py checks them against numbers it printed. Unlike
rliable, tasks may have different numbers of runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 10_000
PROFILE_RESAMPLES = 2_000
"""rliable's default for performance profiles (one interval per threshold)."""
LEVEL = 0.95

Strata = Sequence[Sequence[float]]
"""A method's scores: one sequence per task, one value per run (seed) of that task."""
Statistic = Callable[[list[np.ndarray]], np.ndarray]
"""Strata as (resamples x runs) arrays -> one value (or one row of values) per resample."""


def bootstrap_ci(
    values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """The percentile-bootstrap interval of the mean of ``values`` (None if empty)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (resamples, data.size))].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_bands(
    values: np.ndarray,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``values`` (seeds x steps): the percentile-bootstrap interval of the
    mean over seeds. One set of resampled seeds serves every step (whole runs are resampled,
    as rliable does for curves), so a band is as smooth as its mean."""
    data = np.asarray(values, dtype=np.float64)
    seeds, steps = data.shape
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, seeds, (resamples, seeds))
    # How often each seed was drawn per resample: the resampled means are one product,
    # laid out steps x resamples so that each step's percentiles read contiguous memory.
    weights = (_counts(picks, seeds) / seeds).T
    tail = (1 - level) / 2 * 100
    low, high = np.empty(steps), np.empty(steps)
    for start in range(0, steps, chunk):
        part = slice(start, start + chunk)
        means = data[:, part].T @ weights
        low[part], high[part] = np.percentile(means, [tail, 100 - tail], axis=1)
    return low, high


# ---- aggregates (rliable's metrics) ---------------------------------------------------------


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """The interquartile mean as rliable defines it (`metrics.aggregate_iqm`, which is
    ``scipy.stats.trim_mean(scores, 0.25, axis=None)``): sort the n values, drop
    int(n / 4) from each end, average the rest. No fractional weights at the edges: for
    n = 5, 6 or 7 one value goes at each end; below 4 values nothing is trimmed (the mean)."""
    return float(_iqm_rows(np.asarray(values, dtype=np.float64).reshape(1, -1))[0])


def _iqm_rows(matrix: np.ndarray) -> np.ndarray:
    n = matrix.shape[1]
    cut = n // 4
    return np.sort(matrix, axis=1)[:, cut : n - cut].mean(1)


def iqm_statistic(parts: list[np.ndarray]) -> np.ndarray:
    """IQM of all runs of all tasks together (rliable: ``trim_mean(..., axis=None)``)."""
    return _iqm_rows(np.concatenate(parts, axis=1))


def mean_statistic(parts: list[np.ndarray]) -> np.ndarray:
    """Mean over tasks of each task's mean over runs (rliable's `aggregate_mean`)."""
    return np.mean([part.mean(1) for part in parts], axis=0)


def profile_statistic(taus: Sequence[float] | np.ndarray) -> Statistic:
    """The score distribution at each threshold: the fraction of all runs (all tasks) whose
    score is strictly above tau (rliable's `run_score_deviation`, its default profile)."""
    grid = np.asarray(taus, dtype=np.float64)

    def fraction(parts: list[np.ndarray]) -> np.ndarray:
        values = np.concatenate(parts, axis=1)
        return np.stack([(values > tau).mean(1) for tau in grid], axis=1)

    return fraction


def estimate(
    strata: Strata,
    statistic: Statistic,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point estimate, low, high) of ``statistic`` with a stratified percentile-bootstrap
    interval: each task's runs are resampled with replacement within that task. Arrays of
    the statistic's shape (one value for IQM or mean, one per tau for a profile)."""
    parts = [np.asarray(s, dtype=np.float64) for s in strata]
    if not parts or any(part.size == 0 for part in parts):
        raise ValueError("every task needs at least one run")
    point = statistic([part.reshape(1, -1) for part in parts])[0]
    rng = np.random.default_rng(seed)
    resampled = [part[rng.integers(0, part.size, (resamples, part.size))] for part in parts]
    stats = statistic(resampled)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail], axis=0)
    return np.asarray(point), low, high


# ---- probability of improvement -------------------------------------------------------------


def _wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """wins[i, j] = 1 if x[i] > y[j], 1/2 if equal, else 0 (the Mann-Whitney kernel)."""
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def probability_of_improvement(x: Strata, y: Strata) -> float:
    """P(X > Y): per task, the Mann-Whitney U statistic of X's runs against Y's over
    n_x * n_y (the chance that a random run of X beats a random run of Y, ties counting
    1/2), averaged over the tasks (rliable's `metrics.probability_of_improvement`)."""
    if len(x) != len(y) or not x:
        raise ValueError("x and y need scores on the same (non-empty) list of tasks")
    per_task = [
        _wins(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).mean()
        for a, b in zip(x, y, strict=True)
    ]
    return float(np.mean(per_task))


def improvement_ci(
    x: Strata, y: Strata, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of `probability_of_improvement`: X's and Y's runs are
    resampled independently, each within its task (rliable's
    `StratifiedIndependentBootstrap`)."""
    if len(x) != len(y) or not x:
        raise ValueError("x and y need scores on the same (non-empty) list of tasks")
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for a, b in zip(x, y, strict=True):
        xs, ys = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        count_x = _counts(rng.integers(0, xs.size, (resamples, xs.size)), xs.size)
        count_y = _counts(rng.integers(0, ys.size, (resamples, ys.size)), ys.size)
        # Mean of wins over the resampled pairs = count_x . wins . count_y / (n_x n_y).
        total += ((count_x @ _wins(xs, ys)) * count_y).sum(1) / (xs.size * ys.size)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(total / len(x), [tail, 100 - tail])
    return float(low), float(high)


def _counts(picks: np.ndarray, size: int) -> np.ndarray:
    """(resamples x size) drawn indices -> how often each index was drawn, per resample."""
    rows = np.repeat(np.arange(picks.shape[0]), picks.shape[1])
    return np.bincount(rows * size + picks.ravel(), minlength=picks.shape[0] * size).reshape(
        picks.shape[0], size
    ).astype(np.float64)
