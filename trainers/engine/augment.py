"""The paper's CIFAR augmentation, batched on the training device, and a resumable batch order.

Augmentation (He et al. 2016, after the first ResNet paper): zero-pad 4 pixels on each side, take
a random 32x32 crop, flip horizontally with probability 1/2; test images stay plain.

Randomness: every draw comes from the `torch.Generator` passed in, on the generator's own device.
The trainer passes one CPU generator: the few random numbers per batch (3 per image) are drawn on
the CPU and then moved, so the same seed gives the same crops and flips on CPU and on CUDA, and a
checkpoint restores them from a single `generator.get_state()`. A CUDA generator also works (no
host-to-device copy), but its stream differs from the CPU one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

PADDING = 4  # pixels of zeros on each side before the random crop (paper)


def crop_flip_params(
    batch: int, generator: torch.Generator, padding: int = PADDING
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flip) per image: the crop's top-left corner in the padded image, 0..2*padding,
    and whether to mirror it. Drawn on `generator.device`."""
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator, device=generator.device)
    flip = torch.randint(0, 2, (batch,), generator=generator, device=generator.device).bool()
    return offsets[0], offsets[1], flip


def crop_flip(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, padding: int = PADDING
) -> torch.Tensor:
    """Crop each image of x (B, C, H, W) at (dy, dx) of its zero-padded copy, mirror where `flip`.

    One pad and one gather for the whole batch: index grids (B, H) of rows and (B, W) of columns,
    the columns reversed for flipped images, then advanced indexing. No Python loop per image."""
    b, c, h, w = x.shape
    dy, dx, flip = dy.to(x.device), dx.to(x.device), flip.to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))  # zeros, any dtype
    rows = dy.view(b, 1) + torch.arange(h, device=x.device)  # (B, H)
    cols = dx.view(b, 1) + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip.view(b, 1), cols.flip(1), cols)  # mirrored crop = reversed columns
    batch_idx = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chan_idx = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch_idx, chan_idx, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = PADDING) -> torch.Tensor:
    """Pad-4 random crop + random horizontal flip of a uint8 (B, 3, 32, 32) batch, on x's device."""
    dy, dx, flip = crop_flip_params(x.shape[0], generator, padding)
    return crop_flip(x, dy, dx, flip, padding)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(x/255 - mean) / std for uint8 (B, 3, H, W) or (3, H, W) images; mean and std hold one
    value per channel, or a value per channel and pixel (the per-pixel mean image).

    Computed in float32 and cast at the end: bf16 has too few bits for x/255 - mean."""
    mean_t = _stat(mean, x)
    std_t = _stat(std, x)
    out = (x.to(torch.float32) / 255 - mean_t) / std_t
    return out.to(dtype)


def _stat(v, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float32, device=x.device)
    c = x.shape[-3]
    return t.reshape(c, 1, 1) if t.numel() == c else t.reshape(c, *x.shape[-2:])


class BatchSampler:
    """Endless shuffled mini-batches of indices into n training images.

    Each epoch is a fresh permutation drawn from `generator`. By default the last partial batch of
    an epoch is dropped so every batch has `batch_size` images (with 50k images and batch 128: 80
    images per epoch, a different 80 each epoch); `drop_last=False` keeps it, as fb.resnet.torch's
    data loader does (at batch 64: 782 batches per epoch, the last of 16 images). Iteration i is
    batch i % batches_per_epoch of epoch i // batches_per_epoch, and `state_dict()` (permutation,
    iteration, generator state) resumes the exact same sequence. If the generator is shared (the
    trainer also draws its augmentation from it), restoring the sampler restores that stream too."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, drop_last: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n < batch_size:
            raise ValueError(
                f"{n} training images cannot fill one batch of {batch_size}; "
                f"use more images (train_size) or a smaller batch_size"
            )
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.drop_last = drop_last
        self.iteration = 0  # batches handed out so far
        self._perm: torch.Tensor | None = None

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to (0-based)."""
        return self.iteration // self.batches_per_epoch

    def next(self) -> torch.Tensor:
        """The next batch: a LongTensor of `batch_size` distinct indices (on the generator's device)."""
        b = self.iteration % self.batches_per_epoch
        if b == 0 or self._perm is None:
            self._perm = torch.randperm(self.n, generator=self.generator, device=self.generator.device)
        self.iteration += 1
        return self._perm[b * self.batch_size : (b + 1) * self.batch_size]

    __next__ = next

    def __iter__(self) -> BatchSampler:
        return self

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only: saves and loads with torch.load(weights_only=True)."""
        perm = self._perm.cpu().clone() if self._perm is not None else torch.empty(0, dtype=torch.int64)
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "iteration": self.iteration,
            "perm": perm,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["n"] != self.n or state["batch_size"] != self.batch_size:
            raise ValueError(
                f"sampler state is for n={state['n']}, batch_size={state['batch_size']}; "
                f"this sampler has n={self.n}, batch_size={self.batch_size}"
            )
        self.iteration = int(state["iteration"])
        perm = state["perm"]
        self._perm = perm.to(self.generator.device) if perm.numel() else None
        if self._perm is None and self.iteration % self.batches_per_epoch != 0:
            raise ValueError("sampler state is mid-epoch but holds no permutation")
        self.generator.set_state(state["generator"])
