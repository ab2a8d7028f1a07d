"""Typed run configuration: dataclass sections, TOML presets and dotted overrides.

Resolution order (later wins): dataclass defaults -> the env's default preset (or a stored
run's config with ``--config-from``) -> ``--preset`` files -> CLI flags -> ``--set`` pairs.
Every key is checked against the dataclasses, so a typo is an error, never a silent no-op.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srpo_core.errors import UserError

ALGOS = ("ippo", "srpo")
KL_DIRECTIONS = ("adversary-partner", "partner-adversary")
ADVERSARY_ENTROPY = ("none", "eps")
ADVERSARY_INIT = ("partner", "fresh")
BUDGETS = ("env_steps", "hero_samples")
DEVICES = ("cpu", "cuda", "auto")
PARTNERS = ("learners-only", "mixed", "tabular-only")


@dataclass
class RunSection:
    """What to run for how long, and where."""

    seed: int = 0
    steps: int = 100_000
    """Budget, counted in env steps or hero samples (see algo.budget)."""
    device: str = "cpu"
    """cpu | cuda | auto (cuda when available)."""
    threads: int = 1
    """torch CPU threads; 1 avoids OpenMP spin contention with env stepping."""
    parallel_updates: bool = True
    """Update the heroes (each with its own adversaries) side by side, one thread per
    hero. The numbers are the same either way (each hero draws from its own RNG); on a
    multi-core CPU it is faster."""
    log_every: int = 1
    """Iterations between metric rows."""
    checkpoint_every: int = 0
    """Env steps between checkpoints; 0 keeps only the final one."""
    eval_episodes: int = 64
    """Episodes of the trained agents playing together, at each log row and at the end."""


@dataclass
class AlgoSection:
    """IPPO or SRPO; srpo-notes section 3. IPPO is SRPO's tau = 0 limit."""

    name: str = "ippo"
    tau: float = 0.0
    """Risk aversion; the adversary's KL penalty weight is 1/tau."""
    eps: float = 0.0
    """Bounded rationality: the entropy bonus weight of the hero (and IPPO agents)."""
    kl_direction: str = "adversary-partner"
    """adversary-partner = KL(phi || theta_-i) as in the paper; partner-adversary as the
    authors' gridworld/Tag/Hanabi code."""
    adversary_entropy: str = "none"
    """none (paper) | eps (the authors' Tag code gives the adversary the hero's bonus)."""
    adversary_init: str = "partner"
    """partner: the adversary starts as a copy of the partner policy; fresh: own init."""
    budget: str = "env_steps"
    """env_steps: SRPO gets IPPO's env interactions; hero_samples: same samples per hero."""
    share_policy: bool = False
    """One policy for every trained seat (the paper's Hanabi): IPPO trains one shared policy;
    SRPO one shared hero and one shared adversary, the hero in a random seat of each env in
    each rollout and the adversary in the others. Published as the role ``shared``."""


@dataclass
class PPOSection:
    """The PPO core shared by heroes, IPPO agents and adversaries."""

    lr: float = 3e-4
    critic_lr: float = 0.0
    """The critic's learning rate (separate actor and critic networks); 0: ppo.lr."""
    num_envs: int = 8
    num_steps: int = 128
    epochs: int = 4
    minibatches: int = 1
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    """0 disables gradient clipping."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over the budget (settles noisy fixed points)."""
    norm_adv: bool = False
    clip_vloss: bool = False
    adam_eps: float = 1e-5


@dataclass
class NetSection:
    """Actor and critic MLPs."""

    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    shared_trunk: bool = False
    ortho_init: bool = True
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian (continuous-action) policies."""
    recurrent: int = 0
    """GRU width of a recurrent policy (srpo_core/agents/recurrent.py); 0: the MLPs above."""
    embed: int = 32
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
    reward_scale: float = 1.0
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
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"preset {path} is not valid TOML: {exc}") from None


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """`section.key=value` pairs into a nested dict; values use TOML syntax, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key:
            raise UserError(f"--set expects section.key=value, got '{pair}'")
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


def env_config_class(name: str) -> type:
    from srpo_core.envs import ENVS

    if name not in ENVS:
        raise UserError(f"unknown env '{name}' (known: {', '.join(sorted(ENVS))})")
    return ENVS[name].config


def default_layers(env: str) -> dict[str, Any]:
    """The env's default preset, the base layer of every run on that env."""
    from srpo_core.envs import ENVS

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


def validate(config: Config) -> None:
    algo, run, ppo = config.algo, config.run, config.ppo
    _choice(algo.name, ALGOS, "algo.name")
    _choice(algo.kl_direction, KL_DIRECTIONS, "algo.kl_direction")
    _choice(algo.adversary_entropy, ADVERSARY_ENTROPY, "algo.adversary_entropy")
    _choice(algo.adversary_init, ADVERSARY_INIT, "algo.adversary_init")
    _choice(algo.budget, BUDGETS, "algo.budget")
    _choice(run.device, DEVICES, "run.device")
    if algo.tau < 0:
        raise UserError(f"tau must be >= 0, got {algo.tau}")
    if algo.eps < 0:
        raise UserError(f"eps must be >= 0, got {algo.eps}")
    if algo.name == "srpo" and algo.tau == 0:
        raise UserError("SRPO needs tau > 0; tau = 0 is IPPO (--algo ippo)")
    if algo.name == "ippo" and algo.tau != 0:
        raise UserError(f"IPPO is the tau = 0 case, got tau {algo.tau}; use --algo srpo")
    for where, value in [
        ("run.steps", run.steps),
        ("run.threads", run.threads),
        ("run.log_every", run.log_every),
        ("ppo.num_envs", ppo.num_envs),
        ("ppo.num_steps", ppo.num_steps),
        ("ppo.epochs", ppo.epochs),
        ("ppo.minibatches", ppo.minibatches),
    ]:
        if value < 1:
            raise UserError(f"{where} must be >= 1, got {value}")
    if run.checkpoint_every < 0 or run.eval_episodes < 0:
        raise UserError("run.checkpoint_every and run.eval_episodes must be >= 0")
    if (ppo.num_envs * ppo.num_steps) % ppo.minibatches:
        raise UserError("ppo.minibatches must divide ppo.num_envs * ppo.num_steps")
    if ppo.lr <= 0 or ppo.clip <= 0:
        raise UserError("ppo.lr and ppo.clip must be > 0")
    if ppo.critic_lr < 0:
        raise UserError(f"ppo.critic_lr must be >= 0, got {ppo.critic_lr}")
    if ppo.critic_lr and config.net.shared_trunk:
        raise UserError("ppo.critic_lr needs separate actor and critic (net.shared_trunk = false)")
    _validate_recurrent(config)
    if hasattr(config.env, "validate"):
        config.env.validate()


def _validate_recurrent(config: Config) -> None:
    net, train = config.net, config.train
    if not train.partners.startswith("zoo:"):
        _choice(train.partners, (*PARTNERS, "zoo:NAME"), "train.partners")
    elif not train.partners[4:]:
        raise UserError("train.partners=zoo:NAME needs a zoo name")
    if net.recurrent < 0 or net.embed < 1 or train.reward_scale <= 0:
        raise UserError("net.recurrent must be >= 0, net.embed >= 1, train.reward_scale > 0")
    if train.partners != "learners-only" and (config.env.name != "ipd" or not net.recurrent):
        raise UserError(
            f"train.partners={train.partners} needs --env ipd and a recurrent policy "
            "(net.recurrent > 0)"
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
