"""Build the CIFAR residual networks of the paper from a RunConfig.

`trainers.core.layout.unit_specs(cfg)` lays the network out as plain data (one UnitSpec per
residual unit, each a list of ops); `build_model` turns that data into modules, and the UI's unit
diagrams and `describe` read the very same specs, so a diagram can never disagree with the model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.config import RunConfig
from ..core.layout import STAGE_WIDTHS, UnitSpec, unit_specs
from .layers import Head, ZeroPadShortcut, bn, conv, projection, relu, use_ghost_batches
from .shortcuts import MERGES, Gate


def _sequential(ops, packs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for op in ops:
        if op.kind == "conv":
            layers.append(conv(op.cin, op.channels, op.kernel, op.stride, packs))
        elif op.kind == "bn":
            layers.append(bn(op.channels, packs))
        else:
            layers.append(relu())
    return nn.Sequential(*layers)


class ResidualUnit(nn.Module):
    """y = h(x) + F(x), x_next = f(y), with h, F, f chosen by the config (paper Eq. 1-2)."""

    def __init__(self, spec: UnitSpec, cfg: RunConfig, packs: int = 1):
        super().__init__()
        self.spec = spec
        self.preact = _sequential(spec.preact, packs)
        self.residual = _sequential(spec.residual, packs)
        self.downsample: nn.Module
        if spec.downsample == "zeropad":
            self.downsample = ZeroPadShortcut(spec.cin, spec.cout, spec.stride, packs)
        elif spec.downsample == "conv":
            self.downsample = projection(spec.cin, spec.cout, spec.stride, packs, bool(cfg.shortcut_bn))
        else:
            self.downsample = nn.Identity()
        self.merge = MERGES[spec.shortcut](cfg, spec.cin, spec.cout, spec.stride, packs)
        self.after_add = _sequential(spec.after_add, packs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preact(x)  # shared pre-activation (first unit of a stage, pre-act nets) or nothing
        residual = self.residual(x)  # residual branch F(x)
        shortcut = self.downsample(x)  # shortcut branch: identity, zero-padded identity, projection
        y = self.merge(x, shortcut, residual)  # h(x) + F(x), by shortcut type (Fig. 2)
        return self.after_add(y)  # f(y): ReLU, BN→ReLU or identity (Fig. 4)


class ResNet(nn.Module):
    def __init__(self, cfg: RunConfig, num_classes: int | None = None, packs: int = 1):
        super().__init__()
        self.packs = packs
        num_classes = num_classes or cfg.num_classes
        self.specs = unit_specs(cfg)
        # stem: 3x3 conv then BN→ReLU; in pre-act nets this is "the first activation right after
        # the stem conv, before the first split" (paper Sec. 4.1)
        self.stem = nn.Sequential(conv(3, STAGE_WIDTHS[0], 3, 1, packs), bn(STAGE_WIDTHS[0], packs), relu())
        self.units = nn.Sequential(*(ResidualUnit(s, cfg, packs) for s in self.specs))
        features = self.specs[-1].cout
        # pre-act nets: one extra BN→ReLU after the last addition, before pooling (paper Sec. 4.1)
        self.final = nn.Sequential(bn(features, packs), relu()) if cfg.is_preact else nn.Identity()
        self.head = Head(features, num_classes, packs)
        self.reset_parameters(cfg)

    def reset_parameters(self, cfg: RunConfig) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He ("MSRA") init, fan_out as in fb.resnet.torch and torchvision
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Gate):  # b_g: the gate conv's bias, or its BN's shift (shortcuts.Gate)
                m.reset_bias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final(self.units(self.stem(x))))


def build_model(cfg: RunConfig, num_classes: int | None = None, packs: int = 1) -> ResNet:
    """The network of `cfg`, freshly initialised from the global torch RNG. With `cfg.bn_batch`,
    every BN takes its training statistics over groups of that many images (layers.GhostBatchNorm2d);
    the weights are the same either way."""
    return use_ghost_batches(ResNet(cfg, num_classes, packs), cfg.bn_batch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(cfg: RunConfig) -> dict:
    """What `python -m trainers describe` prints: a summary built without allocating weights."""
    with torch.device("meta"):
        model = build_model(cfg)
    specs = model.specs
    return {
        "key": cfg.key,
        "label": cfg.label(),
        "parameters": count_parameters(model),
        "units": len(specs),
        "block": cfg.block,
        "depth": cfg.depth,
        "ordering": cfg.ordering,
        "shortcut": cfg.shortcut,
        "downsample": cfg.downsample,
        "shortcut_bn": cfg.shortcut_bn,  # resolved: BN after the shortcut path's 1x1 convs
        "structure": [
            {
                "stage": s.stage + 1,
                "units": sum(1 for t in specs if t.stage == s.stage),
                "first_unit": _unit_text(s),
                "other_units": _unit_text(next((t for t in specs if t.stage == s.stage and t.index == 1), s)),
            }
            for s in specs
            if s.index == 0
        ],
        "config": cfg.to_dict(),
    }


def _unit_text(s: UnitSpec) -> str:
    parts = [o.label() for o in s.preact] + ["split"] + [o.label() for o in s.residual]
    bn = ", shortcut convs + BN" if s.shortcut_bn else ""
    parts += [f"(+ {s.shortcut} shortcut, {s.downsample}{bn})"] + [o.label() for o in s.after_add]
    return " → ".join(parts)
