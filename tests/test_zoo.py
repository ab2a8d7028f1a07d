"""Zoos on a real registry: run queries, checkpoint pinning, freezing, export/import with hash
verification, tampered archives, and the held-out rule for training."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import torch

from srpo_core import checkpoints
from srpo_core.config import resolve
from srpo_core.errors import UserError
from srpo_core.policy_loading import load_policy
from srpo_core.query import parse_query, select_runs
from srpo_core.registry import Registry
from srpo_core.train import build_population, train
from srpo_core.zoo.archive import export_zoo, import_zoo, read_archive
from srpo_core.zoo.build import MemberQuery, build_zoo
from srpo_core.zoo.manifest import freeze_zoo, manifest, manifest_sha256

# 1024 one-step games per iteration: checkpoints at 1024, 2048, 3072, 4096 env steps.
TINY = ["run.steps=4096", "run.checkpoint_every=1024", "run.eval_episodes=0", "run.log_every=4"]


def matrix_run(reg: Registry, algo: str, seed: int, tau: float = 0.0, tags=()) -> str:
    config = resolve(
        flags={
            "env": {"name": "matrix"},
            "algo": {"name": algo, "tau": tau},
            "run": {"seed": seed},
        },
        sets=TINY,
    )
    return train(config, reg, tags=tags).run_id


@pytest.fixture
def reg(registry_url):
    with Registry(registry_url) as registry:
        registry.ids = [
            matrix_run(registry, "ippo", 0, tags=["a"]),
            matrix_run(registry, "ippo", 1),
            matrix_run(registry, "srpo", 2, tau=10.0, tags=["a"]),
        ]
        yield registry


def test_queries_select_runs(reg):
    ippo0, ippo1, srpo2 = reg.ids
    ids = lambda text: [r.id for r in select_runs(reg, parse_query(text))]  # noqa: E731
    assert ids("algo=ippo") == [ippo0, ippo1]
    assert ids("seed=1..2") == [ippo1, srpo2]
    assert ids("algo=ippo|srpo,tag=a") == [ippo0, srpo2]
    assert ids("tau=10") == [srpo2]
    assert ids(f"run={ippo1[:6]}") == [ippo1]
    assert ids("status=running") == []
    for bad, message in [
        ("colour=red", "unknown query key 'colour'"),
        ("seed=x", "not a number"),
        ("algo", "not key=value"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_query(bad)


def test_members_are_pinned_to_checkpoints_by_fraction(reg):
    ippo0 = reg.ids[0]
    zoo, added = build_zoo(
        reg,
        "fcp",
        env="matrix",
        members=MemberQuery(runs=parse_query("seed=0"), fractions=(0.3, 0.5, 1.0)),
    )
    # targets 0.3 * 4096 = 1228.8 -> 1024; 0.5 -> 2048; 1 -> 4096; both roles each
    assert added == 6
    assert [(m.policy_ref, m.step) for m in zoo.members] == [
        (f"{ippo0}/agent0", 1024),
        (f"{ippo0}/agent1", 1024),
        (f"{ippo0}/agent0", 2048),
        (f"{ippo0}/agent1", 2048),
        (f"{ippo0}/agent0", 4096),
        (f"{ippo0}/agent1", 4096),
    ]
    shas = {c.step: c.sha256 for c in reg.checkpoints(ippo0)}
    assert all(m.sha256 == shas[m.step] for m in zoo.members)
    # explicit REF@STEP, the random policy, and re-adding what is there adds nothing
    zoo, added = build_zoo(
        reg,
        "fcp",
        env="matrix",
        members=MemberQuery(policies=[f"{ippo0}/agent0@3072", f"{ippo0}/agent0@1024"], random=True),
    )
    assert added == 2
    assert zoo.members[-1].policy_ref == "random:matrix/uniform"
    with pytest.raises(UserError, match="no checkpoint at step 5"):
        build_zoo(reg, "fcp", env="matrix", members=MemberQuery(policies=[f"{ippo0}/agent0@5"]))


def test_members_must_share_the_zoos_env_config(reg):
    custom = ["env.reward=[[1.0, 1.0], [1.0, 0.0]]", "env.cost=[[0.3, 0.0], [0.3, 0.0]]"]
    with pytest.raises(UserError, match="another env configuration"):
        build_zoo(
            reg, "other", env="matrix", members=MemberQuery(runs=parse_query("seed=0")), sets=custom
        )
    with pytest.raises(UserError, match="plays matrix, not gridworld"):
        build_zoo(reg, "g", env="gridworld", members=MemberQuery(policies=[f"{reg.ids[0]}/agent0"]))
    assert reg.zoos() == []  # nothing written by refused builds


def test_frozen_zoo_refuses_changes(reg):
    build_zoo(reg, "z", env="matrix", members=MemberQuery(runs=parse_query("seed=0")))
    zoo = freeze_zoo(reg, "z")
    assert zoo.frozen and zoo.manifest_sha256 == manifest_sha256(manifest(reg, zoo))
    with pytest.raises(UserError, match="frozen"):
        build_zoo(reg, "z", env="matrix", members=MemberQuery(random=True))
    with pytest.raises(UserError, match="already frozen"):
        freeze_zoo(reg, "z")
    assert len(reg.get_zoo("z").members) == 2


def _export(reg: Registry, tmp_path: Path) -> Path:
    build_zoo(
        reg,
        "heldout",
        env="matrix",
        members=MemberQuery(runs=parse_query("seed=1..2"), fractions=(0.5, 1.0), random=True),
        held_out=True,
    )
    freeze_zoo(reg, "heldout")
    path = tmp_path / "heldout.tar.gz"
    export_zoo(reg, "heldout", path)
    return path


def test_export_import_round_trip(reg, tmp_path):
    path = _export(reg, tmp_path)
    first = path.read_bytes()
    export_zoo(reg, "heldout", path)
    assert path.read_bytes() == first  # byte-identical exports
    with tarfile.open(path) as tar:
        names = tar.getnames()
    shas = {m.sha256 for m in reg.get_zoo("heldout").members if m.sha256}
    assert sorted(names) == sorted(["zoo.json", *(f"checkpoints/{s}.pt" for s in shas)])
    original = reg.get_zoo("heldout")

    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    with Registry(f"sqlite:///{lab_dir / 'srpo.db'}") as lab:
        zoo, new = import_zoo(lab, read_archive(path))
        assert new and zoo.frozen and zoo.held_out
        assert zoo.manifest_sha256 == original.manifest_sha256
        assert [(m.policy_ref, m.step, m.sha256) for m in zoo.members] == [
            (m.policy_ref, m.step, m.sha256) for m in original.members
        ]
        # the imported runs carry their provenance, and their weights load identically
        srpo2 = reg.ids[2]
        assert lab.get_run(srpo2).status == "imported"
        assert lab.get_run(srpo2).config_hash == reg.get_run(srpo2).config_hash
        for member in zoo.members:
            if member.step is None:
                continue
            mine = load_policy(reg, member.policy_ref, step=member.step)
            theirs = load_policy(lab, member.policy_ref, step=member.step)
            for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True):
                assert torch.equal(a, b)
        again, new = import_zoo(lab, read_archive(path))
        assert not new and again.manifest_sha256 == zoo.manifest_sha256


def _rewrite(path: Path, edit) -> Path:
    """A copy of the archive with one file's bytes changed by ``edit(name, data)``."""
    files = {}
    with tarfile.open(path) as tar:
        for entry in tar.getmembers():
            files[entry.name] = tar.extractfile(entry).read()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            data = edit(name, data)
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    tampered = path.with_name("tampered.tar.gz")
    tampered.write_bytes(gzip.compress(out.getvalue()))
    return tampered


