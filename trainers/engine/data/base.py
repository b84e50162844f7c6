"""What every dataset source shares: the Dataset record, its error type, its statistics."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from ...core.errors import DataError
from ...core.paths import PROJECT_ROOT  # noqa: F401 - re-exported by trainers.engine.data

Progress = Callable[[str, float], None]

IMAGE_SIZE = 32
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SUBSET_SEED = 20160316  # the paper's arXiv date; fixes which images a train_size/test_size run sees


@dataclass(eq=False)
class Dataset:
    name: str  # the spec, e.g. "cifar10" or "folder:/data/my-images"
    label: str  # for humans: "CIFAR-10", "CIFAR-10 (JPEG copy)", "synthetic (smoke tests only)"
    classes: list[str]
    train_x: torch.Tensor = field(repr=False)  # uint8 (N, 3, 32, 32), CPU, contiguous
    train_y: torch.Tensor = field(repr=False)  # int64 (N,)
    test_x: torch.Tensor = field(repr=False)
    test_y: torch.Tensor = field(repr=False)
    mean: tuple[float, ...]  # per channel (3), 0-1 scale, from the training images
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, train_size: int = 0, test_size: int = 0) -> Dataset:
        """A fixed sample of `train_size` / `test_size` images of each split (0 = all of it).

        The sample is a permutation drawn from a fixed seed, the same for every run and every seed:
        folder datasets are stored class by class, so "the first N" would be a single class.

        mean/std are recomputed from the images kept: the normalisation then comes from the very
        training set the run sees (paper: statistics of the training set)."""
        if train_size == 0 and test_size == 0:
            return self
        train_x, train_y = _first(self.train_x, self.train_y, train_size, "train", self.name)
        test_x, test_y = _first(self.test_x, self.test_y, test_size, "test", self.name)
        mean, std = channel_stats(train_x) if train_size else (self.mean, self.std)
        return replace(self, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, mean=mean, std=std)


def _first(x: torch.Tensor, y: torch.Tensor, n: int, split: str, name: str):
    if n < 0:
        raise DataError(f"{split}_size must be >= 0, got {n}")
    if n > len(y):
        raise DataError(
            f"{split}_size {n} is more than the {len(y)} {split} images of {name}; "
            f"use 0 for all of them or a smaller number"
        )
    if n == 0 or n == len(y):
        return x, y
    # a fixed seed, independent of the run's: every run of a quick preset sees the same images
    keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(SUBSET_SEED))[:n]
    return x[keep].contiguous(), y[keep].contiguous()


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, 3, H, W), 0-1 scale.

    From a 256-bin histogram per channel: exact integer counts (so the result depends neither on
    chunking nor on thread count), no float copy of the images (50k images as float64 would be
    1.2 GB), and about 8x faster than summing."""
    values = torch.arange(256, dtype=torch.float64)
    mean, std = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = max(1.0, float(counts.sum()))
        m = float((counts * values).sum()) / n
        var = float((counts * (values - m) ** 2).sum()) / n
        mean.append(m / 255)
        std.append(var**0.5 / 255)
    return tuple(mean), tuple(std)


def is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.lower().endswith(IMAGE_SUFFIXES) and not base.startswith(".")


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reporter(progress: Progress | None) -> Progress:
    if progress is None:
        return lambda message, fraction: None
    return lambda message, fraction: progress(message, min(1.0, max(0.0, float(fraction))))
