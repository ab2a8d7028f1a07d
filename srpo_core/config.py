"""Typed run configuration: dataclass sections, TOML presets and dotted overrides.

Resolution order (later wins): dataclass defaults -> the env's default preset (or a stored
run's config with ``--config-from``) -> ``--preset`` files -> CLI flags -> ``--set`` pairs.
Every key is checked against the dataclasses, so a typo is an error, never a silent no-op,
and every value against its field's `Range` (floats must be finite, whatever their range).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srpo_core.envs import ENVS
from srpo_core.envs.family import EnvConfig
from srpo_core.errors import UserError

ALGOS = ("ippo", "srpo")
KL_DIRECTIONS = ("adversary-partner", "partner-adversary")
ADVERSARY_ENTROPY = ("none", "eps")
ADVERSARY_INIT = ("partner", "fresh")
BUDGETS = ("env_steps", "hero_samples")
DEVICES = ("cpu", "cuda", "auto")
PARTNERS = ("learners-only", "mixed", "tabular-only")
ACTIVATIONS = ("tanh", "relu")
SEED_MAX = 2**63 - 1
"""Seeds are stored as 64-bit integers."""


@dataclass(frozen=True)
class Range:
    """The values a config key admits: numbers within the bounds (floats also finite), strings
    among ``choices``; a list's elements one by one. Kept in the field's metadata (`ranged`)
    and checked for every section, env sections included, by `check_ranges`."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()

    def admits(self, value: Any) -> bool:
        if isinstance(value, str):
            return not self.choices or value in self.choices
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
        )

    def describe(self, value: Any) -> str:
        """What `admits` asks for, as the error message says it: 'in [0, 1]', 'finite and > 0'."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        closed = self.ge is not None
        low = self.ge if closed else self.gt
        if low is not None and self.le is not None:
            return f"in {'[' if closed else '('}{low}, {self.le}]"
        parts = ["finite"] if isinstance(value, float) else []
        if low is not None:
            parts.append(f"{'>=' if closed else '>'} {low}")
        if self.le is not None:
            parts.append(f"<= {self.le}")
        return " and ".join(parts)


ANY = Range()
"""The range of a key without one: any int or string, any finite float."""


def ranged(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **bounds):
    """A config dataclass field whose values must lie in ``Range(**bounds)``."""
    return field(default=default, default_factory=factory, metadata={"range": Range(**bounds)})


@dataclass
class RunSection:
    """What to run for how long, and where."""

    seed: int = ranged(0, ge=0, le=SEED_MAX)
    steps: int = ranged(100_000, ge=1)
    """Budget, counted in env steps or hero samples (see algo.budget)."""
    device: str = ranged("cpu", choices=DEVICES)
    """cpu | cuda | auto (cuda when available)."""
    threads: int = ranged(1, ge=1)
    """torch CPU threads; 1 avoids OpenMP spin contention with env stepping."""
    parallel_updates: bool = True
    """Update the heroes (each with its own adversaries) side by side, one thread per
    hero. The numbers are the same either way (each hero draws from its own RNG); on a
    multi-core CPU it is faster."""
    log_every: int = ranged(1, ge=1)
    """Iterations between metric rows."""
    checkpoint_every: int | None = ranged(None, ge=0)
    """Env steps between checkpoints; 0 keeps only the final one. Unset: every tenth of
    ``steps``, so that zoos can pin early, middle and final partners (``zoo build --at``)."""
    eval_episodes: int = ranged(64, ge=0)
    """Episodes of the trained agents playing together, at each log row and at the end."""
    tensorboard: str = ""
    """A directory for live TensorBoard event files, one folder per run id (the
    ``tensorboard`` extra); empty: none."""
    wandb: str = ""
    """A Weights & Biases project: each run is logged there live as a W&B run of the same
    id (the ``wandb`` extra); empty: none."""
    wandb_mode: str = ranged("offline", choices=("offline", "online"))
    """offline: W&B's run files under ./wandb (or $WANDB_DIR) for ``wandb sync``, no
    network; online: stream to the W&B server you are logged in to."""

    @property
    def checkpoint_cadence(self) -> int:
        """Env steps between checkpoints (``checkpoint_every`` or its default); 0: none but
        the final one."""
        if self.checkpoint_every is None:
            return -(-self.steps // 10)
        return self.checkpoint_every


@dataclass
class AlgoSection:
    """IPPO or SRPO; srpo-notes section 3. IPPO is SRPO's tau = 0 limit."""

    name: str = ranged("ippo", choices=ALGOS)
    tau: float = ranged(0.0, ge=0)
    """Risk aversion; the adversary's KL penalty weight is 1/tau."""
    eps: float = ranged(0.0, ge=0)
    """Bounded rationality: the entropy bonus weight of the hero (and IPPO agents)."""
    kl_direction: str = ranged("adversary-partner", choices=KL_DIRECTIONS)
    """adversary-partner = KL(phi || theta_-i) as in the paper; partner-adversary as the
    authors' gridworld/Tag/Hanabi code."""
    adversary_entropy: str = ranged("none", choices=ADVERSARY_ENTROPY)
    """none (paper) | eps (the authors' Tag code gives the adversary the hero's bonus)."""
    adversary_init: str = ranged("partner", choices=ADVERSARY_INIT)
    """partner: the adversary starts as a copy of the partner policy; fresh: own init."""
    budget: str = ranged("env_steps", choices=BUDGETS)
    """env_steps: SRPO gets IPPO's env interactions; hero_samples: same samples per hero."""
    share_policy: bool = False
    """One policy for every trained seat (the paper's Hanabi): IPPO trains one shared policy;
    SRPO one shared hero and one shared adversary, the hero in a random seat of each env in
    each rollout and the adversary in the others. Published as the role ``shared``."""


