"""Populations: K runs trained as one batched computation, each an ordinary run.

A member's numbers must not depend on who shares its population (exact equality, pop of
1 against pop of 8), and each member must land on its own closed form (srpo-notes
section 4) whatever the others' coefficients.
"""

import json
import signal

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.config import resolve, with_seed
from srpo_core.envs.quadratic.env import rqe_mean
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_policy
from srpo_core.population.members import check_population
from srpo_core.registry import Registry
from srpo_core.train import population_runs, train_population
from tests.test_cli import deterministic_metrics, final_weights, wait_for_checkpoint
from tests.test_matrix import FREE_RIDING_TAU_0, P_C_TAU_10

IPD_SMALL = ["ppo.num_envs=16", "ppo.num_steps=12", "env.rounds=10", "net.recurrent=16"]
IPD_SMALL += ["net.embed=8"]


def member_numbers(url: str, run_id: str):
    return deterministic_metrics(url, run_id), final_weights(url, run_id)


def assert_same_run(url: str, a: str, b: str) -> None:
    metrics_a, weights_a = member_numbers(url, a)
    metrics_b, weights_b = member_numbers(url, b)
    assert metrics_a.equals(metrics_b)
    for role, state in weights_a.items():
        for name, tensor in state.items():
            assert torch.equal(tensor, weights_b[role][name]), (role, name)


@pytest.mark.parametrize(
    "preset, sets",
    [
        ("gridworld-srpo", []),
        ("gridworld-ippo", ["ppo.minibatches=4", "ppo.norm_adv=true", "ppo.anneal_lr=true"]),
        ("quadratic", ["algo.name='srpo'", "algo.tau=1.0", "ppo.num_envs=64"]),
        ("tag-srpo", ["env.backend='vectorized'", "ppo.num_envs=4", "ppo.num_steps=32"]),
        # random starts and a shaping weight that fades within the run: each member's own
        # episode seeds and its own clock
        (
            "overcooked-srpo",
            [
                "env.backend='torch'",
                "env.random_start=true",
                "env.horizon=50",
                "env.shaped_anneal_steps=2000",
                "ppo.num_envs=2",
                "ppo.num_steps=64",
            ],
        ),
        # a convolutional torso on the lossless grid: each member's convolutions its own
        (
            "overcooked-ippo",
            [
                "env.backend='torch'",
                "env.obs='lossless'",
                "net.conv=[4]",
                "env.horizon=50",
                "ppo.num_envs=4",
                "ppo.num_steps=128",
            ],
        ),
        # recurrent learners against the mixed pool: episodes cut by rollouts (memory carried),
        # PPO's epochs over each member's own env columns
        ("ipd-mixed", [*IPD_SMALL, "ppo.epochs=2", "ppo.minibatches=4", "ppo.anneal_lr=true"]),
    ],
)
def test_a_member_trains_the_same_alone_and_among_eight(registry_url, preset, sets):
    base = resolve(
        presets=[preset],
        sets=[*sets, "run.steps=6144", "run.log_every=2", "run.eval_episodes=16"],
    )
    with Registry(registry_url) as reg:
        alone = train_population([with_seed(base, 3)], reg)[0].run_id
        among = train_population([with_seed(base, s) for s in range(8)], reg)[3].run_id
        assert reg.get_run(among).seed == 3
    assert_same_run(registry_url, alone, among)


def test_srpo_heroes_updating_side_by_side_change_nothing(registry_url):
    # Independent SRPO heroes update in threads (run.parallel_updates): the same numbers as
    # one after the other, with several minibatches so that every update draws from its RNG.
    def member(parallel: bool) -> str:
        sets = [
            "run.steps=6144",
            "ppo.minibatches=4",
            f"run.parallel_updates={str(parallel).lower()}",
        ]
        base = resolve(presets=["gridworld-srpo"], sets=sets)
        return train_population([with_seed(base, s) for s in (1, 2)], reg)[1].run_id

    with Registry(registry_url) as reg:
        runs = [member(False), member(True)]
    assert_same_run(registry_url, *runs)


