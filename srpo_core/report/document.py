"""The report: Markdown sections and their figures, computed from the registry only.

Nothing is trained or played here: runs, logged metrics, stored cross-play results and zoo
leaderboards are read and drawn. Every input is sorted and every number formatted one way,
so a report regenerated from the same registry is byte-identical apart from the one line
that starts with `TIMESTAMP_PREFIX`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from srpo_core.errors import UserError
from srpo_core.evaluation import leaderboard as lb
from srpo_core.evaluation.pool import PoolMatrix, TpCp, stored_pool, tp_cp
from srpo_core.registry import Registry, RunInfo, ZooInfo
from srpo_core.registry.provenance import package_version
from srpo_core.report import figures
from srpo_core.report import statistics as st
from srpo_core.report.curves import Curve, learning_curves
from srpo_core.report.selection import (
    Selection,
    Settings,
    format_value,
    select,
    settings,
    short_names,
)
from srpo_core.zoo.games import config_hash

REPORT_FILE = "report.md"
SECTIONS = (
    "Runs",
    "Learning curves",
    "Cross-play",
    "Statistics",
    "Tau ablation",
    "Leaderboard",
    "Provenance",
)
"""Every report has these `## ` headings, in this order, even when one only says why it is
empty."""
TIMESTAMP_PREFIX = "- generated at "
"""The one line allowed to differ between two reports of the same registry."""
LEARNING_METRICS = (
    ("eval/return", "learning_return", "eval return"),
    ("eval/free_riding", "learning_free_riding", "eval free-riding degree"),
)
"""(logged key, figure file name without its extension, axis label)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_FORMATS = figures.FORMATS
"""`srpo report --format`: the figures' file type (and the extension of their names)."""
_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
FORMAT_MARKER = "<!-- srpo:report format=2 -->"
"""Written by every report that marks its missing data; `check_report` refuses a report
without it (one written before the markers existed could be incomplete unmarked)."""
MARKER_PREFIX = "<!-- srpo:"
MISSING_SECTIONS = {
    "cross-play": ("Cross-play", "seating", "without a stored result"),
    "tau-ablation": ("Tau ablation", "setting", "without TP or CP"),
    "leaderboard": ("Leaderboard", "run", "without results against a held-out zoo"),
}
"""Marker section slug -> (heading, what its count counts, and how it falls short)."""
_MISSING = re.compile(
    r"<!-- srpo:missing section=(?P<section>[a-z-]+) count=(?P<count>[1-9][0-9]*)"
    r'(?: fill=(?P<fill>"(?:[^"\\]|\\.)*"))? -->'
)


@dataclass(frozen=True)
class Missing:
    """Data a section lacks, written into report.md as one `marker` line: ``count`` things
    (see `MISSING_SECTIONS`) that ``fill`` (a command, when one exists) stores."""

    section: str
    count: int
    fill: str | None = None

    @property
    def marker(self) -> str:
        fill = ""
        if self.fill is not None:
            # JSON string; ">" escaped so that no command can end the comment early.
            fill = " fill=" + json.dumps(self.fill).replace(">", "\\u003e")
        return f"<!-- srpo:missing section={self.section} count={self.count}{fill} -->"

    def problem(self) -> str:
        heading, noun, lack = MISSING_SECTIONS.get(
            self.section, (self.section, "result", "missing")
        )
        fix = f"; fill with: {self.fill}" if self.fill else ""
        return f"section '{heading}': {self.count} {noun}{'s' * (self.count != 1)} {lack}{fix}"


@dataclass(frozen=True)
class Report:
    markdown: str
    figures: dict[str, bytes]
    """File name (relative to the report) -> PNG, SVG or PDF bytes."""


def build_report(
    registry: Registry,
    *,
    ablation: str | None = None,
    env: str | None = None,
    zoo: str | None = None,
    out: str,
    episodes: int = 100,
    seed: int = 0,
    metrics: Sequence[str] = (),
    now: datetime | None = None,
    figure_format: str = "png",
) -> Report:
    """The report of the selected runs (see `selection.select`), in memory; ``metrics``
    are logged keys drawn as learning curves besides `LEARNING_METRICS`; figures in
    ``figure_format`` (one of `FIGURE_FORMATS`)."""
    if figure_format not in FIGURE_FORMATS:
        raise UserError(
            f"--format must be one of {', '.join(FIGURE_FORMATS)}, got {figure_format!r}"
        )
    selection = select(registry, ablation=ablation, env=env, zoo=zoo, episodes=episodes, seed=seed)
    groups = settings(selection.runs)
    _check_metrics(registry, groups, metrics)
    drawn = Drawn(figure_format)
    protocol = Protocol(episodes, seed, registry.shown)
    found = _pools(registry, groups, episodes, seed)
    pools = [pool for _, pool in found if pool.runs]
    stats = _stats(groups, pools)
    envs = sorted({run.env for run in groups.runs})
    keys = ", ".join(f"`{k}`" for k in groups.keys) or "none"
    intro = (
        f"# srpo report: {selection.title}\n\n"
        f"{len(groups.runs)} runs ({', '.join(envs)}) in {len(groups.order)} settings "
        "(a setting is a run config without its seed, checkpoint and logging cadence, "
        f"evaluation size and threads; keys that differ: {keys}). Everything "
        "below is read from the registry: nothing was trained or played to write it.\n"
    )
    command = _command(registry, selection, out, episodes, seed, metrics, figure_format)
    parts = [
        intro,
        _runs_section(groups),
        _learning_section(registry, groups, drawn, metrics),
        _crossplay_section(groups, found, stats, selection, drawn, protocol),
        _statistics_section(registry, groups, pools, drawn),
        _tau_section(groups, stats, drawn, _pool_commands(found, selection, protocol)),
        _leaderboard_section(registry, selection, groups, protocol),
        _provenance_section(registry, groups, command, episodes, seed, now or datetime.now(UTC)),
    ]
    return Report("\n".join(parts), drawn.files)


