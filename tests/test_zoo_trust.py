"""Zoo archives as untrusted input, and zoo writes as all or nothing, on real files: archives
crafted here with tarfile and gzip, real SQLite registries, the CLI as a subprocess. Every
refused command prints one `error:` line, exits 2 and leaves every table as it was."""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
import shutil
import sqlite3
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from srpo_core.canonical import canonical_json
from srpo_core.config import resolve
from srpo_core.errors import UserError
from srpo_core.registry import Registry
from srpo_core.registry.artifacts import sha256_hex
from srpo_core.train import train
from srpo_core.zoo import archive as zoo_archive
from srpo_core.zoo.archive import export_zoo, read_archive
from srpo_core.zoo.build import MemberQuery, build_zoo
from srpo_core.zoo.manifest import freeze_zoo, manifest, manifest_sha256

# 1024 one-step games per iteration: checkpoints at 1024, 2048, 3072, 4096 env steps.
TINY = ["run.steps=4096", "run.checkpoint_every=1024", "run.eval_episodes=0", "run.log_every=4"]
PASSWORD_COMMAND = "srpo train --registry postgresql+psycopg://lab:hunter2@db.example/srpo"

Document = dict[str, Any]
Files = dict[str, bytes]


def matrix_run(reg: Registry) -> str:
    config = resolve(flags={"env": {"name": "matrix"}, "algo": {"name": "ippo"}}, sets=TINY)
    return train(config, reg).run_id


def pair_zoo(reg: Registry, run: str, folder: Path, name: str = "pair") -> Path:
    """Zoo ``name``: both policies of ``run`` at step 2048 and the random policy, frozen
    and exported to ``folder/NAME.tar.gz``."""
    members = MemberQuery(policies=[f"{run}/agent0@2048", f"{run}/agent1@2048"], random=True)
    build_zoo(reg, name, env="matrix", members=members)
    freeze_zoo(reg, name)
    path = folder / f"{name}.tar.gz"
    export_zoo(reg, name, path)
    return path


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """A registry folder with one trained matrix run and its exported zoo 'pair'."""
    folder = tmp_path_factory.mktemp("origin")
    with Registry(f"sqlite:///{folder / 'srpo.db'}") as reg:
        run = matrix_run(reg)
        pair_zoo(reg, run, folder)
    (folder / "run_id").write_text(run)
    return folder


@pytest.fixture
def local(origin: Path, tmp_path: Path, registry_url: str) -> str:
    """The CLI's registry holds a copy of the origin registry; returns its run id."""
    for file in origin.glob("srpo.db*"):
        shutil.copy(file, tmp_path / file.name)
    shutil.copytree(origin / "srpo-artifacts", tmp_path / "srpo-artifacts")
    return (origin / "run_id").read_text()


@pytest.fixture
def empty(registry_url: str) -> None:
    """The CLI's registry exists and holds nothing."""
    Registry(registry_url).close()


def dump(registry_url: str) -> list[str]:
    """Every table of the registry file, row by row."""
    connection = sqlite3.connect(registry_url.removeprefix("sqlite:///"))
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def refused(proc) -> str:
    """The one error line of a refused command."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def refuses_unchanged(cli, registry_url: str, *args: str) -> str:
    """Run a command that must be refused without touching the registry; its error line."""
    before = dump(registry_url)
    line = refused(cli(*args, check=False))
    assert dump(registry_url) == before
    return line


# ---- crafting archives --------------------------------------------------------------------


def unpack(path: Path) -> tuple[Document, Files]:
    """An archive's zoo.json document and its checkpoint files."""
    with tarfile.open(path) as tar:
        files = {e.name: tar.extractfile(e).read() for e in tar.getmembers()}
    return json.loads(files.pop("zoo.json")), files


