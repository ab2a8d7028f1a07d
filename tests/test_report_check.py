"""`srpo report` marks the data a section lacks, and `srpo report --check` fails on it.

A real registry: an ablation of two settings (two seeds each) and one partner run in a
held-out zoo, tiny matrix runs; the zoo was played (which also stores each agent with its
own team: the four diagonal seatings of the pool) but `srpo crossplay --pool` was not, as in
the user's report of 12 grey cells of 16 that `--check` passed.
"""

from __future__ import annotations

import shlex
import shutil

import pytest

from srpo_core.query import parse_query
from srpo_core.registry import Registry
from srpo_core.report import FORMAT_MARKER, Missing, check_report, missing_data
from srpo_core.zoo.build import MemberQuery, build_zoo
from tests.conftest import Cli
from tests.test_report import SETTINGS, _run, _section

EPISODES = 20


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The registry folder after `crossplay --zoo` and before `crossplay --pool`; tests
    that play more work on a copy (`lab`)."""
    folder = tmp_path_factory.mktemp("check-lab")
    url = f"sqlite:///{folder / 'srpo.db'}"
    with Registry(url) as reg:
        for algo, tau in SETTINGS:
            for seed in (0, 1):
                _run(reg, algo, tau, seed, "ablation:demo")
        _run(reg, "ippo", 0.0, 7, "ablation:partners")
        build_zoo(
            reg,
            "heldout",
            env="matrix",
            members=MemberQuery(runs=parse_query("tag=ablation:partners")),
            held_out=True,
        )
    cli = Cli(folder, url)
    cli("crossplay", "--zoo", "heldout", "--agents", "tag=ablation:demo", "--episodes", "20")
    return folder


@pytest.fixture
def lab(base, tmp_path):
    folder = tmp_path / "lab"
    shutil.copytree(base, folder)
    url = f"sqlite:///{folder / 'srpo.db'}"
    return {"url": url, "cli": Cli(tmp_path, url), "out": tmp_path / "report"}


def _report(lab, *extra: str, episodes: int = EPISODES):
    out = lab["out"]
    args = ["report", "--ablation", "demo", "--out", str(out), "--episodes", str(episodes)]
    return lab["cli"](*args, *extra), (out / "report.md").read_text()


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:"), proc.stderr
    return proc.stderr


def test_report_before_pool_play_says_what_is_missing_and_check_fails(lab):
    done, text = _report(lab)
    pool = f"srpo crossplay --pool tag=ablation:demo --episodes 20 --seed 0 --registry {lab['url']}"
    crossplay = _section(text, "Cross-play")
    assert (
        f'<!-- srpo:missing section=cross-play count=12 fill="{pool}" -->\n'
        "Cross-play: 12 of 16 seatings have no stored result for --episodes 20 --seed 0; "
        f"fill them with: `{pool}`, then regenerate this report.\n"
    ) in crossplay
    assert "| n/a |" in crossplay  # CP of both settings: no off-diagonal result
    tau = _section(text, "Tau ablation")
    assert f'<!-- srpo:missing section=tau-ablation count=2 fill="{pool}" -->' in tau
    assert "Tau ablation: 2 of 2 settings have no TP or no CP" in tau
    # The zoo was played with every ablation run: the leaderboard is complete.
    assert "srpo:missing" not in _section(text, "Leaderboard")
    assert missing_data(text) == [
        Missing("cross-play", 12, pool),
        Missing("tau-ablation", 2, pool),
    ]
    # Writing an incomplete report is no error; it says so.
    assert (
        f"incomplete: section 'Cross-play': 12 seatings without a stored result; fill with: {pool}"
        in done.stdout
    )

    bad = lab["cli"]("report", "--check", str(lab["out"]), check=False)
    error = _one_error_line(bad)
    assert error == (
        f"error: report in {lab['out']} is incomplete (2 problems): section 'Cross-play': "
        f"12 seatings without a stored result; fill with: {pool}\n"
    )
    assert bad.stdout.count("\n") == 2 and "- section 'Tau ablation': 2 settings" in bad.stdout

    # Run the command the report printed, regenerate: complete, and --check passes.
    words = shlex.split(missing_data(text)[0].fill)
    assert words[0] == "srpo"
    lab["cli"](*words[1:], "--workers", "1")  # one process: the same results, sooner
    done, text = _report(lab)
    assert "srpo:missing" not in text and "incomplete" not in done.stdout
    assert "n/a" not in _section(text, "Cross-play")
    assert check_report(lab["out"]) == []
    ok = lab["cli"]("report", "--check", str(lab["out"]))
    assert "every section, figure and result present" in ok.stdout


def test_results_played_with_other_episodes_do_not_count(lab):
    """The stored results are for 20 episodes: a report asked for 30 lacks all of them,
    pool and zoo alike, and names the commands with --episodes 30."""
    _, text = _report(lab, episodes=30)
    registry = f"--registry {lab['url']}"
    assert missing_data(text) == [
        Missing(
            "cross-play",
            16,
            f"srpo crossplay --pool tag=ablation:demo --episodes 30 --seed 0 {registry}",
        ),
        Missing(
            "tau-ablation",
            2,
            f"srpo crossplay --pool tag=ablation:demo --episodes 30 --seed 0 {registry}",
        ),
        Missing(
            "leaderboard",
            4,
            "srpo crossplay --zoo heldout --agents tag=ablation:demo --episodes 30 --seed 0 "
            + registry,
        ),
    ]
    assert "Leaderboard: 4 of 4 finished runs have no stored result" in text
    error = _one_error_line(lab["cli"]("report", "--check", str(lab["out"]), check=False))
    assert "(3 problems): section 'Cross-play': 16 seatings" in error


def test_metric_typo_is_refused_with_close_matches(lab):
    out = lab["out"]
    args = ["report", "--ablation", "demo", "--out", str(out), "--episodes", str(EPISODES)]
    proc = lab["cli"](*args, "--metric", "eval/retrun", check=False)
    error = _one_error_line(proc)
    assert "--metric 'eval/retrun': none of the 4 runs logged it; close matches:" in error
    assert "eval/return" in error
    assert not out.exists()
    far = _one_error_line(lab["cli"](*args, "--metric", "zzzz", check=False))
    assert "none close (`srpo runs show RUN` lists them)" in far


def test_check_refuses_unmarked_or_malformed_reports(lab):
    """A report without the format marker (written before markers existed) or with a marker
    --check cannot read does not pass as complete."""
    _report(lab)
    file = lab["out"] / "report.md"
    text = file.read_text()
    marked = check_report(lab["out"])
    assert len(marked) == 2
    file.write_text(text.replace(FORMAT_MARKER + "\n", ""))
    problem, *rest = check_report(lab["out"])
    assert problem.startswith(f"no '{FORMAT_MARKER}' line") and rest == marked
    bad = "<!-- srpo:missing section=cross-play count=many -->"
    file.write_text(text + bad + "\n")
    assert check_report(lab["out"]) == [f"malformed srpo marker: {bad}", *marked]


def test_marker_round_trip():
    """The fill command is a JSON string in the marker: quotes, backslashes and '-->' in it
    neither end the comment nor change the command read back."""
    gap = Missing("leaderboard", 3, """srpo crossplay --agents 'a"b\\c-->' --x""")
    assert gap.marker.count("-->") == 1 and gap.marker.endswith(" -->")
    assert missing_data(f"text\n{gap.marker}\nmore") == [gap]
    assert missing_data(Missing("cross-play", 1).marker) == [Missing("cross-play", 1)]
    assert (
        Missing("cross-play", 1).problem()
        == "section 'Cross-play': 1 seating without a stored result"
    )
    # Only whole lines count: a marker quoted inside prose is not one.
    assert missing_data(f"see `{gap.marker}`") == []
