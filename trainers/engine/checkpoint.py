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


REQUIRED = ("key", "iteration", "history", "model", "optimizer", "sampler", "rng")


def check_fits(
    state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, sampler: Any, total: int
) -> None:
    """Raise CheckpointError unless `state` restores into these objects exactly: every field there,
    the same parameter names and shapes, an optimizer state per parameter of its shape, a sampler
    of the same data and batch, an iteration within the run. Checked before anything is loaded,
    so a checkpoint that parses but does not fit leaves the fresh model untouched."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint does not fit this run: {why}")

    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    it = state["iteration"]
    if isinstance(it, bool) or not isinstance(it, int) or not 0 <= it <= total:
        raise bad(f"iteration {it!r} is not in 0..{total}")
    if not isinstance(state["history"], list):
        raise bad("history is not a list")
    ours, theirs = model.state_dict(), state["model"]
    if not isinstance(theirs, dict) or set(theirs) != set(ours):
        raise bad("the model's parameters differ (another architecture)")
    for name, t in ours.items():
        if not isinstance(theirs[name], torch.Tensor) or theirs[name].shape != t.shape:
            raise bad(f"parameter {name} has shape {getattr(theirs[name], 'shape', None)}, expected {tuple(t.shape)}")
    opt = state["optimizer"]
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    mine = optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or [len(g.get("params", [])) for g in groups] != [len(g["params"]) for g in mine]:
        raise bad("the optimizer's parameter groups differ")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, s in (opt.get("state") or {}).items():
        buf = s.get("momentum_buffer") if isinstance(s, dict) else None
        if (
            not isinstance(i, int)
            or not 0 <= i < len(params)
            or (buf is not None and (not isinstance(buf, torch.Tensor) or buf.shape != params[i].shape))
        ):
            raise bad(f"optimizer state {i!r} does not match a parameter")
    smp, want = state["sampler"], sampler.state_dict()
    if (
        not isinstance(smp, dict)
        or set(smp) != set(want)
        or smp["n"] != want["n"]
        or smp["batch_size"] != want["batch_size"]
    ):
        raise bad("the data sampler differs (another dataset size or batch)")
    rng = state["rng"]
    if not isinstance(rng, dict) or not isinstance(rng.get("torch"), torch.Tensor) or rng["torch"].dtype != torch.uint8:
        raise bad("the RNG state is missing")


def rng_state(device: torch.device) -> dict[str, Any]:
    s: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(device)
    return s


def set_rng_state(s: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(s["torch"])
    if device.type == "cuda" and "cuda" in s:
        torch.cuda.set_rng_state(s["cuda"], device)