@dataclass
class PPOSection:
    """The PPO core shared by heroes, IPPO agents and adversaries."""

    lr: float = ranged(3e-4, gt=0)
    critic_lr: float = ranged(0.0, ge=0)
    """The critic's learning rate (separate actor and critic networks); 0: ppo.lr."""
    num_envs: int = ranged(8, ge=1)
    num_steps: int = ranged(128, ge=1)
    epochs: int = ranged(4, ge=1)
    minibatches: int = ranged(1, ge=1)
    gamma: float = ranged(0.99, ge=0, le=1)
    gae_lambda: float = ranged(0.95, ge=0, le=1)
    clip: float = ranged(0.2, gt=0)
    vf_coef: float = ranged(0.5, ge=0)
    max_grad_norm: float = ranged(0.5, ge=0)
    """0 disables gradient clipping."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the budget (settles noisy fixed points)."""
    norm_adv: bool = False
    clip_vloss: bool = False
    adam_eps: float = ranged(1e-5, gt=0)


@dataclass
class NetSection:
    """Actor and critic MLPs."""

    hidden: list[int] = ranged(factory=lambda: [64, 64], ge=1)
    activation: str = ranged("tanh", choices=ACTIVATIONS)
    shared_trunk: bool = False
    ortho_init: bool = True
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian (continuous-action) policies."""
    conv: list[int] = ranged(factory=list, ge=1)
    """Channels of 3x3 convolutions (stride 1, padding 1, ReLU) before each MLP, for grid
    observations (overcooked with env.obs='lossless'); []: the MLPs read the flat vector."""
    recurrent: int = ranged(0, ge=0)
    """GRU width of a recurrent policy (srpo_core/agents/recurrent.py); 0: the MLPs above."""
    embed: int = ranged(32, ge=1)
    """Recurrent policies: width of the embeddings of observation, previous action, reward."""


@dataclass
class TrainSection:
    """Whom the learners play with (srpo-notes section 6); recurrent learners only."""

    partners: str = "learners-only"
    """learners-only: each other, as everywhere else; mixed: each learner meets the other
    learner in half its episodes and a fresh random memory-one tabular agent in the other
    half; tabular-only: tabular agents only; zoo:NAME: in every episode a member of zoo
    NAME (drawn per episode, not a held-out zoo). All but learners-only need env ipd and a
    recurrent policy (net.recurrent > 0)."""
    reward_scale: float = ranged(1.0, gt=0)
    """Rewards are multiplied by this before GAE (recurrent learners)."""


@dataclass
class Config:
    env: Any
    run: RunSection = field(default_factory=RunSection)
    algo: AlgoSection = field(default_factory=AlgoSection)
    ppo: PPOSection = field(default_factory=PPOSection)
    net: NetSection = field(default_factory=NetSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "run": RunSection,
    "algo": AlgoSection,
    "ppo": PPOSection,
    "net": NetSection,
    "train": TrainSection,
}


def presets_dir() -> Path:
    """`SRPO_PRESETS` if set, else the repository's presets/ folder."""
    env = os.environ.get("SRPO_PRESETS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "presets"


def load_preset(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.exists():
        path = presets_dir() / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in presets_dir().glob("*.toml")))
        raise UserError(f"unknown preset '{name_or_path}' (known: {known})")
    try:
        layers = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"preset {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read preset {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"preset {path} is not valid TOML: {exc}") from None
    for section, values in layers.items():
        if not isinstance(values, dict):
            raise UserError(
                f"preset {path}: '{section}' must be a [{section}] table, got {values!r}"
            )
    return layers


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A stored config's nested sections as ``{"section.key": value}``; lists and scalars
    are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """`section.key=value` pairs into a nested dict; values use TOML syntax, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key or len(pair.splitlines()) > 1:
            raise UserError(f"--set expects one section.key=value on one line, got {pair!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        section, _, name = key.strip().partition(".")
        out.setdefault(section, {})[name] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in update.items():
        if isinstance(values, dict):
            out.setdefault(section, {}).update(values)
        else:
            out[section] = values
    return out


def env_config_class(name: str) -> type[EnvConfig]:
    if name not in ENVS:
        raise UserError(f"unknown env '{name}' (known: {', '.join(sorted(ENVS))})")
    return ENVS[name].config


def default_layers(env: str) -> dict[str, Any]:
    """The env's default preset, the base layer of every run on that env."""
    env_config_class(env)
    return load_preset(ENVS[env].default_preset)


