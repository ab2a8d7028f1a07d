"""Checkpoints of the wrong structure (well-formed torch files with a key missing or extra,
a tensor of another shape or dtype) are refused with one line naming the run, the step and
what differs, by resume, policy loading and cross-play, and leave the registry as it was;
legitimate checkpoints still load and resume exactly."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSpec
from srpo_core.checkpoints import Difference, check_policy_state, difference
from srpo_core.config import resolve
from srpo_core.envs.base import Box, Discrete
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_policy
from srpo_core.registry import Registry
from srpo_core.train import resume, train
from tests.conftest import Cli

SETS = ["ppo.num_envs=64", "run.eval_episodes=0", "run.log_every=4", "run.checkpoint_every=1024"]
STEPS = 4096


def config(seed: int):
    return resolve(
        flags={
            "env": {"name": "matrix"},
            "algo": {"name": "srpo", "tau": 10.0},
            "run": {"seed": seed, "steps": STEPS},
        },
        sets=SETS,
    )


def _stop(progress) -> None:
    if progress.env_steps >= 2048:
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A registry with two finished matrix runs ("a", "b") and one interrupted after its
    first checkpoint ("cut", the config of "a"), copied into each test."""
    root = tmp_path_factory.mktemp("trained")
    with Registry(f"sqlite:///{root / 'srpo.db'}") as reg:
        runs = {"a": train(config(0), reg).run_id, "b": train(config(1), reg).run_id}
        with pytest.raises(KeyboardInterrupt):
            train(config(0), reg, on_progress=_stop)
        (cut,) = [r.id for r in reg.list_runs() if r.id not in runs.values()]
        assert reg.get_run(cut).status == "interrupted"
        runs["cut"] = cut
    return root, runs


@pytest.fixture
def lab(trained, tmp_path) -> tuple[str, dict[str, str]]:
    root, runs = trained
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    return f"sqlite:///{tmp_path / 'srpo.db'}", runs


def dump(url: str) -> list[str]:
    """Every row of the registry, as SQL."""
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        return list(db.iterdump())


def tamper(url: str, run_id: str, change: Callable[[dict], None]) -> int:
    """Rewrite the run's latest checkpoint with ``change`` applied, stored properly (its
    row points to the new file and hash); returns its step."""
    with Registry(url, create=False) as reg:
        latest = reg.latest_checkpoint(run_id)
        state = checkpoints.from_bytes(reg.read_checkpoint(latest))
        change(state)
        payload = checkpoints.to_bytes(state["policies"], state["algo"], state["counters"])
        reg.save_checkpoint(run_id, latest.step, payload)
        return latest.step


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _set(path: tuple, value: Callable[[object], object]) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]])

    return change


def _drop(path: tuple) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        node = state
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def _add(path: tuple, key: str, value) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        node = state
        for part in path:
            node = node[part]
        node[key] = value

    return change


AGENT0 = ("policies", "agent0")
POLICY_CASES = {
    "missing key": (
        _drop((*AGENT0, "actor_head.bias")),
        "does not fit its policy agent0: key 'actor_head.bias' is missing",
    ),
    "extra key": (
        _add(AGENT0, "actor_head.scale", torch.ones(2)),
        "does not fit its policy agent0: extra key 'actor_head.scale'",
    ),
    "shape": (
        _set((*AGENT0, "actor_body.0.weight"), lambda _: torch.zeros(16, 3)),
        "does not fit its policy agent0: key 'actor_body.0.weight' has shape (16, 3), "
        "expected (16, 1)",
    ),
    "dtype": (
        _set((*AGENT0, "critic_head.weight"), lambda t: t.double()),
        "does not fit its policy agent0: key 'critic_head.weight' has dtype float64, "
        "expected float32",
    ),
    "policies as a list": (
        _set(("policies",), lambda p: list(p.values())),
        None,  # resume and policy loading word it differently, see below
    ),
}
ALGO_CASES = {
    "algo key": (
        _drop(("algo", "optimizers", "agent1")),
        "does not fit its run: algo.optimizers.agent1: missing",
    ),
    "runner obs shape": (
        _set(("algo", "runners", 0, "obs", 1), lambda t: t[:, :0]),
        "does not fit its run: algo.runners[0].obs[1]: shape (64, 0), expected (64, 1)",
    ),
    "optimiser moment shape": (
        _set(("algo", "optimizers", "agent0", "exp_avg", 2), lambda _: torch.zeros(5)),
        "does not fit its run: algo.optimizers.agent0.exp_avg[2]: shape (5,), expected (16, 2)",
    ),
    "RNG state": (
        _set(("algo", "generator"), lambda t: t[:100]),
        "does not fit its run: algo.generator: shape (100,), expected (5056,)",
    ),
    "counters": (
        _drop(("counters", "iterations")),
        "does not fit its run: counters.iterations: missing",
    ),
}
RESUME_MESSAGES = {
    **{name: message for name, (_, message) in {**POLICY_CASES, **ALGO_CASES}.items()},
    "policies as a list": "does not fit its run: policies: a list, expected a dict",
}
LOAD_MESSAGES = {
    **{name: message for name, (_, message) in POLICY_CASES.items()},
    "policies as a list": "does not fit its policy agent0: its policies are a list, "
    "expected a dict",
}


