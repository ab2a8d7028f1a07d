"""`srpo report` on a real registry: tiny matrix runs, stored cross-play results, a held-out zoo.

Every number the tests compare is recomputed here from the stored rows (metrics, cross-play
records), not taken from the report code.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from srpo_core.config import resolve
from srpo_core.errors import UserError
from srpo_core.evaluation.plan import plan_pool, plan_zoo
from srpo_core.evaluation.play import evaluate
from srpo_core.evaluation.pool import stored_pool
from srpo_core.evaluation.seatings import Setup, env_seats
from srpo_core.query import parse_query
from srpo_core.registry import Registry
from srpo_core.report import (
    SECTIONS,
    TIMESTAMP_PREFIX,
    build_report,
    check_report,
    write_report,
)
from srpo_core.report import format_number as f3
from srpo_core.train import train
from srpo_core.zoo.build import MemberQuery, build_zoo
from srpo_core.zoo.games import config_hash, env_config_from
from tests.conftest import Cli

EPISODES = 40
STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SETTINGS = (("ippo", 0.0), ("srpo", 10.0))
FIGURES = {
    "learning_return.png",
    "learning_free_riding.png",
    "crossplay_matrix.png",
    "crossplay_matrix_agent0.png",
    "crossplay_matrix_agent1.png",
    "tp_cp.png",
    "iqm_return.png",
    "profile_return.png",
    "improvement_return.png",
    "iqm_cp.png",
    "profile_cp.png",
    "improvement_cp.png",
    "tau_ablation.png",
}


def _run(reg: Registry, algo: str, tau: float, seed: int, tag: str) -> str:
    config = resolve(
        flags={
            "env": {"name": "matrix"},
            "algo": {"name": algo, "tau": tau},
            "run": {"seed": seed},
        },
        sets=["run.steps=2048", "run.checkpoint_every=1024", "run.eval_episodes=16"],
    )
    return train(config, reg, tags=[tag]).run_id


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Two seeds each of IPPO and SRPO (tau 10) tagged ablation:test, every ordered pair
    played; seed 1 of IPPO also forms a held-out zoo; one more run (ablation:lone) has no
    cross-play results."""
    folder = tmp_path_factory.mktemp("lab")
    url = f"sqlite:///{folder / 'srpo.db'}"
    with Registry(url) as reg:
        ids = [
            _run(reg, algo, tau, seed, "ablation:test") for algo, tau in SETTINGS for seed in (0, 1)
        ]
        lone = _run(reg, "srpo", 1.0, 0, "ablation:lone")
        runs = [reg.get_run(i) for i in ids]
        env_values = runs[0].config["env"]
        seats = env_seats(env_config_from(env_values))
        setup = Setup(env_values, EPISODES, seed=0)
        evaluate(reg, [s for _, _, s in plan_pool(reg, runs, seats)], setup, workers=1)
        zoo, _ = build_zoo(
            reg,
            "heldout",
            env="matrix",
            members=MemberQuery(runs=parse_query(f"run={ids[1]}")),
            held_out=True,
        )
        agents = [r for r in runs if r.id != ids[1]]
        zoo_plan = [s for _, s, _ in plan_zoo(reg, zoo, agents, seats)]
        # Every zoo seating is also a pool seating: nothing new is played.
        assert evaluate(reg, zoo_plan, setup, workers=1).played_episodes == 0
    out = folder / "report"
    _write(url, out, STAMP, ablation="test")
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    return {"url": url, "ids": ids, "lone": lone, "out": out, "written": written, "env": env_values}


def _section(text: str, name: str) -> str:
    return text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def _tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables in ``text``, each without its header and rule."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def _table(text: str) -> list[list[str]]:
    return _tables(text)[0]