@dataclass
class Drawn:
    """The figures drawn so far, in one format: `add` names a figure by its stem."""

    format: str
    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, stem: str, draw: Callable[[str], bytes]) -> str:
        """Draw (``draw(format)``) and store one figure; its file name."""
        name = f"{stem}.{self.format}"
        self.files[name] = draw(self.format)
        return name


@dataclass(frozen=True)
class Protocol:
    """What the report was asked for, as the commands that fill its gaps must repeat it."""

    episodes: int
    seed: int
    registry: str

    @property
    def text(self) -> str:
        return f"--episodes {self.episodes} --seed {self.seed}"

    def command(self, *words: str) -> str:
        return shlex.join(
            ["srpo", *words, "--episodes", str(self.episodes), "--seed", str(self.seed)]
            + ["--registry", self.registry]
        )


def _missing_lines(missing: Missing, sentence: str) -> list[str]:
    """The marker, then the sentence that says the same to a reader."""
    return [missing.marker, sentence, ""]


def _check_metrics(registry: Registry, groups: Settings, metrics: Sequence[str]) -> None:
    """Refuse a --metric key that none of the runs logged (a typo, most likely)."""
    if not metrics:
        return
    logged: set[str] = set()
    for run in groups.runs:
        logged.update(registry.final_metrics(run.id))
    for key in metrics:
        if key in logged:
            continue
        close = difflib.get_close_matches(key, sorted(logged), n=3, cutoff=0.6)
        hint = (
            f"close matches: {', '.join(close)}"
            if close
            else f"they logged {len(logged)} keys, none close (`srpo runs show RUN` lists them)"
        )
        raise UserError(f"--metric {key!r}: none of the {len(groups.runs)} runs logged it; {hint}")


# ---- runs ---------------------------------------------------------------------------------


def _runs_section(groups: Settings) -> str:
    swept = [k for k in groups.keys if k not in ("algo.name", "algo.tau", "algo.eps")]
    names = short_names(groups.keys)
    header = ["run", "algorithm", "tau", "eps", *(names[k] for k in swept)]
    header += ["seed", "steps", "status", "wall time", "commit"]
    rows = []
    for run in groups.runs:
        values = groups.values_of[groups.label_of[run.id]]
        rows.append(
            [
                f"`{run.id}`",
                run.algo,
                format_value(run.tau),
                format_value(run.eps),
                *(format_value(values[k]) for k in swept),
                str(run.seed),
                str(run.env_steps),
                run.status,
                _duration(run),
                _short_commit(run.git_commit),
            ]
        )
    return "## Runs\n\n" + _table(header, rows)