@pytest.mark.parametrize("case", sorted({**POLICY_CASES, **ALGO_CASES}))
def test_resume_refuses_a_checkpoint_that_does_not_fit(lab, case):
    url, runs = lab
    run = runs["cut"]
    step = tamper(url, run, {**POLICY_CASES, **ALGO_CASES}[case][0])
    before = dump(url)
    with Registry(url, create=False) as reg, pytest.raises(UserError) as caught:
        resume(run, reg)
    assert str(caught.value) == f"checkpoint of run {run} at step {step} {RESUME_MESSAGES[case]}"
    assert dump(url) == before  # no metric row dropped, status still "interrupted"


@pytest.mark.parametrize("case", ["shape", "policies as a list", "optimiser moment shape"])
def test_srpo_train_resume_prints_one_line(lab, tmp_path, case):
    url, runs = lab
    run = runs["cut"]
    step = tamper(url, run, {**POLICY_CASES, **ALGO_CASES}[case][0])
    before = dump(url)
    line = one_error_line(Cli(tmp_path, url)("train", "--resume", run, check=False))
    assert line == f"error: checkpoint of run {run} at step {step} {RESUME_MESSAGES[case]}"
    assert dump(url) == before


def test_refused_resume_leaves_the_run_resumable(lab):
    """The checkpoint put back, the run resumes to the weights of an uninterrupted one."""
    url, runs = lab
    with Registry(url, create=False) as reg:
        latest = reg.latest_checkpoint(runs["cut"])
        original = reg.read_checkpoint(latest)
    tamper(url, runs["cut"], POLICY_CASES["shape"][0])
    with Registry(url, create=False) as reg:
        with pytest.raises(UserError, match="does not fit its policy agent0"):
            resume(runs["cut"], reg)
        assert reg.get_run(runs["cut"]).status == "interrupted"
        reg.save_checkpoint(runs["cut"], latest.step, original)
        result = resume(runs["cut"], reg)
        assert result.status == "finished" and result.env_steps == STEPS
        ends = [
            checkpoints.from_bytes(reg.read_checkpoint(reg.latest_checkpoint(runs[k])))
            for k in ("a", "cut")
        ]
    for role, weights in ends[0]["policies"].items():
        for key, tensor in weights.items():
            assert torch.equal(tensor, ends[1]["policies"][role][key]), (role, key)


@pytest.mark.parametrize("case", sorted(POLICY_CASES))
def test_load_policy_refuses_weights_that_do_not_fit(lab, case):
    url, runs = lab
    step = tamper(url, runs["a"], POLICY_CASES[case][0])
    with Registry(url, create=False) as reg:
        with pytest.raises(UserError) as caught:
            load_policy(reg, f"{runs['a']}/agent0")
        load_policy(reg, f"{runs['b']}/agent0")  # an untouched run still loads
    assert str(caught.value) == (
        f"checkpoint of run {runs['a']} at step {step} {LOAD_MESSAGES[case]}"
    )


def test_load_policy_ignores_algorithm_state(lab):
    """A policy is its weights: cross-play and zoos never read the algorithm's state."""
    url, runs = lab
    tamper(url, runs["a"], ALGO_CASES["algo key"][0])
    with Registry(url, create=False) as reg:
        assert isinstance(load_policy(reg, f"{runs['a']}/agent0"), ActorCritic)


@pytest.mark.parametrize("case", ["shape", "policies as a list"])
def test_crossplay_refuses_a_policy_that_does_not_fit(lab, tmp_path, case):
    url, runs = lab
    step = tamper(url, runs["a"], POLICY_CASES[case][0])  # "a" is the oldest: played first
    before = dump(url)
    cli = Cli(tmp_path, url)
    args = ["crossplay", "--pool", "algo=srpo", "--episodes", "8", "--workers", "1"]
    line = one_error_line(cli(*args, check=False))
    assert line == f"error: checkpoint of run {runs['a']} at step {step} {LOAD_MESSAGES[case]}"
    assert dump(url) == before