def _write(url: str, out: Path, now: datetime, metrics=(), figure_format="png", **selection):
    with Registry(url, create=False) as reg:
        report = build_report(
            reg,
            out=str(out),
            episodes=EPISODES,
            now=now,
            metrics=metrics,
            figure_format=figure_format,
            **selection,
        )
    write_report(report, out)
    return (out / "report.md").read_text()


def _copy(written: dict[str, bytes], out: Path) -> Path:
    out.mkdir()
    for name, data in written.items():
        (out / name).write_bytes(data)
    return out


def test_sections_figures_and_numbers_from_the_stored_records(lab, tmp_path):
    out = _copy(lab["written"], tmp_path / "report")
    text = (out / "report.md").read_text()
    assert check_report(out) == []
    for name in SECTIONS:
        assert f"\n## {name}\n" in text
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text))
    assert linked == FIGURES
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert f"{TIMESTAMP_PREFIX}2026-01-02T03:04:05Z" in text.splitlines()

    with Registry(lab["url"], create=False) as reg:
        runs = {i: reg.get_run(i) for i in lab["ids"]}
        # Runs table: one row per run, ordered by setting then seed.
        rows = _table(_section(text, "Runs"))
        assert [r[0].strip("`") for r in rows] == lab["ids"]
        for row in rows:
            run = runs[row[0].strip("`")]
            wall = (run.ended_at - run.created_at).total_seconds()
            assert row[1:9] == [
                run.algo,
                "0" if run.tau == 0 else "10",
                "0.2",
                str(run.seed),
                str(run.env_steps),
                "finished",
                f"{wall:.1f} s",
                run.git_commit[:12] + ("-dirty" if run.git_commit.endswith("-dirty") else ""),
            ]

        # Learning curves: final eval/return per setting, mean over both seeds and its 95%
        # bootstrap interval, which for two seeds runs from one to the other
        # (test_report_statistics).
        finals = {}
        for run_id in runs:
            frame = reg.metrics(run_id, ["eval/return"])
            finals[run_id] = frame.sort_values("step").iloc[-1]
        learning = {r[0]: r for r in _table(_section(text, "Learning curves"))}
        final_return = {}
        for algo, label in (("ippo", "ippo tau=0"), ("srpo", "srpo tau=10")):
            mine = [finals[i] for i in lab["ids"] if runs[i].algo == algo]
            values = [float(f["value"]) for f in mine]
            final_return[label] = values
            assert learning[label][1:5] == [
                "2",
                str(int(mine[0]["step"])),
                f3(np.mean(values)),
                f"[{f3(min(values))}, {f3(max(values))}]",
            ]

        # Cross-play: cell (i, j) = mean return over the seats of i with j; TP = diagonal.
        records = reg.crossplay_results(
            env_config_hash=config_hash(lab["env"]), episodes=EPISODES, seed=0
        )
        pool = stored_pool(reg, list(runs.values()), records)
    seat_returns = defaultdict(list)
    seat_free = defaultdict(list)
    by_seat = defaultdict(dict)  # the per-seat matrices: each seating apart
    for record in records:
        row = record.agent_ref.split("/")[0]
        (col,) = {p["ref"].split("/")[0] for p in record.partners.values()}
        seat_returns[(row, col)].append(record.metrics["return"])
        seat_free[(row, col)].append(record.metrics["free_riding"])
        by_seat[record.seat][(row, col)] = record.metrics["return"]
    assert pool.by_seat == by_seat and set(by_seat) == {"agent0", "agent1"}
    assert len(seat_returns) == 16 and all(len(v) == 2 for v in seat_returns.values())
    cell = {k: sum(v) / 2 for k, v in seat_returns.items()}
    table = {r[0]: r for r in _table(_section(text, "Cross-play"))}
    run_cp = {}
    for algo, label in (("ippo", "ippo tau=0"), ("srpo", "srpo tau=10")):
        mine = [i for i in lab["ids"] if runs[i].algo == algo]
        tp = [cell[(i, i)] for i in mine]
        cp = [cell[(i, j)] for i in mine for j in lab["ids"] if j != i]
        run_cp[label] = [np.mean([cell[(i, j)] for j in lab["ids"] if j != i]) for i in mine]
        free = [sum(seat_free[(i, i)]) / 2 for i in mine]
        expected = [np.mean(tp), np.std(tp), np.mean(cp), np.std(cp), np.mean(tp) - np.mean(cp)]
        assert table[label][1:] == ["2", *(f3(x) for x in expected), f3(np.mean(free))]
    _check_statistics(_section(text, "Statistics"), final_return, run_cp)
    tau_rows = _table(_section(text, "Tau ablation"))
    assert [(r[1], r[3], r[4]) for r in tau_rows] == [
        ("0", table["ippo tau=0"][2], table["ippo tau=0"][4]),
        ("10", table["srpo tau=10"][2], table["srpo tau=10"][4]),
    ]
    # The held-out zoo has results for three of these runs: its leaderboard is shown.
    board = _section(text, "Leaderboard")
    assert "### Zoo `heldout`" in board
    groups, agents = _tables(board)
    assert {r[1] for r in agents} == set(lab["ids"]) - {lab["ids"][1]}
    assert {r[0] for r in groups} == {"ippo", "srpo"}
    assert "regenerate with: `srpo report --ablation test --out " in text


