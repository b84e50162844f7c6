"""A network as plain data: one UnitSpec per residual unit, each a list of ops (no torch).

`trainers.engine.model.build_model` turns these specs into modules, and the UI's unit diagrams and
`describe` read the very same specs, so a diagram can never disagree with the model it depicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import RunConfig
from .registry import BLOCKS, ORDERINGS, SHORTCUTS

STAGE_WIDTHS = (16, 32, 64)  # 32x32 → 16x16 → 8x8 (first ResNet paper, CIFAR)


@dataclass(frozen=True)
class Op:
    kind: str  # "conv" | "bn" | "relu"
    channels: int  # output channels (= input channels for bn / relu)
    cin: int = 0  # conv only
    kernel: int = 0
    stride: int = 1

    def label(self) -> str:
        if self.kind == "conv":
            s = f", /{self.stride}" if self.stride > 1 else ""
            return f"{self.kernel}x{self.kernel} conv, {self.channels}{s}"
        return {"bn": "BN", "relu": "ReLU"}[self.kind]


@dataclass(frozen=True)
class UnitSpec:
    stage: int
    index: int  # within the stage
    cin: int
    cout: int
    stride: int
    preact: tuple[Op, ...]  # shared by both branches (first unit of stages 2, 3 in pre-act nets)
    residual: tuple[Op, ...]  # F
    downsample: str  # "identity" | "zeropad" | "conv" | "none" (the shortcut type brings its own)
    shortcut: str  # the shortcut type's registry name
    after_add: tuple[Op, ...]  # f
    shortcut_bn: bool = False  # BN after the shortcut path's 1x1 convs (projection, gate, conv1x1)

    def to_dict(self) -> dict:
        return asdict(self)


def _ops(names, channels: int) -> list[Op]:
    return [Op(n, channels) for n in names]


def unit_specs(cfg: RunConfig) -> list[UnitSpec]:
    block, ordering = BLOCKS[cfg.block], ORDERINGS[cfg.ordering]
    n = cfg.units_per_stage
    specs: list[UnitSpec] = []
    cin = STAGE_WIDTHS[0]
    for stage, width in enumerate(STAGE_WIDTHS):
        cout = width * block.expansion
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            first = i == 0
            # Pre-act nets: the stem's BN→ReLU already activated stage 1's input, and the first
            # unit of stages 2, 3 activates once for both branches (authors' code, paper Sec. 4.1).
            shared = ordering.preact_net and first
            preact = _ops(ordering.before_conv, cin) if (shared and stage > 0) else []
            residual: list[Op] = []
            c = cin
            names = ordering.residual_ops(len(block.kernels))
            k = 0  # index of the next conv
            skip_before = len(ordering.before_conv) if shared else 0
            for name in names:
                if skip_before:
                    skip_before -= 1
                    continue
                if name == "conv":
                    last = k == len(block.kernels) - 1
                    out = cout if last else width
                    # stride on the first conv of the branch, as in the authors' resnet-pre-act.lua
                    # (torchvision strides a bottleneck's 3x3 instead; same parameter count)
                    s = stride if k == 0 else 1
                    residual.append(Op("conv", out, c, block.kernels[k], s))
                    c, k = out, k + 1
                else:
                    residual.append(Op(name, c))
            if SHORTCUTS[cfg.shortcut].replaces_downsample:
                down = "none"
            elif cin == cout and stride == 1:
                down = "identity"
            else:
                down = cfg.downsample
            specs.append(
                UnitSpec(
                    stage,
                    i,
                    cin,
                    cout,
                    stride,
                    tuple(preact),
                    tuple(residual),
                    down,
                    cfg.shortcut,
                    tuple(_ops(ordering.after_add, cout)),
                    bool(cfg.shortcut_bn),
                )
            )
            cin = cout
    return specs