# ---- the comparison itself, on hand-built trees -------------------------------------------


def test_difference_reports_the_first_difference_as_a_path():
    expected = {
        "policies": {"agent0": {"pi.0.weight": torch.zeros(64, 4), "pi.0.bias": torch.zeros(64)}},
        "algo": {"optimizers": {"agent0": {}, "agent1": {}}, "steps": [1, 2]},
    }

    def changed(path: tuple, value) -> dict:
        tree = {
            "policies": {"agent0": dict(expected["policies"]["agent0"])},
            "algo": {"optimizers": dict(expected["algo"]["optimizers"]), "steps": [1, 2]},
        }
        node = tree
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return tree

    assert difference(changed(("algo", "steps"), [3, 4]), expected) is None  # values aside
    cases = [
        (("policies", "agent0", "pi.0.weight"), torch.zeros(64, 3),
         "policies.agent0.pi.0.weight: shape (64, 3), expected (64, 4)"),
        (("policies", "agent0", "pi.0.bias"), torch.zeros(64, dtype=torch.float64),
         "policies.agent0.pi.0.bias: dtype float64, expected float32"),
        (("algo", "optimizers", "agent1"), KeyError, "algo.optimizers.agent1: missing"),
        (("algo", "optimizers", "agent2"), {}, "algo.optimizers.agent2: extra key"),
        (("algo", "steps"), [1], "algo.steps: 1 item, expected 2"),
        (("algo", "steps"), (1, 2.5), None),  # tuples are lists, numbers are numbers
        (("algo", "steps", 1), "two", "algo.steps[1]: a string, expected a number"),
        (("policies", "agent0"), [torch.zeros(64, 4)], "policies.agent0: a list, expected a dict"),
        (("policies", "agent0", "pi.0.weight"), None,
         "policies.agent0.pi.0.weight: None, expected a tensor"),
    ]  # fmt: skip
    for path, value, message in cases:
        found = difference(changed(path, value), expected)
        assert (None if found is None else str(found)) == message, path


def test_difference_puts_a_missing_key_before_an_extra_one():
    found = difference({"b": 1, "z": 2}, {"a": 1, "b": 1})
    assert found == Difference(("a",), "missing")
    assert str(difference({"a": 1, "b": 1, "z": 2}, {"a": 1, "b": 1})) == "z: extra key"
    assert str(difference({0: {1: torch.zeros(2)}}, {0: {1: torch.zeros(3)}}, ("adv",))) == (
        "adv[0][1]: shape (2,), expected (3,)"
    )


def test_loose_comparison_tolerates_state_that_grows_in_training():
    fresh = {
        "optimizer": {"state": {}, "param_groups": [{"params": [0, 1], "lr": 3e-4}]},
        "runner": {"sums": None, "obs": [torch.zeros(8, 3)], "env": {"moves": [[]], "t": 0}},
        "partner": {"action": torch.zeros(0, dtype=torch.long), "hidden": None},
    }
    later = {
        "optimizer": {
            "state": {0: {"exp_avg": torch.zeros(2)}, 1: {"exp_avg": torch.zeros(2)}},
            "param_groups": [{"params": [0, 1], "lr": 1e-4}],
        },
        "runner": {
            "sums": torch.zeros(5, 8, dtype=torch.float64),
            "obs": [torch.zeros(8, 3)],
            "env": {"moves": [[3, 1, 4]], "t": 7, "started": True},  # the env's own business
        },
        "partner": {"action": torch.zeros(8, dtype=torch.long), "hidden": torch.zeros(8, 16)},
    }
    assert difference(later, fresh, loose=True) is None
    assert str(difference(later, fresh)) == "optimizer.state[0]: extra key"  # strictly
    broken = {**later, "runner": {**later["runner"], "env": {"moves": []}}}
    assert str(difference(broken, fresh, loose=True)) == "runner.env.t: missing"
    broken = {**later, "runner": {**later["runner"], "obs": [torch.zeros(8, 4)]}}
    assert str(difference(broken, fresh, loose=True)) == (
        "runner.obs[0]: shape (8, 4), expected (8, 3)"
    )
    broken = {**later, "partner": {**later["partner"], "action": torch.zeros(8, 2).long()}}
    assert str(difference(broken, fresh, loose=True)) == (
        "partner.action: shape (8, 2), expected (0,)"
    )
    broken = {**later, "optimizer": {**later["optimizer"], "param_groups": []}}
    assert str(difference(broken, fresh, loose=True)) == (
        "optimizer.param_groups: 0 items, expected 1"
    )


