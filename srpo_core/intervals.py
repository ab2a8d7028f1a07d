"""Confidence intervals over seeds: the percentile bootstrap of a mean.

Each value is one run (one seed); resampling runs with replacement and taking the
2.5th and 97.5th percentiles of the resampled means gives the 95% interval this field
reports (rliable's and marl-eval's stratified bootstrap reduces to it for one task).
Seeded, so a report rebuilt from the same results prints the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 10_000


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
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
