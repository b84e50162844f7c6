"""Small layer constructors shared by units and shortcuts.

`packs` = K independent networks trained as one (seed packing): every conv is grouped K ways and
every BN has K×C channels, so network k only ever sees its own channels [k·C, (k+1)·C).
With packs=1 these are the plain layers of the paper.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

M = TypeVar("M", bound=nn.Module)


def conv(cin: int, cout: int, kernel: int, stride: int = 1, packs: int = 1) -> nn.Conv2d:
    # no conv bias: every conv is followed (or preceded, in pre-act units) by BN (paper protocol)
    return nn.Conv2d(packs * cin, packs * cout, kernel, stride, padding=kernel // 2, bias=False, groups=packs)


def bn(channels: int, packs: int = 1) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(packs * channels)


class GhostBatchNorm2d(nn.BatchNorm2d):
    """BN whose training statistics come from groups of `images` images of the batch ("ghost
    batches"), as when a batch is split over GPUs that each normalise their own share (the paper:
    128 images on 2 GPUs). Evaluation, and a batch of at most `images`, is plain BN. The running
    statistics are updated from the first group only, as the first GPU's replica (the one that is
    saved) updates them under data parallelism. Same parameters and buffers as nn.BatchNorm2d."""

    def __init__(self, num_features: int, images: int, **kwargs):
        super().__init__(num_features, **kwargs)
        self.images = images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] <= self.images:
            return super().forward(x)
        tracked = self.num_batches_tracked
        if tracked is not None:
            tracked.add_(1)
        if self.momentum is not None:
            momentum = self.momentum
        else:  # cumulative average, as nn.BatchNorm2d with momentum=None
            momentum = 1.0 / float(tracked) if tracked is not None else 0.0
        first, *rest = x.split(self.images)
        out = [
            F.batch_norm(first, self.running_mean, self.running_var, self.weight, self.bias, True, momentum, self.eps)
        ]
        out += [F.batch_norm(g, None, None, self.weight, self.bias, True, 0.0, self.eps) for g in rest]
        return torch.cat(out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, images={self.images}"


def use_ghost_batches(module: M, images: int) -> M:
    """Every nn.BatchNorm2d in `module` (the units', the gates', the projections') as a
    GhostBatchNorm2d over `images` images, holding the same parameters and buffers (the pattern of
    torch.nn.SyncBatchNorm.convert_sync_batchnorm). `images` = 0 leaves the module as it is."""
    if not images:
        return module
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            ghost = GhostBatchNorm2d(
                child.num_features,
                images,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
                device="meta",
            )
            for attr in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(ghost, attr, getattr(child, attr))
            ghost.train(child.training)
            setattr(module, name, ghost)
        else:
            use_ghost_batches(child, images)
    return module


def relu() -> nn.ReLU:
    return nn.ReLU(inplace=False)


class ZeroPadShortcut(nn.Module):
    """Identity shortcut for a dimension change: subsample by the stride, pad new channels with
    zeros ("option A" of the first ResNet paper, used for its CIFAR nets). Parameter-free."""

    def __init__(self, cin: int, cout: int, stride: int, packs: int = 1):
        super().__init__()
        self.cin, self.cout, self.stride, self.packs = cin, cout, stride, packs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.cout == self.cin:
            return x
        n, _, h, w = x.shape
        x = x.reshape(n, self.packs, self.cin, h, w)  # pad each packed network's own channels
        x = F.pad(x, (0, 0, 0, 0, 0, self.cout - self.cin))
        x = x.reshape(n, self.packs * self.cout, h, w)
        # Keep the network's layout: a channels_last residual stream that turned NCHW here would
        # make every later unit mix layouts (a copy per op, slower convolutions).
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def extra_repr(self) -> str:
        return f"{self.cin}->{self.cout}, stride={self.stride}"


def projection(cin: int, cout: int, stride: int, packs: int, with_bn: bool) -> nn.Module:
    """1x1 conv shortcut (with BN only if asked: an OPEN point of the paper)."""
    layers: list[nn.Module] = [conv(cin, cout, 1, stride, packs)]
    if with_bn:
        layers.append(bn(cout, packs))
    return nn.Sequential(*layers) if with_bn else layers[0]


class Head(nn.Module):
    """Global average pooling then a fully connected layer per packed network.

    Weight shapes match nn.Linear when packs=1, so state dicts pack by concatenation."""

    def __init__(self, features: int, classes: int, packs: int = 1):
        super().__init__()
        self.features, self.classes, self.packs = features, classes, packs
        self.weight = nn.Parameter(torch.empty(packs * classes, features))
        self.bias = nn.Parameter(torch.zeros(packs * classes))
        for k in range(packs):  # nn.Linear's default init, per network
            nn.init.kaiming_uniform_(self.weight[k * classes : (k + 1) * classes], a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # global average pooling: (N, K·F)
        if self.packs == 1:
            return F.linear(x, self.weight, self.bias)
        x = x.view(x.shape[0], self.packs, self.features)
        w = self.weight.view(self.packs, self.classes, self.features)
        return torch.einsum("nkf,kcf->nkc", x, w) + self.bias.view(self.packs, self.classes)
