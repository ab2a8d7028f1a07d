"""Checkpoint payloads: every trained policy's weights plus the algorithm's full state."""

from __future__ import annotations

import io
from typing import Any

import torch

from srpo_core.errors import UserError

FORMAT = 1


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
