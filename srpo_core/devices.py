"""The torch device a run asks for (``run.device``)."""

from __future__ import annotations

import torch

from srpo_core.errors import UserError


def resolve_device(name: str) -> torch.device:
    """cpu | cuda | auto (cuda when available); cuda without a CUDA device is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but torch sees no CUDA device")
    return torch.device(name)
