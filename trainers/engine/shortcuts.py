"""How a unit merges its shortcut h(x) and residual F(x): one module per shortcut type (Fig. 2).

Every merge has the same call: `merge(x, shortcut, residual)` where x is the unit's (possibly
pre-activated) input, `shortcut` is x after the unit's downsampling (identity, zero-pad or
projection) and `residual` is F(x). On dimension-changing units the shortcut type acts on the
downsampled shortcut; the paper does not say (OPEN), this is the reading that keeps "all units".
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import projection


class IdentityMerge(nn.Module):
    def forward(self, x, shortcut, residual):
        return shortcut + residual


class ConstantScaling(nn.Module):
    """h(x) = λx, F scaled by μ (Table 1: λ=0 is a plain net; λ=μ=0.5 "frozen gating")."""

    def __init__(self, shortcut_scale: float, residual_scale: float):
        super().__init__()
        self.shortcut_scale, self.residual_scale = shortcut_scale, residual_scale

    def forward(self, x, shortcut, residual):
        return self.shortcut_scale * shortcut + self.residual_scale * residual

    def extra_repr(self) -> str:
        return f"λ={self.shortcut_scale:g}, μ={self.residual_scale:g}"


class Gate(nn.Module):
    """g(x) = sigmoid(W_g x + b_g), W_g a 1x1 conv; b_g starts at `bias` (Table 1 sweeps 0 … -10).

    With BN (Fig. 2 caption: BN right after every weight layer, the gate conv included) the order
    is conv → BN → + b_g → sigmoid, and b_g *is* BN's learnable shift β, initialised at b_g. A bias
    inside the conv, before BN, would be subtracted again by BN's batch mean in training (the gate
    then starts at 0.5 whatever b_g) while evaluation, using running statistics, kept it: training
    and evaluation would disagree and Table 1's b_g sweep would mean nothing. Without BN, b_g is
    the conv's own bias. Either way one parameter per gate channel holds b_g (`bias`)."""

    def __init__(self, cin: int, cout: int, stride: int, bias: float, width: str, packs: int, with_bn: bool):
        super().__init__()
        self.cout, self.packs = cout, packs
        gate_channels = cout if width == "channel" else 1
        self.conv = nn.Conv2d(packs * cin, packs * gate_channels, 1, stride, bias=not with_bn, groups=packs)
        self.bn = nn.BatchNorm2d(packs * gate_channels) if with_bn else nn.Identity()
        self.initial_bias = bias
        self.single = width == "single"

    @property
    def bias(self) -> torch.Tensor:
        """b_g: BN's shift β with BN, else the conv's bias."""
        bias = self.bn.bias if isinstance(self.bn, nn.BatchNorm2d) else self.conv.bias
        assert bias is not None  # the gate's conv has a bias when no BN follows it
        return bias

    def reset_bias(self) -> None:
        nn.init.constant_(self.bias, self.initial_bias)

    def forward(self, x):
        g = torch.sigmoid(self.bn(self.conv(x)))  # sigmoid(BN(W_g x) + b_g) or sigmoid(W_g x + b_g)
        if self.single:  # one gate map per network, broadcast over its channels
            n, _, h, w = g.shape
            g = g.view(n, self.packs, 1, h, w).expand(n, self.packs, self.cout, h, w).reshape(n, -1, h, w)
        return g


class ExclusiveGating(nn.Module):
    """(1 − g(x))·h(x) + g(x)·F(x): Fig. 2(c), as in Highway networks."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.gate = gate

    def forward(self, x, shortcut, residual):
        g = self.gate(x)
        return (1 - g) * shortcut + g * residual


class ShortcutOnlyGating(nn.Module):
    """(1 − g(x))·h(x) + F(x): Fig. 2(d)."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.gate = gate

    def forward(self, x, shortcut, residual):
        g = self.gate(x)
        return (1 - g) * shortcut + residual


class Conv1x1Shortcut(nn.Module):
    """h(x) = 1x1 conv of x (Fig. 2(e)); it also does the unit's dimension change, if any."""

    def __init__(self, cin: int, cout: int, stride: int, packs: int, with_bn: bool):
        super().__init__()
        self.conv = projection(cin, cout, stride, packs, with_bn)

    def forward(self, x, shortcut, residual):
        return self.conv(x) + residual


class DropoutShortcut(nn.Module):
    """Drop the shortcut signal with ratio p (Fig. 2(f)).

    The paper reasons about it as a scale λ with expectation 1-p, so by default training keeps
    each element with probability 1-p *without* the usual 1/(1-p) rescaling, and evaluation
    multiplies by the expectation 1-p. `rescale=True` gives standard inverted dropout."""

    def __init__(self, p: float, rescale: bool):
        super().__init__()
        self.p, self.rescale = p, rescale

    def forward(self, x, shortcut, residual):
        keep = 1.0 - self.p
        if self.training:
            mask = torch.empty_like(shortcut).bernoulli_(keep)
            shortcut = shortcut * mask / keep if self.rescale else shortcut * mask
        elif not self.rescale:
            shortcut = shortcut * keep
        return shortcut + residual

    def extra_repr(self) -> str:
        return f"p={self.p:g}, rescale={self.rescale}"


def gated(kind):
    def build(cfg, cin: int, cout: int, stride: int, packs: int) -> nn.Module:
        gate = Gate(cin, cout, stride, cfg.gate_bias, cfg.gate_width, packs, cfg.shortcut_bn)
        return kind(gate)

    return build


# The torch side of the registry: shortcut name -> build(cfg, cin, cout, stride, packs) -> merge.
# `trainers.core.registry.SHORTCUTS` holds the data; a test checks both list the same names.
MERGES = {
    "identity": lambda c, cin, cout, stride, packs: IdentityMerge(),
    "constant": lambda c, cin, cout, stride, packs: ConstantScaling(c.shortcut_scale, c.residual_scale),
    "exclusive_gate": gated(ExclusiveGating),
    "shortcut_gate": gated(ShortcutOnlyGating),
    "conv1x1": lambda c, cin, cout, stride, packs: Conv1x1Shortcut(cin, cout, stride, packs, c.shortcut_bn),
    "dropout": lambda c, cin, cout, stride, packs: DropoutShortcut(c.dropout_p, c.dropout_rescale),
}