def build_config(layers: dict[str, Any]) -> Config:
    """Nested dict -> validated Config. Unknown sections or keys are errors."""
    env_values = dict(layers.get("env", {}))
    env_cls = env_config_class(str(env_values.get("name", "")))
    unknown = set(layers) - {"env", *SECTIONS}
    if unknown:
        raise UserError(f"unknown config section '{sorted(unknown)[0]}'")
    sections = {name: _build(cls, layers.get(name, {}), name) for name, cls in SECTIONS.items()}
    config = Config(env=_build(env_cls, env_values, "env"), **sections)
    validate(config)
    return config


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise UserError(f"unknown key '{section}.{key}' (known: {known})")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, where) for v in value]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is Any or (isinstance(hint, type) and isinstance(value, hint)):
        if hint is int and isinstance(value, bool):
            raise UserError(f"{where} must be an integer, got {value!r}")
        return value
    name = getattr(hint, "__name__", str(hint))
    raise UserError(f"{where} must be {name}, got {value!r}")


def _choice(value: str, options: tuple[str, ...], where: str) -> None:
    if value not in options:
        raise UserError(f"{where} must be one of {', '.join(options)}, got '{value}'")


def check_ranges(section: Any, name: str) -> None:
    """Every value of a config section (a dataclass) within its field's `Range`."""
    for f in dataclasses.fields(section):
        _check_range(getattr(section, f.name), f.metadata.get("range", ANY), f"{name}.{f.name}")


def _check_range(value: Any, allowed: Range, where: str) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_range(item, allowed, f"{where}[{i}]")
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        if not allowed.admits(value):
            raise UserError(f"{where} = {value!r}: must be {allowed.describe(value)}")


