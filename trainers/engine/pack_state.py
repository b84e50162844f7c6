"""Seed packing's state-dict algebra: K networks' tensors as one packed network's, and back.

A packed network (`build_model(cfg, packs=K)`, trainers/engine/layers.py) concatenates its K
networks' channels, groups its convolutions K ways, and keeps BN and the head per network, so every
packed tensor is its K networks' tensors concatenated along dim 0, in the same parameter order.
`train([cfg, ...])` (trainers/engine/train.py) trains a pack with these; which runs may pack is
decided by plain rules the supervisor reads without torch (trainers/core/pack_rules.py).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from ..core.errors import PackingError

__all__ = ["PackingError", "pack_optimizer_states", "pack_state_dicts", "unpack_optimizer_state", "unpack_state_dict"]


# ----------------------------------------------------------------------------------------------
# state dicts: every packed tensor is its K networks' tensors concatenated along dim 0
# ----------------------------------------------------------------------------------------------


def pack_state_dicts(state_dicts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One packed state dict from K standalone ones (same architecture).

    Conv weights (grouped: (K·out, in/groups, k, k)), BN parameters and statistics, the head's
    weight and bias all concatenate along dim 0; scalars (BN's num_batches_tracked) must agree."""
    if not state_dicts:
        raise PackingError("nothing to pack")
    keys = list(state_dicts[0])
    for sd in state_dicts[1:]:
        if list(sd) != keys:
            raise PackingError("state dicts of different architectures cannot be packed")
    packed = {}
    for k in keys:
        ts = [sd[k] for sd in state_dicts]
        if ts[0].dim() == 0:
            if any(not torch.equal(t, ts[0]) for t in ts[1:]):
                raise PackingError(f"{k} differs between the networks ({[t.item() for t in ts]})")
            packed[k] = ts[0].clone()
        else:
            packed[k] = torch.cat(ts, dim=0)
    return packed


def unpack_state_dict(state_dict: dict[str, torch.Tensor], packs: int) -> list[dict[str, torch.Tensor]]:
    """K standalone state dicts from a packed one (the inverse of `pack_state_dicts`)."""
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(packs)]
    for k, t in state_dict.items():
        if t.dim() == 0:
            parts: Sequence[torch.Tensor] = [t] * packs
        else:
            if t.shape[0] % packs:
                raise PackingError(f"{k} has {t.shape[0]} rows, not a multiple of {packs} networks")
            parts = t.chunk(packs, dim=0)
        for sd, p in zip(out, parts):
            sd[k] = p.detach().clone()
    return out


def _plain_groups(groups: list[dict]) -> list[dict]:
    # a CUDA-graph step keeps lr as a device tensor; a checkpoint stores a plain number
    return [{**g, "lr": float(g["lr"])} for g in copy.deepcopy(groups)]


def pack_optimizer_states(states: Sequence[dict]) -> dict:
    """One packed SGD state dict from K standalone ones: momentum buffers concatenate like the
    parameters they belong to (the packed network lists its parameters in the same order)."""
    first = states[0]
    packed: dict[int, dict] = {}
    for i in first["state"]:
        entry = {}
        for name, t in first["state"][i].items():
            ts = [s["state"][i][name] for s in states]
            entry[name] = torch.cat(ts, dim=0) if isinstance(t, torch.Tensor) and t.dim() else t
        packed[i] = entry
    return {"state": packed, "param_groups": _plain_groups(first["param_groups"])}


def unpack_optimizer_state(state: dict, packs: int) -> list[dict]:
    out: list[dict[str, Any]] = [
        {"state": {}, "param_groups": _plain_groups(state["param_groups"])} for _ in range(packs)
    ]
    for i, entry in state["state"].items():
        for o in out:
            o["state"][i] = {}
        for name, t in entry.items():
            parts = t.chunk(packs, dim=0) if isinstance(t, torch.Tensor) and t.dim() else [t] * packs
            for o, p in zip(out, parts):
                o["state"][i][name] = p.detach().clone() if isinstance(p, torch.Tensor) else p
    return out
