"""Checks that need a CUDA device (skipped without one; `make gpu-check` runs them with the
GPU benchmarks): training on CUDA through the CLI, its policies played on the CPU, and the
debate trainer in bfloat16."""

from __future__ import annotations

import pytest
import torch

from srpo_core import checkpoints
from srpo_core import config as cfg
from srpo_core.debate.models import load_causal_lm
from srpo_core.debate.tiny import make_tiny_model
from srpo_core.policy_loading import load_policy
from srpo_core.registry import Registry
from srpo_core.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("tau", ["0", "10"])
def test_gridworld_trains_on_cuda_and_plays_on_cpu(cli, registry_url, tau):
    args = ["train", "--env", "gridworld", "--tau", tau, "--device", "cuda", "--steps", "4096"]
    run = cli.json(*args, "--set", "run.eval_episodes=16")
    assert run["env_steps"] >= 4096 and "eval/return" in run["metrics"]
    with Registry(registry_url) as reg:
        assert reg.get_run(run["run_id"]).config["run"]["device"] == "cuda"
        net = load_policy(reg, f"{run['run_id']}/agent0", device="cpu")
        assert next(net.parameters()).device.type == "cpu"
    result = cli.json("crossplay", "--pool", f"run={run['run_id']}", "--episodes", "16")
    assert len(result["seatings"]) == 2  # the run with itself, in each seat


def test_debate_trains_in_bfloat16_on_cuda(tmp_path):
    tiny = make_tiny_model(tmp_path / "tiny", seed=0)
    sets = [f'env.model_dir="{tiny}"', "env.batch_size=4", "env.max_new_tokens=6"]
    sets += ["env.rounds=2", "env.lora_rank=4", "env.generated_max=3", "run.eval_episodes=4"]
    sets += ["run.steps=8", "run.device=cuda"]
    config = cfg.resolve(flags={"env": {"name": "debate"}, "algo": {"tau": 10.0}}, sets=sets)
    with Registry(str(tmp_path / "srpo.db")) as reg:
        result = train(config, reg)
        state = reg.read_checkpoint(reg.latest_checkpoint(result.run_id))
    assert result.status == "finished" and 0 <= result.metrics["eval/joint_accuracy"] <= 1
    adapters = checkpoints.from_bytes(state)["policies"]["agent0"]
    assert all(t.dtype == torch.float32 for t in adapters.values())  # LoRA stays float32
    model, _ = load_causal_lm(tiny, device="cuda", dtype="auto")
    assert next(model.parameters()).dtype == torch.bfloat16
