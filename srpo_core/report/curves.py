"""Learning curves from logged metrics: the mean across the seeds of each setting and its 95%
percentile-bootstrap interval at every step (`intervals.bootstrap_bands`: whole seeds
resampled, 10,000 times, seed 0, so a rerun draws the same bands).

Seeds of a setting may log at different env steps (a resumed run, another eval cadence), so
each is interpolated onto one grid: every step any seed logged inside the range all seeds
cover. Seeds logged at the same steps (the usual case) keep exactly those steps and values.
Runs of a setting with the same seed (a repeated run) are one seed: their curves are averaged
first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srpo_core.intervals import bootstrap_bands
from srpo_core.registry import Registry
from srpo_core.report.selection import Settings


@dataclass(frozen=True)
class Curve:
    setting: str
    seeds: int
    """Distinct seeds."""
    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    """The 95% bootstrap interval of the mean over seeds; the mean itself for one seed."""
    duplicates: int = 0
    """Runs that repeated a seed of the setting (averaged into it)."""


def learning_curves(registry: Registry, groups: Settings, key: str) -> list[Curve]:
    """One curve per setting that logged ``key``, in setting order."""
    curves = []
    for label in groups.order:
        series = []
        for run in groups.runs_of(label):
            frame = registry.metrics(run.id, [key]).dropna(subset=["value"])
            if len(frame):
                # The last write of a step wins, as in final_metrics.
                frame = frame.drop_duplicates("step", keep="last").sort_values("step")
                series.append((run.seed, frame["step"].to_numpy(), frame["value"].to_numpy()))
        if not series:
            continue
        low = max(steps[0] for _, steps, _ in series)
        high = min(steps[-1] for _, steps, _ in series)
        grid = np.unique(np.concatenate([s[(s >= low) & (s <= high)] for _, s, _ in series]))
        if not len(grid):
            continue
        by_seed: dict[int, list[np.ndarray]] = {}
        for seed, steps, vals in series:
            by_seed.setdefault(seed, []).append(np.interp(grid, steps, vals))
        values = np.stack([np.mean(rows, axis=0) for _, rows in sorted(by_seed.items())])
        band_low, band_high = bootstrap_bands(values)
        curves.append(
            Curve(
                label,
                len(by_seed),
                grid,
                values.mean(0),
                band_low,
                band_high,
                len(series) - len(by_seed),
            )
        )
    return curves