def _check_statistics(section: str, *scores: dict[str, list[float]]) -> None:
    """The statistics section's tables for each score (final eval return, then CP), from
    the scores of the two seeds per method: IQM = mean (fewer than 4 seeds), intervals from
    one seed to the other; P(srpo > ippo) over the 2 x 2 pairs, its interval from the worst
    srpo run against the best ippo run (both drawn twice) to the reverse."""

    def beats(x: float, y: float) -> float:
        return 1.0 if x > y else 0.5 if x == y else 0.0

    tables = _tables(section)
    assert len(tables) == 2 * len(scores)
    blocks = zip(tables[::2], tables[1::2], strict=True)
    for (methods, pairs), score in zip(blocks, scores, strict=True):
        assert [row[0] for row in methods] == ["ippo tau=0", "srpo tau=10"]
        for row in methods:
            values = score[row[0]]
            mean, span = f3(np.mean(values)), f"[{f3(min(values))}, {f3(max(values))}]"
            assert row[1:] == ["2", mean, span, mean, span]
        x, y = score["srpo tau=10"], score["ippo tau=0"]
        p = np.mean([beats(a, b) for a in x for b in y])
        low, high = beats(min(x), max(y)), beats(max(x), min(y))
        assert pairs == [["srpo tau=10", "ippo tau=0", f3(p), f"[{f3(low)}, {f3(high)}]"]]


def test_extra_metric_curves(lab, tmp_path):
    """--metric KEY draws that logged key too: its final mean and interval per setting come
    from the stored metric rows (a key nobody logged is refused: test_report_check)."""
    out = tmp_path / "report"
    key = "eval/agent0/cost"
    text = _write(lab["url"], out, STAMP, ablation="test", metrics=[key])
    assert check_report(out) == []
    assert "(learning_eval_agent0_cost.png)" in text
    assert f"--metric {key} --registry" in text
    rows = {r[0]: r for r in _table(_section(text, "Learning curves"))}
    with Registry(lab["url"], create=False) as reg:
        for algo, label in (("ippo", "ippo tau=0"), ("srpo", "srpo tau=10")):
            values = []
            for run_id in lab["ids"]:
                if reg.get_run(run_id).algo == algo:
                    frame = reg.metrics(run_id, [key]).sort_values("step")
                    values.append(float(frame.iloc[-1]["value"]))
            span = f"[{f3(min(values))}, {f3(max(values))}]"
            assert rows[label][-2:] == [f3(np.mean(values)), span]


