"""Causal LMs from local directories, with one LoRA adapter per debate role.

`load_causal_lm` is the one loading function (production and tests): local files only,
never a hub download. A `Roster` holds each distinct base model once, with named LoRA
adapters on it; a `Debater` says which base and adapter (None = the untuned base) plays.

peft's `set_adapter` marks only the active adapter trainable, so each adapter gets its own
optimiser over its own parameters (collected by name, whatever their requires_grad): one
optimiser built once over "the trainable parameters" would only ever train one adapter.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srpo_core.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto = bfloat16 on CUDA, float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def load_causal_lm(
    model_dir: str | Path, *, device: torch.device | str = "cpu", dtype: str = "auto"
) -> tuple[Any, Any]:
    """(model in eval mode on ``device``, tokenizer padding on the left) from a local
    transformers directory; a missing directory, a directory without a model or a
    tokenizer without a pad token is a UserError."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = torch.device(device)
    path = Path(model_dir)
    if not path.is_dir():
        raise UserError(f"no model directory {model_dir}")
    if not (path / "config.json").is_file():
        raise UserError(f"{model_dir} is not a transformers model directory (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot load the tokenizer in {model_dir}: {_one_line(exc)}") from None
    if tokenizer.pad_token_id is None:
        raise UserError(
            f"the tokenizer in {model_dir} has no pad token; batched generation needs one "
            "(set tokenizer.pad_token and save_pretrained the tokenizer again)"
        )
    tokenizer.padding_side = "left"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=resolve_dtype(dtype, device), local_files_only=True
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(f"cannot load the model in {model_dir}: {_one_line(exc)}") from None
    return model.to(device).eval(), tokenizer


@dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    targets: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraSpec:
        return cls(int(data["rank"]), float(data["alpha"]), tuple(data["targets"]))

    def peft_config(self) -> Any:
        from peft import LoraConfig

        targets = self.targets[0] if self.targets == ("all-linear",) else list(self.targets)
        # No dropout: log-probs must be a function of the weights (and the same seed).
        return LoraConfig(
            r=self.rank, lora_alpha=self.alpha, target_modules=targets, lora_dropout=0.0
        )


@dataclass(frozen=True)
class Debater:
    base: int
    """Index of the base model in the roster."""
    adapter: str | None
    """LoRA adapter name; None plays the untuned base model."""


@dataclass
class Base:
    model_dir: str
    model: Any
    """The transformers model, wrapped in a peft PeftModel once it has an adapter."""
    tokenizer: Any
    hidden_size: int


class Roster:
    """Base models (each distinct directory loaded once) and the adapters on them."""

    def __init__(self, model_dirs: list[str], *, device: torch.device, dtype: str = "auto"):
        self.device = device
        self.bases: list[Base] = []
        self._index: dict[str, int] = {}
        for model_dir in model_dirs:
            key = str(Path(model_dir).resolve())
            if key not in self._index:
                model, tokenizer = load_causal_lm(model_dir, device=device, dtype=dtype)
                hidden = int(model.config.get_text_config().hidden_size)
                self._index[key] = len(self.bases)
                self.bases.append(Base(model_dir, model, tokenizer, hidden))

    def base_of(self, model_dir: str) -> int:
        return self._index[str(Path(model_dir).resolve())]

    def add_adapter(self, base: int, name: str, lora: LoraSpec, seed: int) -> Debater:
        """A new LoRA adapter (B = 0: it starts as the base model), its random A drawn from
        ``seed`` (peft draws from torch's global RNG, so that RNG is forked and restored)."""
        from peft import PeftModel, get_peft_model

        holder = self.bases[base]
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.manual_seed(seed)
            if isinstance(holder.model, PeftModel):
                holder.model.add_adapter(name, lora.peft_config())
            else:
                holder.model = get_peft_model(holder.model, lora.peft_config(), adapter_name=name)
        holder.model.to(self.device).eval()
        return Debater(base, name)

    @contextmanager
    def active(self, seat: Debater) -> Iterator[tuple[Any, Any]]:
        """(model, tokenizer) with the seat's adapter active (or every adapter off)."""
        holder = self.bases[seat.base]
        if seat.adapter is None:
            if hasattr(holder.model, "disable_adapter"):
                with holder.model.disable_adapter():
                    yield holder.model, holder.tokenizer
            else:
                yield holder.model, holder.tokenizer
            return
        holder.model.set_adapter(seat.adapter)
        yield holder.model, holder.tokenizer

    def tokenizer(self, seat: Debater) -> Any:
        return self.bases[seat.base].tokenizer

    def parameters(self, seat: Debater) -> list[torch.nn.Parameter]:
        """The adapter's own parameters, named `...lora_A.<adapter>.weight` by peft."""
        marker = f".{seat.adapter}."
        return [p for n, p in self.bases[seat.base].model.named_parameters() if marker in n]

    def adapter_state(self, seat: Debater) -> dict[str, torch.Tensor]:
        """The adapter's weights, keyed without the adapter name (portable across names)."""
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.bases[seat.base].model, adapter_name=seat.adapter)
        return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def load_adapter_state(self, seat: Debater, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        model = self.bases[seat.base].model
        result = set_peft_model_state_dict(model, state, adapter_name=seat.adapter)
        missing = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
        if missing:
            raise UserError(f"adapter weights do not fit the model: {missing[0]}")


def _one_line(error: object) -> str:
    return " ".join(str(error).split())[:300]