def test_tampered_archives_are_refused(reg, tmp_path):
    path = _export(reg, tmp_path)

    def flip_checkpoint(name, data):
        if not name.startswith("checkpoints/"):
            return data
        state = checkpoints.from_bytes(data)
        for weights in state["policies"].values():
            for tensor in weights.values():
                tensor.add_(0.01)
        return checkpoints.to_bytes(state["policies"], state["algo"], state["counters"])

    def edit_manifest(name, data):
        return data.replace(b'"held_out":true', b'"held_out":false') if name == "zoo.json" else data

    with pytest.raises(UserError, match="fails its sha256 check"):
        read_archive(_rewrite(path, flip_checkpoint))
    with pytest.raises(UserError, match="manifest was modified"):
        read_archive(_rewrite(path, edit_manifest))
    with pytest.raises(UserError, match="not the expected"):
        read_archive(path, expect="00000000")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(UserError, match="cannot read zoo archive"):
        read_archive(tmp_path / "junk.tar.gz")


def test_held_out_policies_cannot_be_training_partners(registry_url):
    tiny = ["ppo.num_envs=2", "ppo.num_steps=8", "run.eval_episodes=0", "net.hidden=[8]"]
    config = resolve(
        flags={"env": {"name": "tag"}, "run": {"steps": 16}},
        sets=[*tiny, "env.runner='scripted:tag/flee-slow'"],
    )
    with Registry(registry_url) as reg:
        build_population([config], reg)  # fine while no held-out zoo holds it
        build_zoo(
            reg,
            "runners",
            env="tag",
            members=MemberQuery(scripted=["tag/flee-slow"]),
            held_out=True,
        )
        with pytest.raises(UserError, match="held-out zoo 'runners'"):
            train(config, reg)
        assert reg.list_runs() == []