def test_regenerating_in_a_new_process_gives_the_same_bytes(lab, tmp_path):
    """The CLI (a real subprocess) rewrites the fixture's report: every figure has the same
    bytes and report.md differs only in its timestamp line."""
    cli = Cli(tmp_path, lab["url"])
    out = lab["out"]
    done = cli("report", "--ablation", "test", "--out", str(out), "--episodes", str(EPISODES))
    assert f"wrote {out / 'report.md'} with {len(FIGURES)} figures" in done.stdout
    again = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(again) == FIGURES | {"report.md"} == set(lab["written"])
    for name in FIGURES:
        assert again[name] == lab["written"][name], name
    first = lab["written"]["report.md"].decode().splitlines()
    second = again["report.md"].decode().splitlines()
    differ = [(a, b) for a, b in zip(first, second, strict=True) if a != b]
    assert len(differ) == 1 and differ[0][0] == f"{TIMESTAMP_PREFIX}2026-01-02T03:04:05Z"
    assert differ[0][1].startswith(TIMESTAMP_PREFIX)

    assert cli("report", "--check", str(out)).returncode == 0
    (out / "tau_ablation.png").unlink()
    bad = cli("report", "--check", str(out), check=False)
    assert bad.returncode == 2 and "missing figure tau_ablation.png" in bad.stderr


@pytest.mark.parametrize(
    ("fmt", "start", "dated"),
    [("svg", b"<?xml", (b"<dc:date>", b"<dc:creator>")), ("pdf", b"%PDF-", (b"/CreationDate",))],
)
def test_svg_and_pdf_figures_are_the_same_bytes_on_rerun(lab, tmp_path, fmt, start, dated):
    """--format svg|pdf: every figure in that format, linked as such, with no date in it and
    the same bytes when written again (SVG ids from a fixed salt, not random)."""
    out = tmp_path / fmt
    text = _write(lab["url"], out, STAMP, figure_format=fmt, ablation="test")
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    stems = {name.rsplit(".", 1)[0] for name in FIGURES}
    assert set(first) == {f"{stem}.{fmt}" for stem in stems} | {"report.md"}
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)) == set(first) - {"report.md"}
    assert f"--format {fmt} --registry" in text
    assert check_report(out) == []
    for name, data in first.items():
        if name != "report.md":
            assert data.startswith(start), name
            assert not any(word in data for word in dated), name
    _write(lab["url"], out, STAMP, figure_format=fmt, ablation="test")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    (out / f"tp_cp.{fmt}").write_bytes(b"\x89PNG\r\n\x1a\n")
    article = "an" if fmt == "svg" else "a"
    assert check_report(out) == [f"figure tp_cp.{fmt} is not {article} {fmt.upper()} file"]


def test_check_report_flags_what_is_missing(lab, tmp_path):
    out = _copy(lab["written"], tmp_path / "report")
    (out / "tp_cp.png").unlink()
    assert check_report(out) == ["missing figure tp_cp.png"]
    (out / "crossplay_matrix.png").write_text("not an image")
    text = (out / "report.md").read_text().replace("## Tau ablation\n", "## Tau\n")
    (out / "report.md").write_text(text)
    assert check_report(out) == [
        "missing section '## Tau ablation'",
        "figure crossplay_matrix.png is not a PNG file",
        "missing figure tp_cp.png",
    ]
    assert check_report(tmp_path / "nowhere") == [f"no report.md in {tmp_path / 'nowhere'}"]


