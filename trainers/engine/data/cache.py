"""Validation of decoded tensors, and the decoded cache: `<cache_dir>/data/decoded/<slug>.pt`
with a JSON sidecar (for `dataset_info`, which must not load 180 MB to count images), keyed by the
source so that a changed source is decoded again."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from ...core.atomic import atomic_write
from .base import IMAGE_SIZE, DataError, Dataset, channel_stats

CACHE_FORMAT = 1  # bump when the decoded-cache layout changes: old caches are then rebuilt


def check_labels(y: torch.Tensor, num_classes: int, where: str) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{where}: labels must be in 0..{num_classes - 1} ({num_classes} classes), found "
            f"{int(y.min())}..{int(y.max())}. The data does not match its class list."
        )


def _check_split(x: Any, y: Any, num_classes: int, where: str) -> None:
    if (
        not isinstance(x, torch.Tensor)
        or x.dtype != torch.uint8
        or x.dim() != 4
        or tuple(x.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE)
    ):
        raise DataError(
            f"{where}: images must be uint8 (N, 3, 32, 32), got "
            f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
        )
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (len(x),):
        raise DataError(
            f"{where}: labels must be int64 ({len(x)},), got "
            f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
        )
    if len(x) == 0:
        raise DataError(f"{where}: no images")
    check_labels(y, num_classes, where)


def finish(
    data_dir: Path,
    slug: str,
    spec: str,
    source_key: str,
    label: str,
    classes: list[str],
    train_x,
    train_y,
    test_x,
    test_y,
) -> Dataset:
    """Validate, compute the statistics, write the cache."""
    _check_split(train_x, train_y, len(classes), f"{spec} training set")
    _check_split(test_x, test_y, len(classes), f"{spec} test set")
    mean, std = channel_stats(train_x)
    if min(std) == 0:
        raise DataError(
            f"{spec}: every training image has the same value in one colour channel "
            f"(std {std}); normalising by it would divide by zero. Check the data."
        )
    ds = Dataset(spec, label, list(classes), train_x.contiguous(), train_y, test_x.contiguous(), test_y, mean, std)
    _write_cache(data_dir, slug, source_key, ds)
    return ds


def cache_path(data_dir: Path, slug: str) -> Path:
    return data_dir / "decoded" / f"{slug}.pt"


def read_sidecar(data_dir: Path, slug: str) -> dict | None:
    try:
        meta = json.loads(cache_path(data_dir, slug).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == CACHE_FORMAT else None


def _write_cache(data_dir: Path, slug: str, source_key: str, ds: Dataset) -> None:
    pt = cache_path(data_dir, slug)
    pt.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CACHE_FORMAT,
        "source_key": source_key,
        "name": ds.name,
        "label": ds.label,
        "classes": ds.classes,
        "train_x": ds.train_x,
        "train_y": ds.train_y,
        "test_x": ds.test_x,
        "test_y": ds.test_y,
        "mean": list(ds.mean),
        "std": list(ds.std),
    }
    atomic_write(pt, lambda f: torch.save(payload, f))
    sidecar = {
        "format": CACHE_FORMAT,
        "source_key": source_key,
        "spec": ds.name,
        "label": ds.label,
        "num_classes": ds.num_classes,
        "num_train": len(ds.train_y),
        "num_test": len(ds.test_y),
    }
    atomic_write(pt.with_suffix(".json"), lambda f: f.write(json.dumps(sidecar, indent=1).encode()))


def read_cache(data_dir: Path, slug: str, source_key: str) -> Dataset | None:
    """The cached dataset, or None when absent, stale or corrupt (then it is decoded again)."""
    pt = cache_path(data_dir, slug)
    meta = read_sidecar(data_dir, slug)
    if meta is None or meta.get("source_key") != source_key or not pt.is_file():
        return None
    try:
        d = torch.load(pt, map_location="cpu", weights_only=True)
        if not isinstance(d, dict) or d.get("format") != CACHE_FORMAT or d.get("source_key") != source_key:
            return None
        classes = [str(c) for c in d["classes"]]
        _check_split(d["train_x"], d["train_y"], len(classes), str(pt))
        _check_split(d["test_x"], d["test_y"], len(classes), str(pt))
        return Dataset(
            d["name"],
            d["label"],
            classes,
            d["train_x"].contiguous(),
            d["train_y"],
            d["test_x"].contiguous(),
            d["test_y"],
            tuple(d["mean"]),
            tuple(d["std"]),
        )
    except Exception as e:  # a truncated or damaged cache file: rebuild rather than crash
        warnings.warn(
            f"decoded dataset cache {pt} is unreadable ({type(e).__name__}: {e}); decoding again", stacklevel=2
        )
        return None