def validate(config: Config) -> None:
    """Each key's range, then what ranges cannot say: how keys go together."""
    for name in ("env", *SECTIONS):
        check_ranges(getattr(config, name), name)
    algo, ppo = config.algo, config.ppo
    if algo.name == "srpo" and algo.tau == 0:
        raise UserError("SRPO needs tau > 0; tau = 0 is IPPO (--algo ippo)")
    if algo.name == "ippo" and algo.tau != 0:
        raise UserError(f"IPPO is the tau = 0 case, got tau {algo.tau}; use --algo srpo")
    if (ppo.num_envs * ppo.num_steps) % ppo.minibatches:
        raise UserError("ppo.minibatches must divide ppo.num_envs * ppo.num_steps")
    if ppo.critic_lr and config.net.shared_trunk:
        raise UserError("ppo.critic_lr needs separate actor and critic (net.shared_trunk = false)")
    _validate_recurrent(config)
    config.env.validate()


def _validate_recurrent(config: Config) -> None:
    net, train = config.net, config.train
    if not train.partners.startswith("zoo:"):
        _choice(train.partners, (*PARTNERS, "zoo:NAME"), "train.partners")
    elif not train.partners[4:]:
        raise UserError("train.partners=zoo:NAME needs a zoo name")
    if train.partners != "learners-only" and (config.env.name != "ipd" or not net.recurrent):
        raise UserError(
            f"train.partners={train.partners} needs --env ipd and a recurrent policy "
            "(net.recurrent > 0)"
        )
    if net.recurrent and net.conv:
        raise UserError("net.conv is for feed-forward policies; recurrent ones embed the vector")
    if net.recurrent and config.env.name != "ipd":
        raise UserError(
            "recurrent policies (net.recurrent > 0) train on env ipd only (their metrics, "
            "partners and probes are the IPD's)"
        )
    if net.recurrent and (config.algo.name != "ippo" or config.algo.share_policy):
        raise UserError("recurrent policies (net.recurrent > 0) train with independent algo ippo")
    if net.recurrent and config.ppo.num_envs % config.ppo.minibatches:
        raise UserError("recurrent policies: ppo.minibatches must divide ppo.num_envs")


def implied_algorithm(algo_flags: dict[str, Any]) -> dict[str, Any]:
    """What one algorithm flag implies for the other, so presets of either method take
    both: ``--tau`` alone picks SRPO (tau > 0) or IPPO (tau = 0); ``--algo ippo`` alone
    means tau = 0. Layered under the flags themselves."""
    name, tau = algo_flags.get("name"), algo_flags.get("tau")
    if name is None and isinstance(tau, int | float):
        return {"algo": {"name": "srpo" if tau > 0 else "ippo"}}
    if name == "ippo" and tau is None:
        return {"algo": {"tau": 0.0}}
    return {}


def resolve(
    *,
    presets: list[str] = (),
    flags: dict[str, dict[str, Any]] | None = None,
    sets: list[str] = (),
    base: dict[str, Any] | None = None,
) -> Config:
    """Layer a run's config: ``base`` (a stored run's config) or the env's default preset,
    then presets, then CLI flags (``{section: {key: value}}``, None values skipped; see
    `implied_algorithm`), then ``--set`` pairs."""
    explicit: dict[str, Any] = {}
    for preset in presets:
        explicit = merge(explicit, load_preset(preset))
    cleaned = {
        section: {k: v for k, v in values.items() if v is not None}
        for section, values in (flags or {}).items()
    }
    explicit = merge(explicit, implied_algorithm(cleaned.get("algo", {})))
    explicit = merge(explicit, cleaned)
    explicit = merge(explicit, parse_set(list(sets)))
    env = explicit.get("env", {}).get("name") or (base or {}).get("env", {}).get("name")
    if not env:
        raise UserError("no env given: use --env NAME (or a preset, or --config-from RUN)")
    if base is None or base.get("env", {}).get("name") != env:
        base = default_layers(env)
    return build_config(merge(base, explicit))


def with_seed(config: Config, seed: int) -> Config:
    """A copy of ``config`` with another ``run.seed`` (checked like any other value)."""
    return build_config(merge(config.to_dict(), {"run": {"seed": seed}}))
