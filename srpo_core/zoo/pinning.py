"""Policies pinned to one checkpoint (step and sha256), and the checks before one plays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from srpo_core.errors import UserError
from srpo_core.registry import (
    CheckpointInfo,
    Registry,
    RunInfo,
)


@dataclass(frozen=True)
class Pinned:
    """A policy at one checkpoint: what a zoo member or a cross-play seat refers to."""

    ref: str
    step: int | None
    sha256: str | None

    @property
    def label(self) -> str:
        return self.ref if self.step is None else f"{self.ref}@{self.step}"

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "step": self.step, "sha256": self.sha256}


def parse_pinned(text: str) -> tuple[str, int | None]:
    """``REF`` or ``REF@STEP``."""
    ref, at, step = text.rpartition("@")
    if not at:
        return text, None
    try:
        return ref, int(step)
    except ValueError:
        raise UserError(f"'{text}': the part after @ must be a checkpoint step") from None


def pin(
    registry: Registry,
    ref: str,
    *,
    env: str,
    step: int | None = None,
    fraction: float | None = None,
) -> Pinned:
    """Pin registered policy ``ref`` to a checkpoint: ``step`` exactly, else the one nearest
    ``fraction`` of the run's last checkpoint step (earlier on ties), else the latest. A
    policy without a run has no checkpoint. (`srpo zoo build --at` first checks that its
    fractions pin distinct checkpoints: `_check_fractions`.)"""
    info = registry.get_policy(ref)
    if info.env != env:
        raise UserError(f"policy {info.id} plays {info.env}, not {env}")
    if info.kind != "trained":
        return Pinned(info.id, None, None)
    saved = registry.checkpoints(info.run_id)
    if not saved:
        raise UserError(f"run {info.run_id} has no checkpoint to pin {info.id} to")
    if step is not None:
        chosen = [c for c in saved if c.step == step]
        if not chosen:
            steps = ", ".join(str(c.step) for c in saved)
            raise UserError(f"run {info.run_id} has no checkpoint at step {step} (has {steps})")
        checkpoint = chosen[0]
    elif fraction is not None:
        (at,) = fraction_steps(saved, [fraction])
        checkpoint = next(c for c in saved if c.step == at)
    else:
        checkpoint = saved[-1]
    return Pinned(info.id, checkpoint.step, checkpoint.sha256)


def run_policies(registry: Registry, run: RunInfo, fraction: float | None = None) -> list[Pinned]:
    """Every trained policy a run published, pinned at ``fraction`` (latest by default)."""
    return [
        pin(registry, p.id, env=run.env, fraction=fraction)
        for p in registry.policies(run_id=run.id)
        if p.kind == "trained"
    ]


def check_pinned(registry: Registry, pinned: Pinned) -> None:
    """A pinned checkpoint must still be the one stored at its step: results and training
    partners are keyed by its hash."""
    if pinned.step is not None:
        pinned_checkpoint(registry, pinned)


def pinned_checkpoint(registry: Registry, pinned: Pinned) -> CheckpointInfo:
    info = registry.get_policy(pinned.ref)
    for checkpoint in registry.checkpoints(info.run_id):
        if checkpoint.step == pinned.step:
            if checkpoint.sha256 != pinned.sha256:
                raise UserError(
                    f"{pinned.label}: the checkpoint now hashes to {checkpoint.sha256[:12]}, "
                    f"not the pinned {str(pinned.sha256)[:12]}"
                )
            return checkpoint
    raise UserError(f"{pinned.label}: no checkpoint at that step any more")


def fraction_steps(saved: Sequence[CheckpointInfo], fractions: Sequence[float]) -> list[int]:
    """The checkpoint step each fraction of a run's last checkpoint step pins (see `pin`)."""
    last = saved[-1].step
    return [min(saved, key=lambda c: (abs(c.step - f * last), c.step)).step for f in fractions]
