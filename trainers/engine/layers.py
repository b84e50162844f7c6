"""Small layer constructors shared by units and shortcuts.

`packs` = K independent networks trained as one (seed packing): every conv is grouped K ways and
every BN has K×C channels, so network k only ever sees its own channels [k·C, (k+1)·C).
With packs=1 these are the plain layers of the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(cin: int, cout: int, kernel: int, stride: int = 1, packs: int = 1) -> nn.Conv2d:
    # no conv bias: every conv is followed (or preceded, in pre-act units) by BN (paper protocol)
    return nn.Conv2d(packs * cin, packs * cout, kernel, stride, padding=kernel // 2, bias=False, groups=packs)


def bn(channels: int, packs: int = 1) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(packs * channels)


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