def test_runs_without_cross_play_say_how_to_get_it(lab, tmp_path):
    out = tmp_path / "lone"
    text = _write(lab["url"], out, datetime(2026, 1, 1, tzinfo=UTC), ablation="lone")
    fill = (
        "srpo crossplay --zoo heldout --agents tag=ablation:lone --episodes 40 --seed 0 "
        f"--registry {lab['url']}"
    )
    # One run: no pool to play, which is no gap; the held-out zoo has no result for it.
    assert check_report(out) == [
        f"section 'Leaderboard': 1 run without results against a held-out zoo; fill with: {fill}"
    ]
    assert "these runs have 1: nothing to play" in _section(text, "Cross-play")
    assert "Only one tau (tau=1) among these runs" in _section(text, "Tau ablation")
    board = _section(text, "Leaderboard")
    assert "<!-- srpo:missing section=leaderboard count=1 fill=" in board
    assert (
        "Leaderboard: 1 of 1 finished runs have no stored result against a held-out zoo "
        f"for --episodes 40 --seed 0; fill them with: `{fill}`" in board
    )
    statistics = _section(text, "Statistics")
    assert "Probability of improvement: one method only" in statistics
    with Registry(lab["url"], create=False) as reg:
        frame = reg.metrics(lab["lone"], ["eval/return"]).sort_values("step")
    final = f3(frame["value"].iloc[-1])
    # One seed: the IQM and mean are its score, with nothing to resample.
    assert _table(statistics) == [["srpo", "1", final, "n/a", final, "n/a"]]
    assert _table(_section(text, "Learning curves"))[0][3:5] == [final, "n/a"]
    assert "No scores: no stored cross-play result" in statistics
    assert sorted(p.name for p in out.iterdir()) == [
        "iqm_return.png",
        "learning_free_riding.png",
        "learning_return.png",
        "profile_return.png",
        "report.md",
    ]


def test_zoo_selects_the_agents_with_results(lab, tmp_path):
    out = tmp_path / "zoo"
    text = _write(lab["url"], out, STAMP, zoo="heldout")
    rows = _table(_section(text, "Runs"))
    assert {r[0].strip("`") for r in rows} == set(lab["ids"]) - {lab["ids"][1]}
    assert "Zoo `heldout` (matrix, manifest" in _section(text, "Leaderboard")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"ablation": "test", "env": "matrix"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"env": "chess"}, "unknown env 'chess'"),
        ({"env": "quadratic"}, "no finished quadratic runs"),
        ({"zoo": "nope"}, "no zoo 'nope'"),
    ],
)
def test_bad_selections_are_user_errors(lab, selection, message):
    with Registry(lab["url"], create=False) as reg, pytest.raises(UserError, match=message):
        build_report(reg, out="x", **selection)


def test_cli_bad_input_is_one_line_and_writes_nothing(lab, tmp_path):
    cli = Cli(tmp_path, lab["url"])
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    never = tmp_path / "never"
    for args, message in [
        (["--ablation", "nope", "--out", str(never)], "no runs tagged 'ablation:nope'"),
        (["--ablation", "test", "--out", str(a_file / "sub")], "not a writable directory"),
        (
            ["--ablation", "test", "--out", str(never), "--format", "gif"],
            "--format must be one of png, svg, pdf, got 'gif'",
        ),
    ]:
        proc = cli("report", *args, check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:"), proc.stderr
        assert message in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_settings_ignore_what_does_not_change_training():
    """Seeds, checkpoint/log cadence, eval size and threads do not split a setting; a
    budget does."""
    from srpo_core.registry import RunInfo
    from srpo_core.report.selection import settings

    now = datetime(2026, 1, 1, tzinfo=UTC)

    def run(name: str, seed: int, **run_keys) -> RunInfo:
        config = {"algo": {"name": "srpo", "tau": 10.0}, "run": {"seed": seed, **run_keys}}
        return RunInfo(name, "matrix", "srpo", 10.0, 0.2, seed, config, "h", "0", None,
                       "finished", None, (), "", now, now, now, 0, 0)  # fmt: skip

    same = [run("a", 0, checkpoint_every=0), run("b", 1, checkpoint_every=5, log_every=3)]
    same.append(run("c", 2, eval_episodes=7, threads=2))
    assert settings(same).order == ("srpo",)
    split = settings([*same, run("d", 0, steps=100)])
    assert len(split.order) == 2 and split.keys == ("run.steps",)
