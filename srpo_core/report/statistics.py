"""Per-method statistics over seeds, as rliable computes them (`srpo_core.intervals`).

A *method* is a setting without its env keys (the algorithm and its hyperparameters); its
runs on different env configurations (games, by `zoo.config_hash`) are *tasks*, the strata of
the stratified bootstrap. A score is one number per run (its final eval return, its mean
cross-play return); runs of one setting with the same seed are one seed: their scores are
averaged before anything else, so a repeated run does not count twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import fmean

import numpy as np

from srpo_core import intervals
from srpo_core.registry import RunInfo
from srpo_core.report.selection import Settings, format_value, short_names
from srpo_core.zoo.games import config_hash

PROFILE_POINTS = 101
PROFILE_MARGIN = 0.05
"""Thresholds of a performance profile: evenly spaced from the lowest to the highest score,
widened by this fraction of their range on both sides (so every profile runs from 1 to 0)."""
BASELINE_ALGO = "ippo"
"""Probability of improvement compares every other method with the methods of this algorithm
(or, without one, with the first method)."""


@dataclass(frozen=True)
class Scores:
    """One score per seed of each (method, task)."""

    methods: tuple[str, ...]
    """Methods with at least one score, in setting order."""
    strata: dict[str, dict[str, tuple[float, ...]]]
    """method -> task (env config hash) -> one score per seed (duplicates averaged)."""
    algo_of: dict[str, str]
    duplicates: int
    """Runs left out as repeats of a (setting, seed) already counted (their scores averaged
    into it)."""


@dataclass(frozen=True)
class MethodRow:
    method: str
    seeds: int
    """Scores counted: one per (task, setting, seed)."""
    tasks: int
    iqm: float
    iqm_ci: tuple[float, float] | None
    """None where no task has two seeds (nothing to resample); likewise below."""
    mean: float
    mean_ci: tuple[float, float] | None


@dataclass(frozen=True)
class Profile:
    method: str
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class Improvement:
    x: str
    y: str
    tasks: int
    """Tasks both methods have scores on (P is averaged over them)."""
    probability: float
    ci: tuple[float, float] | None
    """None where X and Y have one seed on every task."""


@dataclass(frozen=True)
class ScoreStats:
    scores: Scores
    rows: tuple[MethodRow, ...]
    taus: np.ndarray
    profiles: tuple[Profile, ...]
    improvements: tuple[Improvement, ...]
    baseline: str
    """Whom the improvements compare with, in words."""


def method_labels(groups: Settings) -> dict[str, str]:
    """Setting label -> its method's label (the setting's label without env keys)."""
    keys = [k for k in groups.keys if not k.startswith("env.")]
    names = short_names(groups.keys)
    out = {}
    for label in groups.order:
        values = groups.values_of[label]
        run = groups.runs_of(label)[0]
        parts = [str(values.get("algo.name", run.algo))]
        parts += [f"{names[k]}={format_value(values[k])}" for k in keys if k != "algo.name"]
        out[label] = " ".join(parts)
    return out


def collect(groups: Settings, score_of: Mapping[str, float]) -> Scores:
    """The scores of the runs in ``score_of`` (run id -> score), by method and task."""
    method_of = method_labels(groups)
    buckets: dict[tuple[str, str, str, int], list[float]] = defaultdict(list)
    algo_of: dict[str, str] = {}
    run: RunInfo
    for run in groups.runs:
        if run.id not in score_of:
            continue
        setting = groups.label_of[run.id]
        method = method_of[setting]
        algo_of[method] = run.algo
        task = config_hash(run.config["env"])
        buckets[(method, task, setting, run.seed)].append(float(score_of[run.id]))
    strata: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    # groups.runs is ordered by setting then seed: the buckets' order is reproducible.
    for (method, task, _, _), values in buckets.items():
        strata[method][task].append(fmean(values))
    methods = tuple(dict.fromkeys(m for m in method_of.values() if m in strata))
    return Scores(
        methods=methods,
        strata={m: {t: tuple(v) for t, v in sorted(strata[m].items())} for m in methods},
        algo_of=algo_of,
        duplicates=sum(len(values) - 1 for values in buckets.values()),
    )


def score_stats(scores: Scores) -> ScoreStats:
    rows = []
    for method in scores.methods:
        strata = list(scores.strata[method].values())
        iqm, iqm_low, iqm_high = intervals.estimate(strata, intervals.iqm_statistic)
        mean, mean_low, mean_high = intervals.estimate(strata, intervals.mean_statistic)
        varies = any(len(s) > 1 for s in strata)
        rows.append(
            MethodRow(
                method=method,
                seeds=sum(len(s) for s in strata),
                tasks=len(strata),
                iqm=float(iqm),
                iqm_ci=(float(iqm_low), float(iqm_high)) if varies else None,
                mean=float(mean),
                mean_ci=(float(mean_low), float(mean_high)) if varies else None,
            )
        )
    everything = [x for m in scores.methods for s in scores.strata[m].values() for x in s]
    low, high = min(everything), max(everything)
    margin = PROFILE_MARGIN * (high - low) if high > low else 1.0
    taus = np.linspace(low - margin, high + margin, PROFILE_POINTS)
    profiles = []
    for method in scores.methods:
        fraction, f_low, f_high = intervals.estimate(
            list(scores.strata[method].values()),
            intervals.profile_statistic(taus),
            resamples=intervals.PROFILE_RESAMPLES,
        )
        profiles.append(Profile(method, fraction, f_low, f_high))
    pairs, baseline = _pairs(scores)
    improvements = []
    for x, y in pairs:
        tasks = sorted(set(scores.strata[x]) & set(scores.strata[y]))
        if not tasks:
            continue
        xs = [scores.strata[x][t] for t in tasks]
        ys = [scores.strata[y][t] for t in tasks]
        varies = any(len(s) > 1 for s in xs + ys)
        improvements.append(
            Improvement(
                x,
                y,
                len(tasks),
                intervals.probability_of_improvement(xs, ys),
                intervals.improvement_ci(xs, ys) if varies else None,
            )
        )
    return ScoreStats(scores, tuple(rows), taus, tuple(profiles), tuple(improvements), baseline)


def _pairs(scores: Scores) -> tuple[list[tuple[str, str]], str]:
    """(X, Y) pairs for P(X > Y): every other method against each baseline-algorithm method,
    else every method against the first."""
    methods = scores.methods
    base = [m for m in methods if scores.algo_of[m] == BASELINE_ALGO]
    others = [m for m in methods if m not in base]
    if base and others:
        return [(x, y) for y in base for x in others], f"each {BASELINE_ALGO} method"
    if len(methods) < 2:
        return [], ""
    return [(x, methods[0]) for x in methods[1:]], f"the first method ({methods[0]})"