def test_members_are_ordinary_runs_tagged_with_their_population(registry_url):
    base = resolve(presets=["gridworld-srpo"], sets=["run.steps=2048", "run.eval_episodes=4"])
    with Registry(registry_url) as reg:
        results = train_population([with_seed(base, s) for s in (4, 9)], reg, tags=["mine"])
        runs = [reg.get_run(r.run_id) for r in results]
        assert [r.seed for r in runs] == [4, 9] and all(r.status == "finished" for r in runs)
        population = runs[0].tags[1]
        assert population.startswith("population:") and runs[1].tags == ("mine", population)
        # the stored config is the one a solo run of that seed would store
        assert runs[1].config == with_seed(base, 9).to_dict() | {"run": runs[1].config["run"]}
        assert runs[1].config["run"]["seed"] == 9
        assert {p.role for p in reg.policies(runs[0].id)} == {"agent0", "agent1"}
        by_id = population_runs(reg, population.partition(":")[2])
        assert [r.id for r in by_id] == [r.id for r in runs]
        assert [r.id for r in population_runs(reg, runs[1].id)] == [r.id for r in runs]


def test_srpo_members_reach_the_rqe_and_ippo_members_free_ride(registry_url):
    """srpo-notes section 4, collaborate/defect with eps 0.2: P(C) = 0.7942 at tau 10 for
    every SRPO member; IPPO members land on the free-riding QRE (most seeds)."""

    def population(algo: str, tau: float) -> list[tuple[float, float]]:
        base = resolve(
            flags={
                "env": {"name": "matrix", "game": "collab-defect"},
                "algo": {"name": algo, "tau": tau, "eps": 0.2},
                "run": {"steps": 300 * 1024 * (2 if algo == "srpo" else 1)},
            },
            sets=["run.log_every=50", "run.eval_episodes=0"],
        )
        with Registry(registry_url) as reg:
            results = train_population([with_seed(base, s) for s in range(3)], reg)
            return [
                tuple(
                    float(load_policy(reg, f"{r.run_id}/agent{i}").distribution(ONE).probs[0, 0])
                    for i in (0, 1)
                )
                for r in results
            ]

    for p0, p1 in population("srpo", 10.0):
        assert abs(p0 - P_C_TAU_10) < 0.05 and abs(p1 - P_C_TAU_10) < 0.05, (p0, p1)
    degrees = [0.4 * abs(p0 - p1) for p0, p1 in population("ippo", 0.0)]
    assert sum(d > 0.2 for d in degrees) >= 2, degrees
    assert max(degrees) == pytest.approx(FREE_RIDING_TAU_0, abs=0.05), degrees


ONE = torch.ones(1, 1)


def test_quadratic_members_with_different_tau_reach_their_own_rqe(registry_url):
    """Members differ only in tau; each lands on target / (3 - tau * eps / 2)."""
    taus = [0.5, 1.0, 1.5]
    base = resolve(
        flags={"env": {"name": "quadratic"}, "algo": {"name": "srpo", "tau": 1.0, "eps": 1.0}},
        sets=["run.log_every=100", "run.eval_episodes=0"],
    )
    configs = []
    for tau in taus:
        config = with_seed(base, 0)
        config.algo.tau = tau
        configs.append(config)
    with Registry(registry_url) as reg:
        results = train_population(configs, reg)
        for tau, result in zip(taus, results, strict=True):
            means = [
                float(load_policy(reg, f"{result.run_id}/{role}").distribution(ONE).mean)
                for role in ("agent0", "agent1")
            ]
            assert sum(means) / 2 == pytest.approx(rqe_mean(1.0, tau, 1.0), rel=0.03), (tau, means)


def test_only_shape_free_keys_may_differ(registry_url, tmp_path):
    base = resolve(presets=["gridworld-ippo"])
    other = with_seed(base, 1)
    other.ppo.num_envs = 16
    with pytest.raises(UserError, match="must share ppo.num_envs"):
        check_population([base, other])
    with pytest.raises(UserError, match="has a trainer of its own"):
        check_population([resolve(presets=["debate-ippo"], sets=[f"env.model_dir='{tmp_path}'"])])
    # a package's env trains alone (a population of one), not among members
    for preset, backend in (("tag-ippo", "mpe2"), ("overcooked-ippo", "package")):
        config = resolve(presets=[preset], sets=[f"env.backend='{backend}'"])
        check_population([config])
        with pytest.raises(UserError, match="backend cannot train as a population: use --set"):
            check_population([config, with_seed(config, 1)])


SMALL = ["--env", "matrix", "--set", "ppo.num_envs=64", "--set", "run.log_every=5"]