def _duration(run: RunInfo) -> str:
    if run.ended_at is None:
        return "n/a"
    seconds = (run.ended_at - run.created_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _short_commit(commit: str | None) -> str:
    if commit is None:
        return "n/a"
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


# ---- learning curves ----------------------------------------------------------------------


def _learning_section(
    registry: Registry, groups: Settings, drawn: Drawn, extra: Sequence[str]
) -> str:
    colours = {label: i for i, label in enumerate(groups.order)}
    lines = ["## Learning curves", ""]
    finals: dict[str, dict[str, Curve]] = {}
    builtin = {key for key, _, _ in LEARNING_METRICS}
    plotted = [*LEARNING_METRICS, *(_metric_figure(k) for k in extra if k not in builtin)]
    for key, file, ylabel in plotted:
        curves = learning_curves(registry, groups, key)
        if not curves:
            if key == "eval/return":
                lines += [
                    "No run logged `eval/return` (runs trained with `run.eval_episodes=0` "
                    "log no evaluations).",
                    "",
                ]
            continue
        name = drawn.add(
            file, lambda fmt, c=curves, y=ylabel: figures.learning_curves(c, colours, y, fmt)
        )
        lines += [f"![{key}: mean across seeds per setting, 95% bootstrap band]({name})", ""]
        for curve in curves:
            finals.setdefault(curve.setting, {})[key] = curve
    if finals:
        keys = [key for key, _, _ in plotted if any(key in c for c in finals.values())]
        header = ["setting", "seeds", "env steps"]
        for key in keys:
            header += [f"final {key}", "95% CI"]
        rows = []
        for label in groups.order:
            if label not in finals:
                continue
            first = next(iter(finals[label].values()))
            row = [label, str(first.seeds), str(int(first.steps[-1]))]
            for key in keys:
                curve = finals[label].get(key)
                row += (
                    ["n/a", "n/a"]
                    if curve is None
                    else [
                        _f(curve.mean[-1]),
                        _ci((curve.low[-1], curve.high[-1]) if curve.seeds > 1 else None),
                    ]
                )
            rows.append(row)
        repeated = sum(max(c.duplicates for c in by_key.values()) for by_key in finals.values())
        lines += [
            "Mean across seeds at each env step all seeds of a setting cover, with its 95% "
            "interval (percentile bootstrap over seeds: 10,000 resamples of whole seeds, seed "
            f"0; one seed: no interval); values at the last such step. {_duplicates(repeated)}",
            "",
            _table(header, rows),
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _metric_figure(key: str) -> tuple[str, str, str]:
    """(key, figure file stem, axis label) of a learning curve asked for by name."""
    return key, "learning_" + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_"), key


DUPLICATE_RULE = "Runs of one setting with the same seed count as one seed (their values averaged)"


def _duplicates(count: int) -> str:
    """The sentence on repeated seeds."""
    if not count:
        return f"{DUPLICATE_RULE}; there are none here."
    return (
        f"{DUPLICATE_RULE}: {count} run{'s' * (count != 1)} here repeat{'s' * (count == 1)} a seed."
    )


# ---- cross-play ---------------------------------------------------------------------------


def _pools(
    registry: Registry, groups: Settings, episodes: int, seed: int
) -> list[tuple[tuple[RunInfo, ...], PoolMatrix]]:
    """One pool per env configuration among the runs (runs of different configs never meet):
    the runs `srpo crossplay --pool` can seat (finished, with a checkpoint) and the stored
    matrix of all the config's runs (its ``runs`` empty where nothing is stored)."""
    by_hash: dict[str, list[RunInfo]] = {}
    for run in groups.runs:
        by_hash.setdefault(config_hash(run.config["env"]), []).append(run)
    pools = []
    for env_hash, runs in by_hash.items():
        records = registry.crossplay_results(env_config_hash=env_hash, episodes=episodes, seed=seed)
        playable = tuple(
            run
            for run in runs
            if run.status == "finished" and registry.latest_checkpoint(run.id) is not None
        )
        pools.append((playable, stored_pool(registry, runs, records)))
    return pools


def _pool_query(
    found: Sequence[tuple[tuple[RunInfo, ...], PoolMatrix]],
    playable: Sequence[RunInfo],
    selection: Selection,
) -> str:
    """The selection's own query where its runs share one env config, else the runs by id."""
    if len(found) == 1:
        return selection.pool_query
    return "run=" + "|".join(sorted(run.id for run in playable))


def _pool_missing(playable: Sequence[RunInfo], pool: PoolMatrix) -> tuple[int, int]:
    """(missing, expected) seatings of the runs that can be played."""
    ids = {run.id for run in playable}
    stored = sum(1 for row, col in pool.returns if row in ids and col in ids)
    return len(ids) ** 2 - stored, len(ids) ** 2


def _pool_commands(
    found: Sequence[tuple[tuple[RunInfo, ...], PoolMatrix]],
    selection: Selection,
    protocol: Protocol,
) -> list[str]:
    """The `srpo crossplay --pool` commands that store what the pools lack."""
    return [
        protocol.command("crossplay", "--pool", _pool_query(found, playable, selection))
        for playable, pool in found
        if len(playable) >= 2 and _pool_missing(playable, pool)[0]
    ]


def _stats(groups: Settings, pools: Sequence[PoolMatrix]) -> dict[str, TpCp]:
    returns = {cell: v for pool in pools for cell, v in pool.returns.items()}
    free = {cell: v for pool in pools for cell, v in pool.free_riding.items()}
    group_of = {run: groups.label_of[run] for pool in pools for run in pool.runs}
    seed_of = {run.id: run.seed for run in groups.runs}
    return tp_cp(returns, group_of, free, seed_of)


def _crossplay_section(
    groups: Settings,
    found: Sequence[tuple[tuple[RunInfo, ...], PoolMatrix]],
    stats: dict[str, TpCp],
    selection: Selection,
    drawn: Drawn,
    protocol: Protocol,
) -> str:
    text = f"{protocol.episodes} episodes per seating, evaluation seed {protocol.seed}"
    lines = ["## Cross-play", ""]
    gaps = []
    for playable, pool in found:
        missing, expected = _pool_missing(playable, pool)
        if missing and len(playable) < 2:
            gaps += [
                f"Cross-play needs two or more finished runs (with a checkpoint) of one env "
                f"config; these runs have {len(playable)}: nothing to play.",
                "",
            ]
        if not missing or len(playable) < 2:
            continue
        fill = protocol.command("crossplay", "--pool", _pool_query(found, playable, selection))
        sentence = (
            f"Cross-play: {missing} of {expected} seatings have no stored result for "
            f"{protocol.text}; fill them with: `{fill}`, then regenerate this report."
        )
        gaps += _missing_lines(Missing("cross-play", missing, fill), sentence)
    unplayable = len(groups.runs) - sum(len(playable) for playable, _ in found)
    if unplayable:
        gaps += [
            f"{unplayable} of {len(groups.runs)} runs are not finished or have no checkpoint: "
            "cross-play leaves them out.",
            "",
        ]
    pools = [pool for _, pool in found if pool.runs]
    if not pools:
        lines += gaps or [f"No cross-play results are stored for these runs ({text}).", ""]
        return "\n".join(lines).rstrip("\n") + "\n"
    lines += gaps
    lines += [
        f"Every ordered pair of runs ({text}): entry (row i, column j) is the mean return "
        "over the seats of run i's policy with run j's policies in every other seat. The "
        "diagonal is the training performance (TP), the rest cross-play performance (CP); "
        "white lines separate settings; grey entries have no stored result. The matrices "
        "after the first keep the seatings apart: run i's policy in one seat only. Runs "
        "are labelled by setting and seed. In the tables, runs of one setting with the same "
        "seed count as one seed (their entries averaged).",
        "",
    ]
    order = {label: i for i, label in enumerate(groups.order)}
    run_labels = _run_labels(groups)
    for index, pool in enumerate(pools):
        stem = "crossplay_matrix" if len(pools) == 1 else f"crossplay_matrix_{index + 1}"
        labels = [run_labels[r] for r in pool.runs]
        setting_index = [order[groups.label_of[r]] for r in pool.runs]
        env = next(run.env for run in groups.runs if run.id == pool.runs[0])
        matrices = [(stem, pool.returns, f"{env}: mean return (diagonal = TP)")]
        if len(pool.by_seat) > 1:  # each seating apart: who idles shows
            matrices += [
                (f"{stem}_{seat}", cells, f"{env}: return, the row run in seat {seat}")
                for seat, cells in pool.by_seat.items()
            ]
        for name, cells, title in matrices:
            values = _matrix(pool.runs, cells)
            file = drawn.add(
                name,
                lambda fmt, v=values, la=labels, si=setting_index, t=title: (
                    figures.crossplay_matrix(v, la, si, t, fmt)
                ),
            )
            lines += [f"![{title}]({file})", ""]
    shown = sum(len(pool.runs) for pool in pools)
    if shown < len(groups.runs):
        lines += [
            f"{len(groups.runs) - shown} of {len(groups.runs)} runs have no stored pool "
            "result and are left out of the matrix.",
            "",
        ]
    bars = [
        figures.Bar(label, s.tp, s.tp_std, s.cp, s.cp_std)
        for label in groups.order
        if (s := stats.get(label)) is not None
    ]
    file = drawn.add("tp_cp", lambda fmt: figures.tp_cp_bars(bars, fmt))
    lines += [f"![TP vs CP per setting, mean ± std]({file})", ""]
    header = ["setting", "seeds", "TP", "TP std", "CP", "CP std", "TP-CP", "free-riding (TP)"]
    rows = [
        [
            label,
            str(s.runs),
            _f(s.tp),
            _f(s.tp_std),
            _f(s.cp),
            _f(s.cp_std),
            _f(s.drop),
            _f(s.free_riding),
        ]
        for label in groups.order
        if (s := stats.get(label)) is not None
    ]
    interval_rows = [
        [label, str(s.runs), *(_ci(v) for v in (s.tp_ci, s.cp_ci, s.drop_ci, s.free_riding_ci))]
        for label in groups.order
        if (s := stats.get(label)) is not None
    ]
    lines += [
        "Per setting: TP over its runs' diagonal entries, CP over their entries with every "
        "other run (both methods pooled as partners); mean and population std of the entries.",
        "",
        _table(header, rows),
        "",
        "95% intervals over seeds (percentile bootstrap of the mean over the setting's runs, "
        "each run one value: its TP, its mean CP, their difference, its free-riding degree; "
        "10,000 resamples, seed 0):",
        "",
        _table(["setting", "runs", "TP", "CP", "TP-CP", "free-riding (TP)"], interval_rows),
    ]
    return "\n".join(lines)


# ---- statistics ---------------------------------------------------------------------------


def _statistics_section(
    registry: Registry, groups: Settings, pools: Sequence[PoolMatrix], drawn: Drawn
) -> str:
    lines = [
        "## Statistics",
        "",
        "Per method (a setting without its env keys) over its seeds, as rliable computes "
        "them (Agarwal et al., NeurIPS 2021): the interquartile mean (IQM: the scores sorted, "
        "int(n/4) dropped at each end, the rest averaged; below 4 seeds it is the mean), the "
        "mean, and their 95% intervals (percentile bootstrap, 10,000 resamples, seed 0; runs "
        "on different env configurations are resampled within their configuration, a "
        "stratified bootstrap; n/a with one seed per configuration); the performance "
        "profile (the fraction of runs scoring above each threshold tau, 95% bands from "
        "2,000 resamples); and the probability of "
        "improvement P(X > Y) (the chance that a run of X scores above a run of Y, ties "
        "counting 1/2: the Mann-Whitney U over n*m, averaged over env configurations; seeds "
        f"of X and Y resampled independently, 10,000 times). {DUPLICATE_RULE}.",
        "",
    ]
    scores = (
        (
            "Final eval return",
            "final eval return",
            "return",
            "each finished run's last logged `eval/return`",
            _final_returns(registry, groups),
            "no finished run logged `eval/return`",
        ),
        (
            "Cross-play return (CP)",
            "CP",
            "cp",
            "each run's mean return with every other run of its cross-play pool (its row "
            "of the cross-play matrix without the diagonal)",
            _run_cp(pools),
            "no stored cross-play result pairs two of these runs",
        ),
    )
    for title, name, slug, what, score_of, none in scores:
        lines += [f"### {title}", ""]
        if not score_of:
            lines += [f"No scores: {none}.", ""]
            continue
        stats = st.score_stats(st.collect(groups, score_of))
        lines += _score_lines(stats, name, slug, what, drawn)
    return "\n".join(lines).rstrip("\n") + "\n"


def _final_returns(registry: Registry, groups: Settings) -> dict[str, float]:
    """Finished run id -> its last logged eval/return (the last write of a step wins)."""
    out = {}
    for run in groups.runs:
        if run.status != "finished":
            continue
        frame = registry.metrics(run.id, ["eval/return"]).dropna(subset=["value"])
        if len(frame):
            frame = frame.drop_duplicates("step", keep="last").sort_values("step")
            out[run.id] = float(frame["value"].iloc[-1])
    return out


def _run_cp(pools: Sequence[PoolMatrix]) -> dict[str, float]:
    """Run id -> its mean return over the other runs of its pool (as `pool.tp_cp` per run)."""
    out = {}
    for pool in pools:
        for run in pool.runs:
            values = [v for (row, col), v in pool.returns.items() if row == run and col != run]
            if values:
                out[run] = float(np.mean(values))
    return out


def _score_lines(stats: st.ScoreStats, name: str, slug: str, what: str, drawn: Drawn) -> list[str]:
    scores = stats.scores
    colour = {method: i for i, method in enumerate(scores.methods)}
    several = any(row.tasks > 1 for row in stats.rows)
    header = ["method", "seeds", *(["env configs"] * several)]
    header += ["IQM", "IQM 95% CI", "mean", "mean 95% CI"]
    rows = [
        [
            row.method,
            str(row.seeds),
            *([str(row.tasks)] * several),
            _f(row.iqm),
            _ci(row.iqm_ci),
            _f(row.mean),
            _ci(row.mean_ci),
        ]
        for row in stats.rows
    ]
    repeated = (
        f" {scores.duplicates} run{'s' * (scores.duplicates != 1)} repeating a seed of "
        "its setting counted once."
        if scores.duplicates
        else ""
    )
    lines = [f"Score: {what}.{repeated}", "", _table(header, rows)]
    panels = [
        (
            f"IQM ({name})",
            [_interval(r.method, r.iqm, r.iqm_ci, colour[r.method]) for r in stats.rows],
        ),
        (
            f"mean ({name})",
            [_interval(r.method, r.mean, r.mean_ci, colour[r.method]) for r in stats.rows],
        ),
    ]
    file = drawn.add(f"iqm_{slug}", lambda fmt: figures.intervals(panels, fmt=fmt))
    lines += [f"![IQM and mean per method with 95% intervals ({name})]({file})", ""]
    profile = [
        figures.ProfileLine(p.method, p.fraction, p.low, p.high, colour[p.method])
        for p in stats.profiles
    ]
    file = drawn.add(
        f"profile_{slug}",
        lambda fmt: figures.performance_profile(
            stats.taus, profile, f"score threshold tau ({name})", fmt
        ),
    )
    lines += [f"![performance profile ({name}), 95% bands]({file})", ""]
    if not stats.improvements:
        lines += ["Probability of improvement: one method only, nothing to compare.", ""]
        return lines
    several = any(i.tasks > 1 for i in stats.improvements)
    header = ["X", "Y", *(["env configs"] * several), "P(X > Y)", "95% CI"]
    rows = [
        [i.x, i.y, *([str(i.tasks)] * several), _f(i.probability), _ci(i.ci)]
        for i in stats.improvements
    ]
    items = [
        _interval(f"P({i.x} > {i.y})", i.probability, i.ci, colour[i.x]) for i in stats.improvements
    ]
    file = drawn.add(
        f"improvement_{slug}",
        lambda fmt: figures.intervals(
            [("P(X > Y)", items)], reference=0.5, limits=(-0.03, 1.03), fmt=fmt
        ),
    )
    lines += [
        f"Probability of improvement of each method X over {stats.baseline} Y "
        "(0.5: neither tends to score higher):",
        "",
        _table(header, rows),
        f"![probability of improvement ({name}), 95% intervals]({file})",
        "",
    ]
    return lines


def _interval(
    label: str, value: float, interval: tuple[float, float] | None, colour: int
) -> figures.Interval:
    low, high = (value, value) if interval is None else interval
    return figures.Interval(label, value, low, high, colour)


# ---- tau ablation -------------------------------------------------------------------------


def _tau_section(
    groups: Settings, stats: dict[str, TpCp], drawn: Drawn, fills: Sequence[str]
) -> str:
    lines = ["## Tau ablation", ""]
    taus = sorted({run.tau for run in groups.runs})
    if len(taus) < 2:
        only = format_value(taus[0])
        lines.append(f"Only one tau (tau={only}) among these runs: nothing to plot against tau.")
        return "\n".join(lines) + "\n"
    lacking = [
        label
        for label in groups.order
        if (s := stats.get(label)) is None or s.tp is None or s.cp is None
    ]
    if lacking and fills:
        fill = " && ".join(fills)
        sentence = (
            f"Tau ablation: {len(lacking)} of {len(groups.order)} settings have no TP or no CP "
            f"(missing cross-play results); fill them with: `{fill}`, then regenerate this "
            "report."
        )
        lines += _missing_lines(Missing("tau-ablation", len(lacking), fill), sentence)
    if not stats:
        lines.append(
            "CP, TP and the free-riding degree against tau need cross-play results; "
            "see the cross-play section for the command that stores them."
        )
        return "\n".join(lines) + "\n"
    tau_of = {groups.label_of[run.id]: run.tau for run in groups.runs}
    labelled = [label for label in groups.order if label in stats]
    line_keys = [k for k in groups.keys if k not in ("algo.tau", "algo.name")]
    names = short_names(groups.keys)

    def line_label(label: str, keys: list[str]) -> str:
        values = groups.values_of[label]
        return " ".join(f"{names[k]}={format_value(values[k])}" for k in keys) or "all runs"

    points = [(line_label(s, line_keys), tau_of[s]) for s in labelled]
    if len(set(points)) < len(points) and "algo.name" in groups.keys:
        line_keys = ["algo.name", *line_keys]
        points = [(line_label(s, line_keys), tau_of[s]) for s in labelled]
    by_line: dict[str, list[tuple[float, str]]] = {}
    for (line, tau), label in zip(points, labelled, strict=True):
        by_line.setdefault(line, []).append((tau, label))
    lines_drawn = []
    rows = []
    for line, members in by_line.items():
        members.sort()
        chosen = [stats[label] for _, label in members]
        lines_drawn.append(
            figures.TauLine(
                label=line,
                taus=tuple(t for t, _ in members),
                tp=tuple(s.tp for s in chosen),
                tp_std=tuple(s.tp_std for s in chosen),
                cp=tuple(s.cp for s in chosen),
                cp_std=tuple(s.cp_std for s in chosen),
                free_riding=tuple(s.free_riding for s in chosen),
            )
        )
        for (tau, _), s in zip(members, chosen, strict=True):
            rows.append(
                [line, format_value(tau), str(s.runs), _f(s.tp), _f(s.cp), _f(s.free_riding)]
            )
    file = drawn.add("tau_ablation", lambda fmt: figures.tau_ablation(lines_drawn, fmt))
    lines += [
        f"![TP, CP and free-riding degree against tau]({file})",
        "",
        "One line per value of the other keys that differ; points are the settings' "
        "cross-play numbers (mean ± std), free-riding is that of the runs with their own "
        "partners.",
        "",
        _table(["line", "tau", "runs", "TP", "CP", "free-riding (TP)"], rows),
    ]
    return "\n".join(lines)


# ---- leaderboard --------------------------------------------------------------------------


def _leaderboard_section(
    registry: Registry, selection: Selection, groups: Settings, protocol: Protocol
) -> str:
    lines = ["## Leaderboard", ""]
    if selection.board is not None:
        return "\n".join(lines) + lb.to_markdown(selection.board, number=_f)
    episodes, seed = protocol.episodes, protocol.seed
    run_ids = {run.id for run in groups.runs}
    envs = sorted({run.env for run in groups.runs})
    held_out = [z for env in envs for z in registry.zoos(env=env) if z.held_out]
    shown = [z for z in held_out if _zoo_has_results(registry, z, run_ids, episodes, seed)]
    boards = [lb.build_leaderboard(registry, z, episodes=episodes, seed=seed) for z in shown]
    finished = {run.id for run in groups.runs if run.status == "finished"}
    covered = {row.run for board in boards for row in board.agents}
    covered |= {registry.get_policy(m.policy_ref).run_id for z in shown for m in z.members}
    without = len(finished - covered)
    if without:
        zoo = (shown or held_out or [None])[0]
        what = (
            f"Leaderboard: {without} of {len(finished)} finished runs have no stored result "
            f"against a held-out zoo for {protocol.text}"
        )
        if zoo is None:
            then = protocol.command("crossplay", "--zoo", "NAME", "--agents", selection.pool_query)
            sentence = (
                f"{what}, and no held-out zoo of {', '.join(envs)} exists. Build one from "
                "other runs with `srpo zoo build NAME --env ENV --runs QUERY --held-out`, "
                f"then evaluate with `{then}`."
            )
            lines += _missing_lines(Missing("leaderboard", without), sentence)
        else:
            fill = protocol.command(
                "crossplay", "--zoo", zoo.name, "--agents", selection.pool_query
            )
            sentence = f"{what}; fill them with: `{fill}`, then regenerate this report."
            lines += _missing_lines(Missing("leaderboard", without, fill), sentence)
    if not boards:
        return "\n".join(lines).rstrip("\n") + "\n"
    for board in boards:
        lines += [f"### Zoo `{board.zoo}`", "", lb.to_markdown(board, number=_f)]
    return "\n".join(lines)


def _zoo_has_results(
    registry: Registry, zoo: ZooInfo, run_ids: set[str], episodes: int, seed: int
) -> bool:
    """Whether one of ``run_ids`` (not itself in the zoo) has a result with the zoo's members,
    as `leaderboard.build_leaderboard` classifies results."""
    members = {(m.policy_ref, m.step) for m in zoo.members}
    member_runs = {registry.get_policy(ref).run_id for ref, _ in members}
    runs = {
        record.agent_run
        for record in registry.crossplay_results(
            env_config_hash=zoo.env_config_hash, episodes=episodes, seed=seed
        )
        if lb.plays_one_member(record, members)
    }
    return bool(runs & (run_ids - member_runs))


# ---- provenance ---------------------------------------------------------------------------


def _provenance_section(
    registry: Registry,
    groups: Settings,
    command: str,
    episodes: int,
    seed: int,
    now: datetime,
) -> str:
    commits = Counter(run.git_commit or "unknown" for run in groups.runs)
    versions = sorted({run.package_version for run in groups.runs})
    commit_text = ", ".join(
        f"`{c}` ({n} run{'s' if n != 1 else ''})" for c, n in sorted(commits.items())
    )
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        "## Provenance",
        "",
        f"- registry: `{registry.shown}`",
        f"- srpo version: {package_version()} (runs trained with {', '.join(versions)})",
        f"- git commits of the runs: {commit_text}",
        f"- cross-play protocol: {episodes} episodes per seating, evaluation seed {seed}",
        f"- regenerate with: `{command}`",
        f"{TIMESTAMP_PREFIX}{stamp}",
        "",
        FORMAT_MARKER,
    ]
    return "\n".join(lines) + "\n"


def _command(
    registry: Registry,
    selection: Selection,
    out: str,
    episodes: int,
    seed: int,
    metrics: Sequence[str],
    figure_format: str,
) -> str:
    flag, value = selection.flag
    words = ["srpo", "report", flag, value, "--out", out, "--episodes", str(episodes)]
    words += ["--seed", str(seed)]
    words += [word for key in metrics for word in ("--metric", key)]
    if figure_format != "png":
        words += ["--format", figure_format]
    words += ["--registry", registry.shown]
    return shlex.join(words)


# ---- writing and checking -----------------------------------------------------------------


def check_out_dir(out: Path) -> None:
    """Refuse, before anything is computed or written, a --out that cannot become a folder
    of files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write the report to {out}: {probe} is not a writable directory")


def write_report(report: Report, out: Path) -> list[Missing]:
    """Write the figures, then report.md; then check the result: UserError if a section or
    figure is missing, else the data its sections lack (see `missing_data`)."""
    check_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in sorted(report.figures.items()):
            (out / name).write_bytes(data)
        (out / REPORT_FILE).write_text(report.markdown, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    problems = _structure_problems(out)
    if problems:
        raise UserError(f"report {out / REPORT_FILE} is incomplete: {'; '.join(problems)}")
    return missing_data((out / REPORT_FILE).read_text(encoding="utf-8"))


def missing_data(markdown: str) -> list[Missing]:
    """The `Missing` markers in a report's Markdown, in document order."""
    found = []
    for line in markdown.splitlines():
        match = _MISSING.fullmatch(line)
        if match is not None:
            fill = match["fill"]
            found.append(
                Missing(
                    match["section"],
                    int(match["count"]),
                    None if fill is None else json.loads(fill),
                )
            )
    return found


def check_report(directory: str | Path) -> list[str]:
    """What is wrong with the report in ``directory`` (empty when nothing): a missing
    report.md, section heading or referenced figure, a link that is not relative, a figure
    whose bytes are not the PNG, SVG or PDF its name says, a malformed or absent srpo
    marker, then each section's missing data (its markers)."""
    problems = _structure_problems(directory)
    file = Path(directory) / REPORT_FILE
    if file.is_file():
        problems += [m.problem() for m in missing_data(file.read_text(encoding="utf-8"))]
    return problems


def _structure_problems(directory: str | Path) -> list[str]:
    folder = Path(directory)
    file = folder / REPORT_FILE
    if not file.is_file():
        return [f"no {REPORT_FILE} in {folder}"]
    text = file.read_text(encoding="utf-8")
    lines = text.splitlines()
    problems = [f"missing section '## {name}'" for name in SECTIONS if f"## {name}" not in lines]
    for target in _IMAGE_LINK.findall(text):
        if "://" in target or target.startswith("/") or ".." in Path(target).parts:
            problems.append(f"figure link {target} is not relative to the report")
            continue
        figure = folder / target
        kind = Path(target).suffix.lower().lstrip(".")
        if not figure.is_file():
            problems.append(f"missing figure {target}")
        elif not _is_figure(figure.read_bytes(), kind):
            problems.append(
                f"figure {target} is not a{'n' * (kind == 'svg')} {kind.upper()} file"
                if kind in FIGURE_FORMATS
                else f"figure {target} is not a PNG, SVG or PDF file"
            )
    if sum(line.startswith(TIMESTAMP_PREFIX) for line in lines) != 1:
        problems.append(f"expected one line starting with '{TIMESTAMP_PREFIX.strip()}'")
    if FORMAT_MARKER not in lines:
        problems.append(
            f"no '{FORMAT_MARKER}' line (written by an older srpo, which did not mark missing "
            "data): regenerate the report"
        )
    for line in lines:
        if (
            line.startswith(MARKER_PREFIX)
            and line != FORMAT_MARKER
            and not _MISSING.fullmatch(line)
        ):
            problems.append(f"malformed srpo marker: {line}")
    return problems


def _is_figure(data: bytes, kind: str) -> bool:
    """Whether ``data`` starts as a file of ``kind`` (a figure format) does."""
    if kind == "png":
        return data.startswith(PNG_SIGNATURE)
    if kind == "pdf":
        return data.startswith(b"%PDF-")
    if kind == "svg":
        head = data[:4096].lstrip()
        return head.startswith((b"<?xml", b"<svg")) and b"<svg" in head
    return False


# ---- formatting ---------------------------------------------------------------------------

DIGITS = 3
"""Significant digits of the report's numbers."""


def format_number(value: Any, digits: int = DIGITS) -> str:
    """``digits`` significant digits, in fixed notation (scientific below 1e-4 and from
    1e6 on); whole numbers keep all their integer digits (1234.5 -> "1234", not "1230");
    "n/a" for None or NaN."""
    if value is None:
        return "n/a"
    x = float(value)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    rounded = float(f"{x:.{digits}g}")
    if rounded == 0:
        return "0"
    exponent = math.floor(math.log10(abs(rounded)))
    if exponent < -4 or exponent >= 6:
        return f"{x:.{digits - 1}e}"
    if exponent >= digits - 1:
        return f"{x:.0f}"
    return f"{rounded:.{digits - 1 - exponent}f}"


_f = format_number


def _ci(interval: tuple[float, float] | None) -> str:
    return "n/a" if interval is None else f"[{_f(interval[0])}, {_f(interval[1])}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _matrix(runs: Sequence[str], cells: dict[tuple[str, str], float]) -> np.ndarray:
    """[row run, column run] values in ``runs`` order; NaN where nothing is stored."""
    values = np.full((len(runs), len(runs)), np.nan)
    for (row, col), value in cells.items():
        values[runs.index(row), runs.index(col)] = value
    return values


def _run_labels(groups) -> dict[str, str]:
    """Each run as its setting and seed ("srpo tau=10 · seed 3"); a seed that two runs of
    a setting share gets each run's id prefix too."""
    seen: dict[tuple[str, int], int] = {}
    for run in groups.runs:
        key = (groups.label_of[run.id], run.seed)
        seen[key] = seen.get(key, 0) + 1
    labels = {}
    for run in groups.runs:
        label = f"{groups.label_of[run.id]} · seed {run.seed}"
        if seen[(groups.label_of[run.id], run.seed)] > 1:
            label += f" · {run.id[:6]}"
        labels[run.id] = label
    return labels