def _state(net: torch.nn.Module) -> dict:
    return {"policies": {"agent0": net.state_dict()}}


def test_check_policy_state_against_the_spec_of_each_network_kind():
    discrete = NetSpec(3, Discrete(4), (8,), "tanh", False, True)
    box = NetSpec(3, Box(2), (8, 8), "relu", True, False)
    gru = RecurrentSpec(obs_dim=5, num_actions=2, hidden=16, embed=4)
    nets = [(discrete, ActorCritic(discrete)), (box, ActorCritic(box))]
    nets.append((gru, RecurrentActorCritic(gru)))
    for spec, net in nets:
        check_policy_state(_state(net), {"net": spec.to_dict()}, "agent0", "ckpt")
    label = "checkpoint of run abc123 at step 4096"
    with pytest.raises(UserError) as caught:
        check_policy_state(_state(ActorCritic(discrete)), {"net": box.to_dict()}, "agent0", label)
    assert str(caught.value) == (
        f"{label} does not fit its policy agent0: key 'log_std' is missing"
    )
    wider = RecurrentActorCritic(RecurrentSpec(obs_dim=6, num_actions=2, hidden=16, embed=4))
    with pytest.raises(UserError) as caught:
        check_policy_state(_state(wider), {"net": gru.to_dict()}, "agent0", label)
    assert str(caught.value) == (
        f"{label} does not fit its policy agent0: key 'obs_embed.weight' has shape (4, 6), "
        "expected (4, 5)"
    )
    with pytest.raises(UserError) as caught:
        check_policy_state(_state(wider), {"net": gru.to_dict()}, "agent1", label)
    assert str(caught.value) == (
        f"{label} does not fit its policy agent1: it holds no weights for agent1 (it holds: agent0)"
    )


def test_check_policy_state_of_an_adapter_checks_only_that_it_holds_tensors():
    spec = {"kind": "debate-lora", "model_dir": "/models/x", "lora": {"rank": 4}}
    adapter = {"base_model.model.layers.0.q_proj.lora_A.weight": torch.zeros(4, 32)}
    check_policy_state({"policies": {"agent0": adapter}}, spec, "agent0", "ckpt")
    with pytest.raises(UserError, match="key 'base_model.x' is a list, expected a tensor"):
        check_policy_state(
            {"policies": {"agent0": {**adapter, "base_model.x": [1]}}}, spec, "agent0", "ckpt"
        )
    with pytest.raises(UserError, match="its weights are a list, expected a dict"):
        check_policy_state({"policies": {"agent0": [1]}}, spec, "agent0", "ckpt")


def test_debate_resume_refuses_an_adapter_that_does_not_fit(tmp_path):
    """LLM debate runs checkpoint LoRA adapters: resume checks them against the adapters
    of the freshly built trainer."""
    from srpo_core.debate.tiny import make_tiny_model

    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    sets = [f'env.model_dir="{tiny}"', "env.batch_size=4", "env.max_new_tokens=6"]
    sets += ["env.rounds=2", "env.lora_rank=4", "env.generated_max=3", "run.eval_episodes=0"]
    sets += ["run.steps=12", "run.checkpoint_every=4", "run.log_every=1"]
    debate = resolve(flags={"env": {"name": "debate"}, "algo": {"name": "ippo"}}, sets=sets)

    def stop(progress) -> None:
        if progress.env_steps >= 8:
            raise KeyboardInterrupt

    url = f"sqlite:///{tmp_path / 'srpo.db'}"
    with Registry(url) as reg:
        with pytest.raises(KeyboardInterrupt):
            train(debate, reg, on_progress=stop)
        (run,) = [r.id for r in reg.list_runs()]
        saved = checkpoints.from_bytes(reg.read_checkpoint(reg.latest_checkpoint(run)))
    key = sorted(saved["policies"]["agent1"])[0]  # a LoRA matrix
    step = tamper(url, run, _set(("policies", "agent1", key), lambda t: t[:, :1]))
    before = dump(url)
    with Registry(url, create=False) as reg, pytest.raises(UserError) as caught:
        resume(run, reg)
    assert str(caught.value).startswith(
        f"checkpoint of run {run} at step {step} does not fit its policy agent1: key {key!r} "
        "has shape ("
    )
    assert dump(url) == before