def test_seeds_flag_trains_one_population(cli, registry_url):
    runs = cli.json("train", *SMALL, "--seeds", "2..4", "--steps", "640")
    assert [r["status"] for r in runs] == ["finished"] * 3
    with Registry(registry_url, create=False) as reg:
        assert sorted(reg.get_run(r["run_id"]).seed for r in runs) == [2, 3, 4]
    out = cli("train", *SMALL, "--seeds", "2", "--steps", "640").stdout
    assert "population " in out and out.count(" finished: 640 env steps") == 2
    progress = [line for line in out.splitlines() if "640/640 steps (100%)" in line]
    assert len({line.split()[1] for line in progress}) == 2  # a progress line per member


IPD_CLI = ["--env", "ipd", *(x for s in IPD_SMALL for x in ("--set", s))]


@pytest.mark.parametrize(
    "args",
    [
        [*SMALL, "--algo", "srpo", "--tau", "10", "--eps", "0.2", "--steps", "20000"],
        # recurrent learners: their memories, the partner pool and its generators too
        [*IPD_CLI, "--set", "run.eval_episodes=4", "--steps", "9600"],
    ],
    ids=["matrix-srpo", "ipd-recurrent"],
)
def test_population_resumes_bit_for_bit_after_sigkill(cli, registry_url, args):
    args = [*args, "--seeds", "5,6", "--set", "run.checkpoint_every=3200"]
    proc = cli.popen("train", *args, "--json")
    run_id = wait_for_checkpoint(registry_url, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = cli.json("train", "--resume", run_id)
    assert [r["status"] for r in resumed] == ["finished", "finished"]
    fresh = cli.json("train", *args)
    with Registry(registry_url, create=False) as reg:
        seeds = {r["run_id"]: reg.get_run(r["run_id"]).seed for r in [*resumed, *fresh]}
    for old in resumed:
        twin = next(r for r in fresh if seeds[r["run_id"]] == seeds[old["run_id"]])
        assert_same_run(registry_url, old["run_id"], twin["run_id"])
        with Registry(registry_url, create=False) as reg:
            steps = [c.step for c in reg.checkpoints(old["run_id"])]
        assert steps == sorted(set(steps)) and steps[-1] == old["env_steps"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0..x"], "--seeds expects N, A..B or a comma list"),
        (["--seeds", "3", "--seed", "1"], "give --seed or --seeds, not both"),
        (["--seeds", "1,1"], "names a seed twice"),
        (["--seeds", "0..99999999999"], "--seeds names more than 4096 runs"),
        (["--seeds", "-3..1"], "run.seed = -3"),
        (
            ["--env", "debate", "--set", "env.model_dir=.", "--seeds", "2"],
            "env debate has a trainer of its own",
        ),
    ],
)
def test_bad_seeds_are_one_line_and_write_nothing(cli, tmp_path, args, message):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    proc = cli("train", *SMALL[:2], *args, "--registry", url, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert message in proc.stderr
    assert not (tmp_path / "fresh.db").exists()


def test_checkpoint_of_a_member_holds_only_its_slice(registry_url):
    base = resolve(presets=["gridworld-ippo"], sets=["run.steps=1024", "run.eval_episodes=0"])
    with Registry(registry_url) as reg:
        results = train_population([with_seed(base, s) for s in range(3)], reg)
        state = checkpoints.from_bytes(
            reg.read_checkpoint(reg.latest_checkpoint(results[1].run_id))
        )
    runner = state["algo"]["runners"][0]
    assert runner["obs"][0].shape == (8, 8)  # its own 8 envs, not the population's 24
    assert runner["env"]["positions"].shape[0] == 8


def test_bench_population_prints_and_writes_json(cli, tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "--env", "matrix", "--population", "1,3", "--seconds", "0.2"]
    printed = cli(*args, "--rounds", "1", "--out", str(out)).stdout
    assert "population of 3" in printed and "1 (alone)" in printed
    report = json.loads(out.read_text())
    rows = {row["population"]: row for row in report["rows"]}
    assert set(rows) == {1, 3} and rows[3]["members"] == 3
    assert rows[3]["steps_per_second_per_member"] * 3 == pytest.approx(
        rows[3]["steps_per_second"], rel=1e-3
    )
    assert rows[3]["amortised_run_seconds"] == pytest.approx(  # rounded to 0.1 s
        report["run_steps"] / rows[3]["steps_per_second"], abs=0.06
    )
