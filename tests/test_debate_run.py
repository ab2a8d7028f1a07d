"""Debate runs in a real registry: policies, checkpoints, resume, evaluation API, and the
`srpo train --env debate` CLI (real subprocess) with its reproducibility and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from srpo_core import checkpoints
from srpo_core import config as cfg
from srpo_core.debate.evaluate import (
    evaluate_pair,
    evaluate_policies,
    held_out_problems,
    load_debate_policy,
    play_debate_seating,
    untuned,
)
from srpo_core.debate.run import build_trainer
from srpo_core.debate.tiny import make_tiny_model
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.train import resume, train

SETS = [
    "env.batch_size=4",
    "env.max_new_tokens=6",
    "env.rounds=2",
    "env.lora_rank=4",
    "env.generated_max=3",
    "run.eval_episodes=4",
    "ppo.lr=0.01",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    """As `srpo train` (run.threads = 1): a second OpenMP thread fights other processes."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


def _config(tiny: Path, algo: str, *extra: str):
    flags = {
        "env": {"name": "debate"},
        "algo": {"name": algo, "tau": 10.0 if algo == "srpo" else None},
    }
    sets = [f'env.model_dir="{tiny}"', *SETS, "run.steps=12", "run.checkpoint_every=4", *extra]
    return cfg.resolve(flags=flags, sets=sets)


def _final_policies(registry: Registry, run_id: str) -> dict:
    latest = registry.latest_checkpoint(run_id)
    return checkpoints.from_bytes(registry.read_checkpoint(latest))["policies"]


def test_resumed_srpo_run_ends_with_the_uninterrupted_weights(tiny: Path, tmp_path: Path) -> None:
    with Registry(str(tmp_path / "srpo.db")) as registry:
        whole = train(_config(tiny, "srpo"), registry)
        assert whole.env_steps == 16 and whole.hero_samples == 8  # 2 iterations x 2 heroes

        def stop(progress) -> None:
            if progress.env_steps == 8:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train(_config(tiny, "srpo", "run.log_every=1"), registry, on_progress=stop)
        (cut,) = [r for r in registry.list_runs() if r.status == "interrupted"]
        resumed = resume(cut.id, registry)
        assert resumed.status == "finished" and resumed.env_steps == 16
        a, b = _final_policies(registry, whole.run_id), _final_policies(registry, cut.id)
        assert set(a) == {"agent0", "agent1"}
        for role in a:
            assert a[role].keys() == b[role].keys()
            assert all(torch.equal(a[role][k], b[role][k]) for k in a[role])
        assert [c.step for c in registry.checkpoints(whole.run_id)] == [8, 16]
        assert {p.id for p in registry.policies(whole.run_id)} == {
            f"{whole.run_id}/agent0",
            f"{whole.run_id}/agent1",
        }


def test_evaluation_api_rebuilds_the_trained_agents(tiny: Path, tmp_path: Path) -> None:
    with Registry(str(tmp_path / "srpo.db")) as registry:
        config = _config(tiny, "ippo")
        run = train(config, registry)
        a = load_debate_policy(registry, f"{run.run_id}/agent0")
        b = load_debate_policy(registry, f"{run.run_id}/agent1")
    trainer = build_trainer(_config(tiny, "ippo"))
    for role, policy in (("agent0", a), ("agent1", b)):
        trainer.roster.load_adapter_state(trainer.seats[role], policy.adapter)
    problems = trainer.eval_problems
    direct = evaluate_pair(
        trainer.roster,
        (trainer.seats["agent0"], trainer.seats["agent1"]),
        problems,
        rounds=2,
        max_new_tokens=6,
    )
    rebuilt = evaluate_policies(a, b, problems, rounds=2, max_new_tokens=6, seed=5)
    assert rebuilt == direct  # greedy: same texts whatever the seed
    assert rebuilt.metrics()["joint_accuracy"] == run.metrics["eval/joint_accuracy"]
    with_base = evaluate_policies(a, untuned(str(tiny)), problems, rounds=2, max_new_tokens=6)
    assert any(v.abs().sum() > 0 for k, v in a.adapter.items() if "lora_B" in k)  # trained
    assert 0 <= with_base.joint_accuracy <= min(with_base.accuracy)
    assert with_base.accuracy[0] == run.metrics["eval/agent0/untuned_partner/accuracy"]
    assert with_base.joint_accuracy == run.metrics["eval/agent0/untuned_partner/joint_accuracy"]
    # The cross-play hook: agent1 of the run in the second seat, an untuned partner first.
    with Registry(str(tmp_path / "srpo.db"), create=False) as registry:
        seating = play_debate_seating(
            registry,
            agent=f"{run.run_id}/agent1",
            seat="agent1",
            partner=f"untuned:{tiny}",
            env_values=config.to_dict()["env"],
            episodes=len(problems),
            seed=7,
        )
    drawn = held_out_problems("generated", 4, seed=7, generated_max=3)  # as the seating draws
    expected = evaluate_policies(untuned(str(tiny)), b, drawn, rounds=2, max_new_tokens=6)
    assert seating["agent/accuracy"] == expected.accuracy[1]
    assert seating["episode_returns"] == list(expected.both_correct)
    assert seating["agent/return"] == expected.joint_accuracy == sum(expected.both_correct) / 4


def _train_args(tiny: Path, *extra: str) -> list[str]:
    sets = [f"--set={s}" for s in [f'env.model_dir="{tiny}"', *SETS, *extra]]
    return ["train", "--env", "debate", "--algo", "srpo", "--tau", "10", "--eps", "0", *sets]


