"""Seeds and generators: every random stream of a run is derived from its seed by name."""

from __future__ import annotations

import hashlib

import torch


def sub_seed(seed: int, name: str) -> int:
    """A stable seed for one component, so adding a component never shifts the others."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "big") >> 1


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
