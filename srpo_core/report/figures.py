"""The report's figures as PNG, SVG or PDF bytes: headless (no pyplot), byte-reproducible.

Matplotlib's default style (whatever the user's matplotlibrc says), fixed sizes and dpi, and
no dates or software versions in the files' metadata (PNG "Software", SVG "Date" and
"Creator", PDF "CreationDate", "Creator" and "Producer"); SVG element ids come from a fixed
`svg.hashsalt` instead of random UUIDs. The same inputs give the same bytes. Matplotlib is
imported when a figure is drawn, so `srpo report`'s input errors and `--check` stay quick.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from srpo_core.report.curves import Curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
ANNOTATE_MAX_RUNS = 12
"""Larger cross-play matrices leave out the numbers in their cells."""
MARKERS_MAX_POINTS = 30
"""Sparser learning curves mark their points (a single evaluation is a point, not a line)."""
FORMATS = ("png", "svg", "pdf")
_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}
SVG_HASHSALT = "srpo-report"


def _render(size: tuple[float, float], draw: Callable[[Figure], None], fmt: str) -> bytes:
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}")
    with matplotlib.style.context("default"), matplotlib.rc_context(
        {"svg.hashsalt": SVG_HASHSALT}
    ):
        figure = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buffer.getvalue()


def _colour(index: int) -> str:
    return f"C{index % 10}"


def learning_curves(
    curves: Sequence[Curve], colours: dict[str, int], ylabel: str, fmt: str = "png"
) -> bytes:
    """Mean line and its 95% bootstrap band over seeds per setting against env steps."""

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        for curve in curves:
            colour = _colour(colours[curve.setting])
            label = f"{curve.setting} ({curve.seeds} seed{'s' if curve.seeds != 1 else ''})"
            marker = "o" if len(curve.steps) <= MARKERS_MAX_POINTS else None
            ax.plot(curve.steps, curve.mean, color=colour, marker=marker, markersize=3, label=label)
            ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")

    return _render((7.0, 4.2), draw, fmt)


def crossplay_matrix(
    values: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[int],
    title: str,
    fmt: str = "png",
) -> bytes:
    """Rows: agent runs, columns: partner runs (same order); diagonal TP, off-diagonal CP.
    ``groups`` gives each run's setting index: lines separate the settings' blocks."""
    n = len(labels)
    side = max(4.5, 0.45 * n + 3.5)

    def draw(figure: Figure) -> None:
        import matplotlib

        ax = figure.subplots()
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="equal")
        figure.colorbar(image, ax=ax, label="mean return", shrink=0.8)
        ax.set_xticks(range(n), labels, rotation=90, fontsize="small")
        ax.set_yticks(range(n), labels, fontsize="small")
        ax.set_xlabel("partner run")
        ax.set_ylabel("agent run")
        ax.set_title(title, fontsize="medium")
        for i in range(1, n):
            if groups[i] != groups[i - 1]:
                ax.axhline(i - 0.5, color="white", linewidth=2)
                ax.axvline(i - 0.5, color="white", linewidth=2)
        if n <= ANNOTATE_MAX_RUNS:
            _annotate(ax, values)

    return _render((side + 1.5, side), draw, fmt)


def _annotate(ax: Axes, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if len(finite) else 0.0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            colour = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)


@dataclass(frozen=True)
class Bar:
    setting: str
    tp: float | None
    tp_std: float | None
    cp: float | None
    cp_std: float | None


def tp_cp_bars(bars: Sequence[Bar], fmt: str = "png") -> bytes:
    """TP and CP side by side per setting, mean ± std, as in the paper."""
    width = max(5.0, 1.1 * len(bars) + 2.5)

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        x = np.arange(len(bars))
        for offset, name, colour, mean_of, std_of in (
            (-0.2, "TP (own partners)", "C0", lambda b: b.tp, lambda b: b.tp_std),
            (0.2, "CP (other runs)", "C1", lambda b: b.cp, lambda b: b.cp_std),
        ):
            means = [np.nan if mean_of(b) is None else mean_of(b) for b in bars]
            stds = [0.0 if std_of(b) is None else std_of(b) for b in bars]
            ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, color=colour, label=name)
        ax.set_xticks(x, [b.setting for b in bars], rotation=20, ha="right", fontsize="small")
        ax.set_ylabel("mean return")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")

    return _render((width, 4.2), draw, fmt)


@dataclass(frozen=True)
class TauLine:
    label: str
    taus: tuple[float, ...]
    tp: tuple[float | None, ...]
    tp_std: tuple[float | None, ...]
    cp: tuple[float | None, ...]
    cp_std: tuple[float | None, ...]
    free_riding: tuple[float | None, ...]


def tau_ablation(lines: Sequence[TauLine], fmt: str = "png") -> bytes:
    """TP, CP and the free-riding degree against tau (symlog axis, so tau = 0 shows)."""
    positive = [t for line in lines for t in line.taus if t > 0]
    threshold = min(positive) if positive else 1.0

    def series(values: tuple[float | None, ...]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    def draw(figure: Figure) -> None:
        axes = figure.subplots(1, 3)
        panels = (
            ("TP (own partners)", lambda li: li.tp, lambda li: li.tp_std),
            ("CP (other runs)", lambda li: li.cp, lambda li: li.cp_std),
            ("free-riding degree (TP)", lambda li: li.free_riding, None),
        )
        for ax, (title, mean_of, std_of) in zip(axes, panels, strict=True):
            for index, line in enumerate(lines):
                errors = None if std_of is None else np.nan_to_num(series(std_of(line)))
                ax.errorbar(
                    line.taus,
                    series(mean_of(line)),
                    yerr=errors,
                    marker="o",
                    capsize=3,
                    color=_colour(index),
                    label=line.label,
                )
            ax.set_xscale("symlog", linthresh=threshold)
            ax.set_xlabel("tau")
            ax.set_title(title, fontsize="medium")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("mean return")
        axes[0].legend(fontsize="small")

    return _render((12.0, 3.8), draw, fmt)


# ---- statistics (rliable's plots) -----------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    label: str
    value: float
    low: float
    high: float
    colour: int


def intervals(
    panels: Sequence[tuple[str, Sequence[Interval]]],
    *,
    reference: float | None = None,
    limits: tuple[float, float] | None = None,
    fmt: str = "png",
) -> bytes:
    """One panel per statistic: a row per label (the first at the top), the point estimate
    as a dot and its 95% interval as a horizontal bar; ``reference`` draws a dashed line."""
    rows = max(len(items) for _, items in panels)
    longest = max(len(item.label) for _, items in panels for item in items)
    width = min(14.0, 0.07 * longest + 3.2 * len(panels) + 0.6)

    def draw(figure: Figure) -> None:
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, (title, items) in zip(axes, panels, strict=True):
            y = np.arange(len(items))[::-1]
            for row, item in zip(y, items, strict=True):
                colour = _colour(item.colour)
                # A thick line, not a bar: bars pin the axis to their left end (no margin).
                ax.plot(
                    [item.low, item.high],
                    [row, row],
                    color=colour,
                    alpha=0.35,
                    linewidth=14,
                    solid_capstyle="butt",
                )
                ax.plot([item.value], [row], "o", color=colour, markersize=6)
            if reference is not None:
                ax.axvline(reference, color="black", linestyle="--", linewidth=0.8)
            if limits is not None:
                ax.set_xlim(*limits)
            ax.set_yticks(y, [item.label for item in items], fontsize="small")
            ax.set_ylim(-0.6, len(items) - 0.4)
            ax.set_title(title, fontsize="medium")
            ax.grid(axis="x", alpha=0.3)

    return _render((width, 0.45 * rows + 1.4), draw, fmt)


@dataclass(frozen=True)
class ProfileLine:
    label: str
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray
    colour: int


def performance_profile(
    taus: np.ndarray, lines: Sequence[ProfileLine], xlabel: str, fmt: str = "png"
) -> bytes:
    """The fraction of runs scoring above each threshold, with its 95% band, per method."""

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        for line in lines:
            colour = _colour(line.colour)
            ax.plot(taus, line.fraction, color=colour, label=line.label, drawstyle="steps-post")
            ax.fill_between(taus, line.low, line.high, color=colour, alpha=0.2, step="post")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of runs with score > tau")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")

    return _render((7.0, 4.2), draw, fmt)