def test_cli_debate_training_is_reproducible(cli, tiny: Path) -> None:
    args = [*_train_args(tiny, "run.steps=8"), "--json"]
    procs = [cli.popen(*args) for _ in range(2)]  # concurrently: two processes, one registry
    first, second = (json.loads(p.communicate(timeout=300)[0]) for p in procs)
    assert first["status"] == "finished" and first["env_steps"] == 8
    assert first["run_id"] != second["run_id"]
    assert first["metrics"].pop("perf/sps") > 0
    second["metrics"].pop("perf/sps")
    assert first["metrics"] == second["metrics"]
    final = first["metrics"]
    assert "eval/joint_accuracy" in final and "adversary1/kl_partner" in final
    assert 0 <= final["eval/agent1/untuned_partner/joint_accuracy"] <= 1


def test_cli_debate_bad_input(cli, tiny: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n{oops\n')
    (data / "test.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    cases = {
        "no model directory": _train_args(tiny, f'env.model_dir="{missing}"'),
        "train.jsonl:2: not valid JSON": _train_args(tiny, f'env.data_dir="{data}"'),
    }
    procs = {match: cli.popen(*args) for match, args in cases.items()}
    for match, proc in procs.items():
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], lines
    with Registry(cli.env["SRPO_REGISTRY"], create=False) as registry:
        assert registry.list_runs() == []  # the data is read before the run is created


def test_debate_runs_cross_play_through_the_pool_machinery(tiny: Path, tmp_path: Path) -> None:
    """Two debate runs with different LoRA ranks (not part of the game) form a pool: every
    entry is the joint accuracy of the seating, played directly by the debate API."""
    from srpo_core.evaluation.plan import plan_pool
    from srpo_core.evaluation.play import evaluate
    from srpo_core.evaluation.seatings import Setup, env_seats
    from srpo_core.zoo.games import config_hash, env_config_from

    with Registry(str(tmp_path / "srpo.db")) as registry:
        first = train(_config(tiny, "ippo"), registry)
        second = train(_config(tiny, "ippo", "run.seed=1", "env.lora_rank=2"), registry)
        runs = [registry.get_run(first.run_id), registry.get_run(second.run_id)]
        env_values = runs[0].config["env"]
        assert config_hash(env_values) == config_hash(runs[1].config["env"])
        seats = env_seats(env_config_from(env_values))
        assert seats.learning == ("agent0", "agent1")
        plan = plan_pool(registry, runs, seats)
        assert len(plan) == 2 * 2 * 2
        report = evaluate(registry, [s for *_, s in plan], Setup(env_values, 3, seed=2))
        again = evaluate(registry, [s for *_, s in plan], Setup(env_values, 3, seed=2))
        assert again.played_episodes == 0
        row, col, seating = plan[2]  # run 0's agent0 with run 1's agent1
        assert (row.id, col.id, seating.seat) == (first.run_id, second.run_id, "agent0")
        direct = play_debate_seating(
            registry,
            agent=f"{first.run_id}/agent0",
            seat="agent0",
            partner=f"{second.run_id}/agent1",
            env_values=env_values,
            episodes=3,
            seed=2,
        )
    metrics = report.outcomes[2].metrics
    assert metrics["return"] == direct["joint_accuracy"] == metrics["joint_accuracy"]
    assert metrics["episode_returns"] == direct["episode_returns"]


def test_untuned_base_model_is_a_zoo_member(tiny: Path, tmp_path: Path) -> None:
    """The paper's second table through the zoo machinery: a run's agents against a zoo
    holding the untuned base model; each entry is the joint accuracy the debate API gives
    for the same pair. Changing the model's files afterwards stops it from playing."""
    import shutil

    from srpo_core.evaluation.plan import plan_zoo
    from srpo_core.evaluation.play import evaluate
    from srpo_core.evaluation.seatings import Setup, env_seats
    from srpo_core.zoo.build import MemberQuery, build_zoo
    from srpo_core.zoo.games import env_config_from
    from srpo_core.zoo.manifest import freeze_zoo

    base = Path(shutil.copytree(tiny, tmp_path / "base"))
    with Registry(str(tmp_path / "srpo.db")) as registry:
        run = registry.get_run(train(_config(tiny, "ippo"), registry).run_id)
        env_sets = [f"env.{k}={json.dumps(v)}" for k, v in run.config["env"].items()]
        zoo, added = build_zoo(
            registry,
            "untuned",
            env="debate",
            members=MemberQuery(untuned=[str(base)]),
            sets=env_sets,
            held_out=True,
        )
        (member,) = zoo.members
        assert added == 1 and member.policy_ref.startswith("untuned:debate/base-")
        freeze_zoo(registry, "untuned")
        env_values = run.config["env"]
        plan = plan_zoo(registry, zoo, [run], env_seats(env_config_from(env_values)))
        cross = [s for _, s, kind in plan if kind == "cp"]
        assert [s.seat for s in cross] == ["agent0", "agent1"]
        report = evaluate(registry, cross, Setup(env_values, 3, seed=1))
        problems = held_out_problems("generated", 3, seed=1, generated_max=3)
        trained = load_debate_policy(registry, f"{run.id}/agent0")
        direct = evaluate_policies(
            trained, untuned(str(base)), problems, rounds=2, max_new_tokens=6
        )
        assert report.outcomes[0].metrics["return"] == direct.joint_accuracy
        assert report.outcomes[0].metrics["episode_returns"] == list(direct.both_correct)

        (base / "config.json").write_text((base / "config.json").read_text() + " ")
        with pytest.raises(UserError, match="files changed"):
            evaluate(registry, cross, Setup(env_values, 3, seed=2))
