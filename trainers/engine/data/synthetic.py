"""`synthetic`: small, deterministic and learnable; for smoke tests only, never for results."""

from __future__ import annotations

import torch

from .base import IMAGE_SIZE, Dataset, channel_stats

SYNTHETIC_LABEL = "synthetic (smoke tests only)"
SYNTHETIC_SIZES = (5000, 1000)  # train, test: enough for a short run to visibly learn


def synthetic_dataset(train_size: int = SYNTHETIC_SIZES[0], test_size: int = SYNTHETIC_SIZES[1]) -> Dataset:
    """CIFAR-shaped, 10 classes, the same every time: each class has its own colour and stripe
    orientation, under heavy noise, colour jitter and a random stripe phase, so a short run
    learns it but not instantly (a nearest-class-mean classifier gets about half right).
    For smoke tests only: no result on it means anything about the paper."""
    classes = [f"class {i}" for i in range(10)]
    train_x, train_y = _synthetic_split(train_size, seed=0)
    test_x, test_y = _synthetic_split(test_size, seed=1)  # its own stream: independent of train_size
    mean, std = channel_stats(train_x)
    return Dataset("synthetic", SYNTHETIC_LABEL, classes, train_x, train_y, test_x, test_y, mean, std)


def _synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=g)]
    palette = torch.tensor(
        [
            [230, 60, 60],
            [60, 200, 60],
            [60, 60, 230],
            [220, 220, 60],
            [220, 60, 220],
            [60, 220, 220],
            [240, 150, 40],
            [130, 70, 200],
            [150, 150, 150],
            [90, 50, 30],
        ],
        dtype=torch.float32,
    )
    angle = y.float() * (torch.pi / 10)  # stripe orientation, 18° apart
    phase = torch.rand(n, generator=g) * 2 * torch.pi
    r = torch.arange(IMAGE_SIZE, dtype=torch.float32)
    rows, cols = r.view(1, -1, 1), r.view(1, 1, -1)
    along = cols * torch.cos(angle).view(-1, 1, 1) + rows * torch.sin(angle).view(-1, 1, 1)
    stripes = torch.sin(along * (2 * torch.pi / 8) + phase.view(-1, 1, 1))  # period 8 px
    # class colour, damped and jittered per image so that colour alone does not give it away
    colour = 0.3 * (palette[y] - 145).view(n, 3, 1, 1) + 128
    colour = colour + 20 * torch.randn((n, 3, 1, 1), generator=g)
    noise = 50 * torch.randn((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g)
    x = colour + 40 * stripes.unsqueeze(1) + noise
    return x.round().clamp(0, 255).to(torch.uint8).contiguous(), y.to(torch.int64)
