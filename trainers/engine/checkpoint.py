"""Atomic checkpoints that resume a run bit-exactly: model, optimizer, schedule position, the data
sampler and every RNG state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_write
from ..core.errors import CheckpointError


def save(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load(path: Path, key: str) -> dict[str, Any] | None:
    """The checkpoint at `path` for run `key`, or None if there is none.

    weights_only=True: a checkpoint file is never a way to run code."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated by a full disk, or not a checkpoint at all
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("key") != key:
        raise CheckpointError(f"checkpoint {path} belongs to another run (key {state.get('key')!r}, expected {key!r})")
    return state


def rng_state(device: torch.device) -> dict[str, Any]:
    s: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(device)
    return s


def set_rng_state(s: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(s["torch"])
    if device.type == "cuda" and "cuda" in s:
        torch.cuda.set_rng_state(s["cuda"], device)