def write_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A tar.gz of ``files``, written as `srpo zoo export` writes (sorted names, pax)."""
    return write_entries(path, [_entry(name, files[name]) for name in sorted(files)])


def write_entries(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def _entry(name: str, data: bytes = b"", **fields: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def craft(source: Path, out: Path, edit: Callable[[Document, Files], None]) -> Path:
    """A copy of ``source`` edited by ``edit(document, files)``; the manifest hash is
    recomputed, so only the structure checks can refuse it."""
    document, files = unpack(source)
    edit(document, files)
    if isinstance(document.get("manifest"), dict) and "manifest_sha256" in document:
        document["manifest_sha256"] = manifest_sha256(document["manifest"])
    return write_archive(out, {"zoo.json": canonical_json(document).encode(), **files})


def members(document: Document) -> list[dict[str, Any]]:
    return document["manifest"]["members"]


def replace_checkpoint(document: Document, files: Files, step: int, payload: bytes) -> None:
    """Every trained member pinned to ``step`` now points to ``payload``."""
    sha = sha256_hex(payload)
    for member in members(document):
        if member["step"] == step:
            files.pop(f"checkpoints/{member['sha256']}.pt", None)
            member["sha256"] = sha
    files[f"checkpoints/{sha}.pt"] = payload


def edited_state(payload: bytes, edit: Callable[[dict], None]) -> bytes:
    state = torch.load(io.BytesIO(payload), weights_only=True)
    edit(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def the_checkpoint(files: Files) -> bytes:
    (payload,) = files.values()
    return payload


# ---- 1. an import never changes a local run or policy -------------------------------------


def _renamed(document: Document) -> None:
    document["name"] = "other"


def _new_step(document: Document, files: Files) -> None:
    _renamed(document)
    members(document)[0]["step"] = 8192  # its bytes: the run's own checkpoint at 2048


def _other_bytes(document: Document, files: Files) -> None:
    _renamed(document)

    def nudge(state: dict) -> None:
        for weights in state["policies"].values():
            for tensor in weights.values():
                tensor.add_(0.01)

    replace_checkpoint(document, files, 2048, edited_state(the_checkpoint(files), nudge))


def _policy_spec(document: Document, files: Files) -> None:
    _renamed(document)
    members(document)[0]["spec"]["seats"] = ["agent0", "agent1"]


def _run_field(document: Document, files: Files) -> None:
    _renamed(document)
    for member in members(document)[:2]:
        member["run"]["tags"] = ["theirs"]
        member["run"]["env_steps"] = 1


def _builtin_spec(document: Document, files: Files) -> None:
    _renamed(document)
    members(document)[2]["spec"] = {"seat": "agent0"}


def _same_name(document: Document, files: Files) -> None:
    document["manifest"]["description"] = "another zoo under the same name"


EXISTS = "already exists in this registry with another"
NEVER_RUN = "an import never changes a local run"
NEVER_POLICY = "an import never changes a local policy"


@pytest.mark.parametrize(
    ("edit", "line_start"),
    [
        (
            _new_step,
            f"run {{run}} exists in this registry without a checkpoint at step 8192; {NEVER_RUN}",
        ),
        (_other_bytes, "run {run} already has another checkpoint at step 2048 ("),
        (_policy_spec, f"policy {{run}}/agent0 {EXISTS} spec; {NEVER_POLICY}"),
        (_run_field, f"run {{run}} {EXISTS} tags, env_steps; {NEVER_RUN}"),
        (_builtin_spec, f"policy random:matrix/uniform {EXISTS} spec; {NEVER_POLICY}"),
        (_same_name, "zoo 'pair' already exists in this registry with other members"),
    ],
)
def test_import_never_changes_what_is_here(
    cli, registry_url, origin, local, tmp_path, edit, line_start
):
    archive = craft(origin / "pair.tar.gz", tmp_path / "crafted.tar.gz", edit)
    read_archive(archive)  # a well-formed archive: only the registry's rows refuse it
    line = refuses_unchanged(cli, registry_url, "zoo", "import", str(archive))
    assert line.startswith("error: " + line_start.format(run=local))


# ---- 2. a refused import writes nothing; an accepted one adds only ------------------------


def test_refused_import_writes_nothing(cli, registry_url, origin, empty, tmp_path):
    archive = origin / "pair.tar.gz"
    line = refuses_unchanged(cli, registry_url, "zoo", "import", str(archive), "--name", "bad name")
    assert line == (
        "error: invalid zoo name 'bad name': letters, digits, '_', '.', '-' (at most 100)"
    )
    assert not (tmp_path / "srpo-artifacts").exists()

    imported = cli.json("zoo", "import", str(archive))
    stated = imported["manifest_sha256"]
    with Registry(registry_url) as lab:
        zoo = lab.get_zoo("pair")
        assert manifest_sha256(manifest(lab, zoo)) == stated  # the rows reproduce it
        export_zoo(lab, "pair", tmp_path / "again.tar.gz")
    assert (tmp_path / "again.tar.gz").read_bytes() == archive.read_bytes()

    # The same runs, policies and checkpoints under another name: only zoo rows are added.
    tables = ("runs", "policies", "checkpoints")
    before = [row for row in dump(registry_url) if row.startswith(_inserts(tables))]
    again = cli.json("zoo", "import", str(archive), "--name", "copy")
    assert again["imported"] and again["manifest_sha256"] == stated
    assert [row for row in dump(registry_url) if row.startswith(_inserts(tables))] == before


def _inserts(tables: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f'INSERT INTO "{table}"' for table in tables)


# ---- 3. a refused build writes nothing ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad name", "--env", "matrix", "--random"], "error: invalid zoo name 'bad name'"),
        (
            ["runners", "--env", "tag", "--scripted", "tag/flee", "--scripted", "tag/nope"],
            "unknown scripted policy 'scripted:tag/nope'",
        ),
        (["z", "--env", "matrix", "--random", "--description", "two\nlines"], "one line of text"),
        (["z", "--env", "matrix", "--random", "--policy", "feedbeef/agent0"], "no policy"),
    ],
)
def test_refused_build_writes_nothing(cli, registry_url, empty, args, message):
    assert message in refuses_unchanged(cli, registry_url, "zoo", "build", *args)


def test_refused_build_of_a_frozen_zoo_writes_nothing(cli, registry_url, local):
    line = refuses_unchanged(
        cli, registry_url, "zoo", "build", "pair", "--env", "matrix", "--scripted", "tag/flee"
    )
    assert line == "error: zoo 'pair' is frozen; its members cannot change"


# ---- 4. archives: manifest structure, entries, sizes --------------------------------------


def _set(*path: Any, value: Any) -> Callable[[Document, Files], None]:
    def edit(document: Document, files: Files) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(*path: Any) -> Callable[[Document, Files], None]:
    def edit(document: Document, files: Files) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


M0 = ("manifest", "members", 0)

MALFORMED = [
    (_set("manifest", "members", value={"a": 1}), "manifest.members must be a non-empty list"),
    (_set("manifest", "members", value=[]), "manifest.members must be a non-empty list"),
    (_set(*M0, value="x"), "manifest.members[0] must be an object"),
    (_set(*M0, "step", value="2048"), "manifest.members[0].step must be a checkpoint step"),
    (_set(*M0, "step", value=True), "manifest.members[0].step must be a checkpoint step"),
    (_set(*M0, "sha256", value="00" * 31 + "zz"), "manifest.members[0].sha256 must be 64 hex"),
    (_set(*M0, "ref", value=7), "manifest.members[0].ref must be"),
    (_set(*M0, "ref", value="feedbeeffeed/agent0"), "manifest.members[0].ref must be"),
    (_set(*M0, "kind", value="magic"), "manifest.members[0].kind must be one of"),
    (_set(*M0, "spec", value=[]), "manifest.members[0].spec must be an object"),
    (_set(*M0, "extra", value=1), "manifest.members[0] has an unknown key 'extra'"),
    (_delete(*M0, "run", "seed"), "manifest.members[0].run lacks 'seed'"),
    (_set(*M0, "run", value=None), "manifest.members[0].run must be an object"),
    (_set(*M0, "run", "id", value="../../x"), "manifest.members[0].run.id must be a run id"),
    (_set(*M0, "run", "tau", value="0"), "manifest.members[0].run.tau must be a number"),
    (_set(*M0, "run", "seed", value=2**70), "manifest.members[0].run.seed must be a whole"),
    (_set(*M0, "run", "tags", value="a"), "manifest.members[0].run.tags must be a list"),
    (_set(*M0, "run", "config", value=[]), "manifest.members[0].run.config must be a run config"),
    (_set(*M0, "run", "config_hash", value="0" * 64), "config_hash is not the hash of its config"),
    (_set(*M0, "role", value="a\x1b[2Jb"), "manifest.members[0].role must be a role name"),
    (_set("manifest", "env_config", value="matrix"), "manifest.env_config must be an object"),
    (_set("manifest", "env_config_hash", value="0" * 64), "env_config_hash is not the hash"),
    (_set("manifest", "held_out", value="no"), "manifest.held_out must be true or false"),
    (_set("manifest", "description", value="a\nb"), "manifest.description must be one line"),
    (_delete("manifest", "env"), "manifest lacks 'env'"),
    (_set("manifest", value=[]), "zoo.json: manifest must be an object"),
    (_delete("manifest_sha256"), "zoo.json lacks 'manifest_sha256'"),
    (_set("name", value=["pair"]), "zoo.json: name must be text"),
    (_set("format", value=2), "unsupported zoo archive format 2"),
    (_set("format", value=True), "unsupported zoo archive format True"),
]


@pytest.mark.parametrize(("edit", "message"), MALFORMED)
def test_malformed_manifests_are_refused(origin, tmp_path, edit, message):
    archive = craft(origin / "pair.tar.gz", tmp_path / "malformed.tar.gz", edit)
    with pytest.raises(UserError) as refusal:
        read_archive(archive)
    assert message in str(refusal.value)
    assert str(refusal.value).isprintable()


def test_members_must_agree_and_appear_once(origin, tmp_path):
    def twice(document: Document, files: Files) -> None:
        members(document).append(copy.deepcopy(members(document)[0]))

    def two_specs(document: Document, files: Files) -> None:
        extra = copy.deepcopy(members(document)[0])
        extra["step"] = 4096
        extra["spec"]["seats"] = []
        members(document).append(extra)

    def two_runs(document: Document, files: Files) -> None:
        members(document)[1]["run"]["seed"] = 99

    for edit, message in [
        (twice, "manifest.members[3] repeats an earlier member"),
        (two_specs, "describes policy"),
        (two_runs, "manifest.members[1].run describes run"),
    ]:
        with pytest.raises(UserError, match=re.escape(message)):
            read_archive(craft(origin / "pair.tar.gz", tmp_path / "bad.tar.gz", edit))


def test_invalid_json_is_refused(origin, tmp_path):
    document, files = unpack(origin / "pair.tar.gz")
    for text in (b'{"format": NaN}', b'{"format": 1e400', b"[" * 100_000, b"\xff\xfe"):
        archive = write_archive(tmp_path / "bad.tar.gz", {"zoo.json": text, **files})
        with pytest.raises(UserError, match="zoo.json is not valid JSON"):
            read_archive(archive)
    # hashing and storing recurse once per level: no depth may escape as another error
    start = '{"format": 1, "name": "x", "manifest_sha256": "%s", "manifest": {"a": ' % ("0" * 64)
    for depth in (63, *range(700, 1000)):
        text = start + "[" * depth + "]" * depth + "}}"
        archive = write_archive(tmp_path / "deep.tar.gz", {"zoo.json": text.encode()})
        with pytest.raises(UserError, match="not valid JSON|nests deeper than 64 levels"):
            read_archive(archive)
    document["manifest"]["description"] = "\ud800"
    text = json.dumps(document).encode()  # ascii escapes: valid JSON, no valid Unicode
    with pytest.raises(UserError, match="not valid Unicode"):
        read_archive(write_archive(tmp_path / "bad.tar.gz", {"zoo.json": text, **files}))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("manifest", "members", value={"a": 1}), "manifest.members must be a non-empty list"),
        (_set(*M0, "step", value="2048"), "manifest.members[0].step must be a checkpoint step"),
        (_delete(*M0, "run", "config"), "manifest.members[0].run lacks 'config'"),
    ],
)
def test_malformed_manifest_through_the_cli(
    cli, registry_url, origin, empty, tmp_path, edit, message
):
    archive = craft(origin / "pair.tar.gz", tmp_path / "malformed.tar.gz", edit)
    line = refuses_unchanged(cli, registry_url, "zoo", "import", str(archive))
    assert line == f"error: {archive}: malformed zoo.json: {message}"


def headers_only(path: Path, name: str, size: int) -> Path:
    """A truncated archive: one header claiming ``size`` bytes, and no data at all."""
    info = tarfile.TarInfo(name)
    info.size = size
    path.write_bytes(gzip.compress(info.tobuf(tarfile.PAX_FORMAT)))
    return path


def test_unexpected_entries_are_refused(origin, tmp_path):
    document, files = unpack(origin / "pair.tar.gz")
    manifest_entry = _entry("zoo.json", canonical_json(document).encode())
    checkpoint = [_entry(name, data) for name, data in files.items()]
    (checkpoint_name,) = files
    cases = [
        ([_entry("notes.txt", b"hi")], "unexpected archive entry 'notes.txt'"),
        ([_entry("../zoo.json", b"{}")], "unexpected archive entry '../zoo.json'"),
        ([_entry("/etc/passwd", b"x")], "unexpected archive entry '/etc/passwd'"),
        ([_entry("checkpoints/x.pt", b"x")], "unexpected archive entry 'checkpoints/x.pt'"),
        ([_entry("checkpoints", type=tarfile.DIRTYPE)], "unexpected archive entry 'checkpoints'"),
        (
            [_entry("link", type=tarfile.SYMTYPE, linkname="zoo.json")],
            "unexpected archive entry 'link'",
        ),
        ([_entry("tty", type=tarfile.CHRTYPE, devmajor=5)], "unexpected archive entry 'tty'"),
        (
            [_entry(checkpoint_name, type=tarfile.LNKTYPE, linkname="zoo.json")],
            f"unexpected archive entry '{checkpoint_name}'",
        ),
        (checkpoint * 2, f"archive entry '{checkpoint_name}' appears twice"),
        ([], "not a zoo archive (no zoo.json)"),  # the checkpoint alone
    ]
    for extra, message in cases:
        entries = [*extra, manifest_entry] if extra else checkpoint
        archive = write_entries(tmp_path / "entries.tar.gz", entries)
        with pytest.raises(UserError, match=f"^{re.escape(f'{archive}: {message}')}$"):
            read_archive(archive)


def test_sizes_are_checked_before_reading(origin, tmp_path, monkeypatch):
    document, files = unpack(origin / "pair.tar.gz")
    (name,) = files
    cases = [
        ("zoo.json", 16 * 2**20 + 1, f"zoo.json is {16 * 2**20 + 1} bytes, over the limit"),
        (name, 512 * 2**20 + 1, f"{name} is {512 * 2**20 + 1} bytes, over the limit of"),
    ]
    for entry_name, size, message in cases:
        with pytest.raises(UserError, match=re.escape(message)):
            read_archive(headers_only(tmp_path / "huge.tar.gz", entry_name, size))

    # a pax header is read whole by tarfile: one larger than a read is refused
    info, data = _entry("zoo.json", canonical_json(document).encode())
    info.pax_headers = {"comment": "x" * 2**21}
    with pytest.raises(UserError, match="an archive header is larger than"):
        read_archive(write_entries(tmp_path / "pax.tar.gz", [(info, data)]))

    monkeypatch.setattr(zoo_archive, "MAX_ARCHIVE_BYTES", 50_000)
    with pytest.raises(UserError, match="the archive holds over 50000 bytes"):
        read_archive(origin / "pair.tar.gz")


def test_an_unnamed_checkpoint_is_never_read(cli, registry_url, origin, empty, tmp_path):
    """A 100 MB member the manifest does not name (zeros: a small file) is skipped over,
    never held in memory, then refused."""
    document, files = unpack(origin / "pair.tar.gz")
    entries = {"zoo.json": canonical_json(document).encode(), **files}
    unnamed = tarfile.TarInfo("checkpoints/" + "ab" * 32 + ".pt")
    unnamed.size = 100 * 2**20
    path = tmp_path / "padded.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as stream:
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(unnamed, _Zeros(unnamed.size))
            for name in sorted(entries):
                info, data = _entry(name, entries[name])
                tar.addfile(info, io.BytesIO(data))
    assert path.stat().st_size < 2 * 2**20

    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="is not a checkpoint of any member"):
            read_archive(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    line = refuses_unchanged(cli, registry_url, "zoo", "import", str(path))
    assert line == f"error: {path}: checkpoints/{'ab' * 32}.pt is not a checkpoint of any member"


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


# ---- 5. checkpoints must fit their policies -----------------------------------------------


def _drop_key(state: dict) -> None:
    del state["policies"]["agent0"]["actor_head.bias"]


def _wider(state: dict) -> None:
    weights = state["policies"]["agent0"]
    weights["actor_head.weight"] = torch.zeros(3, weights["actor_head.weight"].shape[1])


@pytest.mark.parametrize(
    ("edit", "difference"),
    [
        (_drop_key, "key 'actor_head.bias' is missing"),
        (_wider, "key 'actor_head.weight' has shape (3, 16), expected (2, 16)"),
    ],
)
def test_import_refuses_a_checkpoint_that_does_not_fit(
    cli, registry_url, origin, empty, tmp_path, edit, difference
):
    def wrong(document: Document, files: Files) -> None:
        replace_checkpoint(document, files, 2048, edited_state(the_checkpoint(files), edit))

    archive = craft(origin / "pair.tar.gz", tmp_path / "wrong.tar.gz", wrong)
    line = refuses_unchanged(cli, registry_url, "zoo", "import", str(archive))
    assert line.startswith(f"error: {archive}: checkpoint of ")
    assert line.endswith(f"/agent0@2048 does not fit its policy agent0: {difference}")


def test_freeze_refuses_a_checkpoint_that_does_not_fit(cli, registry_url, local):
    with Registry(registry_url) as reg:
        good = reg.read_checkpoint(reg.checkpoints(local)[-1])
        reg.save_checkpoint(local, 5000, edited_state(good, _drop_key))
    cli("zoo", "build", "broken", "--env", "matrix", "--policy", f"{local}/agent0@5000")
    line = refuses_unchanged(cli, registry_url, "zoo", "freeze", "broken")
    assert line.startswith(f"error: checkpoint of {local}/agent0@5000 does not fit its policy")
    assert "actor_head.bias" in line


# ---- 6. no password leaves with a zoo -----------------------------------------------------


def test_archives_never_carry_a_password(cli, registry_url, tmp_path):
    origin_dir = tmp_path / "origin"
    origin_dir.mkdir()
    origin_url = f"sqlite:///{origin_dir / 'srpo.db'}"
    with Registry(origin_url) as reg:
        run = matrix_run(reg)
    # a run stored with its full command line, as registries did before commands were masked
    connection = sqlite3.connect(origin_dir / "srpo.db")
    with connection:
        connection.execute("UPDATE runs SET command = ? WHERE id = ?", (PASSWORD_COMMAND, run))
    connection.close()
    with Registry(origin_url) as reg:
        assert reg.get_run(run).command == PASSWORD_COMMAND
        archive = pair_zoo(reg, run, tmp_path)
    raw = gzip.decompress(archive.read_bytes())
    assert b"hunter2" not in raw
    document, _ = unpack(archive)
    masked = "srpo train --registry postgresql+psycopg://lab:***@db.example/srpo"
    assert {m["run"]["command"] for m in members(document) if m["run"]} == {masked}

    Registry(registry_url).close()
    cli("zoo", "import", str(archive))
    with Registry(registry_url) as lab:
        assert lab.get_run(run).command == masked
        export_zoo(lab, "pair", tmp_path / "again.tar.gz")
    assert (tmp_path / "again.tar.gz").read_bytes() == archive.read_bytes()

    def leak(document: Document, files: Files) -> None:
        document["name"] = "leaky"
        for member in members(document)[:2]:
            member["run"]["command"] = PASSWORD_COMMAND

    leaky = craft(archive, tmp_path / "leaky.tar.gz", leak)
    line = refuses_unchanged(cli, registry_url, "zoo", "import", str(leaky))
    where = "manifest.members[0].run.command"
    assert (
        line
        == f"error: {leaky}: malformed zoo.json: {where} holds a password; archives never carry one"
    )
    assert "hunter2" not in line


# ---- 7. names and descriptions are text, never markup -------------------------------------


def test_markup_in_a_description_is_printed_as_text(cli, registry_url, empty):
    description = "[/b] [bold]not bold[/bold] [red"
    cli("zoo", "build", "marked", "--env", "matrix", "--random", "--description", description)
    shown = cli("zoo", "show", "marked")
    assert description in shown.stdout and "random:matrix/uniform" in shown.stdout
    listed = cli("zoo", "list")
    assert "marked" in listed.stdout
    assert cli.json("zoo", "show", "marked")["description"] == description
