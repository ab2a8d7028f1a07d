"""Checkpoint payloads: every trained policy's weights plus the algorithm's full state.

A payload is also checked against what it is loaded into (a policy's network, a resumed
run's freshly built trainer) before anything is loaded, so that a well-formed file of the
wrong structure (a key missing or extra, a tensor of another shape or dtype) is refused
with one line naming what differs, never a traceback from deep inside torch.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from srpo_core.agents.networks import ActorCritic, NetSpec
from srpo_core.agents.recurrent import RecurrentActorCritic, RecurrentSpec
from srpo_core.errors import UserError

FORMAT = 1
COUNTERS = ("env_steps", "hero_samples", "iterations")
"""The progress counters every checkpoint holds (the training loop adds to them)."""
OPAQUE_KEYS = frozenset({"env"})
"""Keys of the algorithm state whose values have no fixed structure, compared by their own
top-level keys only: an env's state describes the episodes in progress (Hanabi move lists,
Tag action histories, overcooked-ai state dicts), whose lengths and nesting change as they
go. The env's ``load_state_dict`` checks what it reads (Tag and Overcooked refuse another
number of envs), and `load_resume_state` turns any other failure into one line."""
LOAD_ERRORS = (KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError)
"""What loading a state that passed the structure check can still raise (a value of the
right structure that a component cannot use); reported as one line."""


def to_bytes(
    policies: dict[str, dict[str, torch.Tensor]], algo_state: dict[str, Any], counters: dict
) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {"format": FORMAT, "policies": policies, "algo": algo_state, "counters": counters}, buffer
    )
    return buffer.getvalue()


def from_bytes(payload: bytes, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load without unpickling code (weights_only): a checkpoint can't run anything.

    Resume loads to CPU: RNG states must stay CPU tensors, and modules, optimisers and
    runners move what they restore onto their own device."""
    try:
        state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise UserError(f"checkpoint could not be read: {type(exc).__name__}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError("checkpoint format is not supported by this version of srpo")
    return state


# ---- structure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as `structure` describes it."""

    shape: tuple[int, ...]
    dtype: str


def structure(tree: Any) -> Any:
    """A nested description of ``tree``: dicts keep their keys, lists and tuples become
    lists, tensors become `TensorInfo` (shape, dtype), other values the name of their type
    ("int", "str", "NoneType", ...)."""
    if isinstance(tree, torch.Tensor):
        return TensorInfo(tuple(tree.shape), str(tree.dtype).removeprefix("torch."))
    if isinstance(tree, dict):
        return {key: structure(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [structure(value) for value in tree]
    return type(tree).__name__


_NUMBERS = frozenset({"int", "float", "bool"})


def _kind(node: Any) -> str:
    """What a described node is, as a message says it."""
    if isinstance(node, TensorInfo):
        return "a tensor"
    if isinstance(node, dict):
        return "a dict"
    if isinstance(node, list):
        return "a list"
    if node in _NUMBERS:
        return "a number"
    if node == "NoneType":
        return "None"
    if node == "str":
        return "a string"
    return f"a {node}"


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _path(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, str):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
    return out or "the checkpoint"


@dataclass(frozen=True)
class Difference:
    """The first place where a tree does not have the expected structure."""

    path: tuple[Any, ...]
    """Keys and list indices from the compared root."""
    problem: str
    """missing | extra | kind | length | shape | dtype"""
    actual: str = ""
    expected: str = ""

    def __str__(self) -> str:
        """As a path: ``policies.agent0.pi.0.weight: shape (64, 3), expected (64, 4)``."""
        return f"{_path(self.path)}: {self._what()}"

    def _what(self) -> str:
        if self.problem in ("missing", "extra"):
            return "missing" if self.problem == "missing" else "extra key"
        if self.problem in ("shape", "dtype"):
            return f"{self.problem} {self.actual}, expected {self.expected}"
        return f"{self.actual}, expected {self.expected}"

    def as_key(self) -> str:
        """Within one flat state dict: ``key 'pi.0.weight' has shape (64, 3), expected
        (64, 4)``."""
        if not self.path:
            return f"its weights are {self.actual}, expected {self.expected}"
        key = f"key {'.'.join(str(p) for p in self.path)!r}"
        if self.problem == "missing":
            return f"{key} is missing"
        if self.problem == "extra":
            return f"extra {key}"
        if self.problem in ("shape", "dtype"):
            return f"{key} has {self.problem} {self.actual}, expected {self.expected}"
        return f"{key} is {self.actual}, expected {self.expected}"


def difference(
    actual: Any, expected: Any, path: tuple[Any, ...] = (), *, loose: bool = False
) -> Difference | None:
    """The first difference of structure (see `structure`) between the trees ``actual``
    and ``expected``, or None when they agree: dict keys (a missing key before an extra
    one, in the expected dict's order), list lengths, tensor shapes and dtypes, and the
    kind of other values (int, float and bool are all numbers). ``path`` prefixes the
    reported path.

    ``loose`` compares state that legitimately changes as training goes against the state
    of a freshly built trainer: None on either side fits anything (values set on first
    use, such as a runner's running sums); an empty dict or list fits any dict or list,
    and a tensor dimension of size 0 any size (collections that fill up, such as an
    optimiser's per-parameter state before its first step, a recurrent zoo partner's
    previous actions); under a key of `OPAQUE_KEYS` only the presence of the expected keys
    is checked."""
    return _first(structure(actual), structure(expected), path, loose)


def _fills(actual: TensorInfo, expected: TensorInfo) -> bool:
    """Whether ``actual`` has the shape of ``expected`` except where that is empty (a
    placeholder filled on first use, such as a zoo partner's previous actions)."""
    return len(actual.shape) == len(expected.shape) and all(
        e in (0, a) for a, e in zip(actual.shape, expected.shape, strict=True)
    )


def _first(actual: Any, expected: Any, path: tuple[Any, ...], loose: bool) -> Difference | None:
    if loose and (actual == "NoneType" or expected == "NoneType"):
        return None
    if _kind(actual) != _kind(expected):
        return Difference(path, "kind", _kind(actual), _kind(expected))
    if isinstance(expected, TensorInfo):
        assert isinstance(actual, TensorInfo)
        if actual.shape != expected.shape and not (loose and _fills(actual, expected)):
            return Difference(path, "shape", _shape(actual.shape), _shape(expected.shape))
        if actual.dtype != expected.dtype:
            return Difference(path, "dtype", actual.dtype, expected.dtype)
        return None
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        if loose and not expected:
            return None
        opaque = loose and bool(path) and path[-1] in OPAQUE_KEYS
        for key, value in expected.items():
            if key not in actual:
                return Difference((*path, key), "missing")
            if opaque:
                continue
            found = _first(actual[key], value, (*path, key), loose)
            if found is not None:
                return found
        if not opaque:
            for key in actual:
                if key not in expected:
                    return Difference((*path, key), "extra")
        return None
    if isinstance(expected, list):
        assert isinstance(actual, list)
        if loose and not expected:
            return None
        if len(actual) != len(expected):
            items = f"{len(actual)} item" + ("" if len(actual) == 1 else "s")
            return Difference(path, "length", items, str(len(expected)))
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            found = _first(a, e, (*path, index), loose)
            if found is not None:
                return found
    return None


# ---- checks -------------------------------------------------------------------------------


def expected_policy_state(net_spec: dict) -> dict[str, TensorInfo]:
    """The keys, shapes and dtypes of the weights of a network built from a stored policy
    spec's ``net`` (an MLP actor-critic, or a GRU one for kind "gru"), built on the meta
    device: no memory is allocated whatever its size."""
    with torch.device("meta"):
        if net_spec.get("kind") == "gru":
            net: torch.nn.Module = RecurrentActorCritic(RecurrentSpec.from_dict(net_spec))
        else:
            net = ActorCritic(NetSpec.from_dict(net_spec))
    return structure(net.state_dict())


def check_policy_state(state: dict, spec: dict, role: str, label: str) -> None:
    """Refuse (UserError "<label> does not fit its policy <role>: <difference>") unless the
    checkpoint ``state`` (from `from_bytes`) holds weights for ``role`` whose keys, shapes
    and dtypes are those of a network built from the policy's stored ``spec``.

    A spec without "net" (an LLM debate agent: LoRA adapter weights over a base model) is
    checked only for holding a dict of tensors for ``role``: the adapter's shapes follow
    from the base model, which takes seconds and gigabytes to load. A resumed debate run
    checks them in full, against its trainer's own adapters (`check_resume_state`)."""
    refuse = f"{label} does not fit its policy {role}"
    policies = state.get("policies") if isinstance(state, dict) else None
    if not isinstance(policies, dict):
        raise UserError(f"{refuse}: its policies are {_kind(structure(policies))}, expected a dict")
    if role not in policies:
        held = ", ".join(str(r) for r in policies) or "none"
        raise UserError(f"{refuse}: it holds no weights for {role} (it holds: {held})")
    weights = policies[role]
    if "net" not in spec:
        if not isinstance(weights, dict):
            found: Difference | None = Difference((), "kind", _kind(structure(weights)), "a dict")
        else:
            found = next(
                (
                    Difference((key,), "kind", _kind(structure(value)), "a tensor")
                    for key, value in weights.items()
                    if not isinstance(value, torch.Tensor)
                ),
                None,
            )
    else:
        try:
            expected = expected_policy_state(spec["net"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"the stored spec of policy {role} does not describe a network: {_one_line(exc)}"
            ) from None
        found = _first(structure(weights), expected, (), False)
    if found is not None:
        raise UserError(f"{refuse}: {found.as_key()}")


def check_resume_state(state: dict, trainable: Any, label: str) -> None:
    """Refuse (UserError, one line naming ``label`` and the first difference) a
    checkpoint that does not fit a resumed run's freshly built ``trainable`` (an
    `Algorithm` or the debate trainer): every policy's weights exactly as
    ``trainable.policy_states()`` (keys, shapes, dtypes), the algorithm state as
    ``trainable.state_dict()`` by `difference`'s loose rules, and the progress counters.
    Reads the trainable's state, changes nothing."""
    refuse = f"{label} does not fit its run"
    for key in ("policies", "algo", "counters"):
        if not isinstance(state.get(key), dict):
            found = (
                Difference((key,), "missing")
                if key not in state
                else Difference((key,), "kind", _kind(structure(state[key])), "a dict")
            )
            raise UserError(f"{refuse}: {found}")
    policies, expected = state["policies"], trainable.policy_states()
    for role, weights in expected.items():
        if role not in policies:
            raise UserError(f"{refuse}: {Difference(('policies', role), 'missing')}")
        found = _first(structure(policies[role]), structure(weights), (), False)
        if found is not None:
            raise UserError(f"{label} does not fit its policy {role}: {found.as_key()}")
    for role in policies:
        if role not in expected:
            raise UserError(f"{refuse}: {Difference(('policies', role), 'extra')}")
    found = difference(state["algo"], trainable.state_dict(), ("algo",), loose=True)
    if found is not None:
        raise UserError(f"{refuse}: {found}")
    for key in COUNTERS:
        value = state["counters"].get(key)
        if value is None:
            raise UserError(f"{refuse}: {Difference(('counters', key), 'missing')}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UserError(f"{refuse}: counters.{key}: {value!r}, expected a count")


def load_resume_state(trainable: Any, state: dict, label: str) -> dict[str, int]:
    """Load a checkpoint into a resumed run's freshly built ``trainable`` after
    `check_resume_state`; returns its progress counters. Whatever the load still raises
    becomes one UserError line, and so does optimiser state that does not fit its
    parameters (torch's optimisers copy it without a look, and the first step would
    fail). A refused state may leave ``trainable`` half loaded: build a new one."""
    check_resume_state(state, trainable, label)
    refuse = f"{label} does not fit its run"
    try:
        trainable.load_state_dict(state["policies"], state["algo"])
    except UserError as exc:
        raise UserError(f"{refuse}: {exc}") from None
    except LOAD_ERRORS as exc:
        raise UserError(f"{refuse}: {_one_line(exc)}") from None
    for where, optimizer in _optimizers(trainable):
        found = _optimizer_difference(optimizer)
        if found is not None:
            raise UserError(f"{refuse}: the optimiser {where}: {found}")
    return state["counters"]


def load_members_state(population: Any, states: list[dict], label: str) -> None:
    """Load checked members' checkpoints (`check_resume_state`, each against its slice)
    into a freshly built population; whatever the load still raises becomes one UserError
    line. A refused state may leave the population half loaded: build a new one."""
    try:
        population.load_state_dict([s["policies"] for s in states], [s["algo"] for s in states])
    except LOAD_ERRORS as exc:
        raise UserError(f"{label} does not fit its run: {_one_line(exc)}") from None


def _optimizer_difference(optimizer: torch.optim.Optimizer) -> str | None:
    """Per-parameter state (Adam's moments) must have its parameter's shape."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    index = {id(p): i for i, p in enumerate(params)}
    for param, entry in optimizer.state.items():
        if id(param) not in index:
            return "state for a tensor that is not one of its parameters"
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                return (
                    f"parameter {index[id(param)]}: {name!r} has shape {_shape(value.shape)}, "
                    f"expected {_shape(param.shape)}"
                )
    return None


def _optimizers(root: Any, depth: int = 2) -> Iterator[tuple[str, torch.optim.Optimizer]]:
    """The optimisers reachable from ``root``'s attributes (through dicts, lists and
    srpo objects, such as learners, up to ``depth`` objects deep), with the attribute
    path that leads to each."""
    seen: set[int] = set()

    def walk(node: Any, path: str, level: int) -> Iterator[tuple[str, torch.optim.Optimizer]]:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, torch.optim.Optimizer):
            yield path, node
        elif isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}[{key!r}]", level)
        elif isinstance(node, list | tuple):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]", level)
        elif (
            level <= depth
            and type(node).__module__.startswith("srpo_core")
            and not isinstance(node, torch.nn.Module)
            and hasattr(node, "__dict__")
        ):
            for name, value in vars(node).items():
                yield from walk(value, f"{path}.{name}" if path else name, level + 1)

    yield from walk(root, "", 0)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
