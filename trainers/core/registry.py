"""The paper's variants as data: unit orderings (Fig. 4), shortcut types (Fig. 2) and unit blocks.

The model builder, the CLI, the sweep presets, the UI's widgets and diagrams, and the tests all
enumerate these dicts; adding a variant is one entry here (plus its merge module in
`trainers/engine/shortcuts.py`, `MERGES`, for a new shortcut type). Every trait a consumer needs
(Π λ factor, gate, drawn as a layer, stochastic) is a field, so nothing special-cases a name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Ordering:
    """Where BN and ReLU sit around the convolutions of one residual unit.

    The residual branch of a unit with k convs is, for each conv i:
        before_conv, conv_i, (after_conv if i < k else after_last_conv)
    and after the addition comes `after_add`.
    """

    name: str
    title: str
    figure: str
    before_conv: tuple[str, ...]
    after_conv: tuple[str, ...]
    after_last_conv: tuple[str, ...]
    after_add: tuple[str, ...]
    # Pre-activation nets: BN→ReLU right after the stem conv (and the first unit of stage 1 skips
    # its own pre-activation), the first unit of stages 2 and 3 shares its pre-activation between
    # both branches, and one extra BN→ReLU follows the last addition (paper Sec. 4.1, authors' code).
    preact_net: bool
    paper_text: str

    def residual_ops(self, n_convs: int) -> list[str]:
        ops: list[str] = []
        for i in range(n_convs):
            ops += [*self.before_conv, "conv", *(self.after_conv if i < n_convs - 1 else self.after_last_conv)]
        return ops


ORDERINGS: dict[str, Ordering] = {
    o.name: o
    for o in [
        Ordering(
            "original",
            "original",
            "4(a)",
            (),
            ("bn", "relu"),
            ("bn",),
            ("relu",),
            False,
            "conv→BN→ReLU→conv→BN→(+)→ReLU",
        ),
        Ordering(
            "bn_after_add",
            "BN after addition",
            "4(b)",
            (),
            ("bn", "relu"),
            (),
            ("bn", "relu"),
            False,
            "conv→BN→ReLU→conv→(+)→BN→ReLU",
        ),
        Ordering(
            "relu_before_add",
            "ReLU before addition",
            "4(c)",
            (),
            ("bn", "relu"),
            ("bn", "relu"),
            (),
            False,
            "conv→BN→ReLU→conv→BN→ReLU→(+)",
        ),
        Ordering(
            "relu_only_preact",
            "ReLU-only pre-activation",
            "4(d)",
            ("relu",),
            ("bn",),
            ("bn",),
            (),
            True,
            "ReLU→conv→BN→ReLU→conv→BN→(+)",
        ),
        Ordering(
            "full_preact",
            "full pre-activation",
            "4(e)",
            ("bn", "relu"),
            (),
            (),
            (),
            True,
            "BN→ReLU→conv→BN→ReLU→conv→(+)",
        ),
    ]
}


@dataclass(frozen=True)
class Block:
    name: str
    title: str
    kernels: tuple[int, ...]  # kernel size of each conv in the residual branch
    expansion: int  # unit output channels = expansion × stage width (16/32/64)
    default_downsample: str  # paper-faithful handling of dimension-changing units
    note: str

    @property
    def layers_per_unit(self) -> int:
        return len(self.kernels)


BLOCKS: dict[str, Block] = {
    b.name: b
    for b in [
        Block(
            "basic",
            "basic (3x3, 3x3)",
            (3, 3),
            1,
            "zeropad",
            "depth 6n+2; first ResNet paper's CIFAR nets use zero-padded identity ('option A')",
        ),
        Block(
            "bottleneck",
            "bottleneck (1x1, 3x3, 1x1)",
            (1, 3, 1),
            4,
            "conv",
            "depth 9n+2; 1x1 projection where dimensions grow (authors' resnet-pre-act.lua)",
        ),
        Block(
            "single",
            "1-layer skip (3x3)",
            (3,),
            1,
            "zeropad",
            "depth 3n+2; each shortcut skips one conv (paper Table 3, first row)",
        ),
    ]
}


@dataclass(frozen=True)
class Shortcut:
    name: str
    title: str
    figure: str
    on_shortcut: str  # the factor on the shortcut, as in Table 1
    on_residual: str  # the factor on F
    params: tuple[str, ...]  # RunConfig fields this type reads
    # True: the type brings its own 1x1 conv, which also handles dimension changes.
    replaces_downsample: bool
    describe: Callable[..., str]  # describe(cfg) -> short label
    # The scalar the shortcut path multiplies its signal by at initialisation (Π λ, paper Eq. 5):
    # factor(cfg) -> float, or None where the shortcut is a learned matrix (no scalar).
    factor: Callable[..., float | None] = lambda c: 1.0
    # The shortcut drawn as a layer (a box in the diagrams) rather than a factor:
    # layer(cfg, cout, stride) -> its label, or None for a factor ("× λ").
    layer: Callable[..., str] | None = None
    # Symbols of `on_shortcut` / `on_residual` whose value is a config field ("λ" -> shortcut_scale).
    symbols: tuple[tuple[str, str], ...] = ()
    has_gate: bool = False  # a learned gate g(x) = sigmoid(W_g x + b_g) (Fig. 2(c), (d))
    # Draws from the global RNG while training: a packed network would draw in another order, so
    # a packed seed would not repeat its standalone run (trainers/core/pack_rules.py).
    stochastic: bool = False


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


@lru_cache(maxsize=256)
def _mean_sigmoid_of_normal(bias: float) -> float:
    """E[sigmoid(z + bias)] for z ~ N(0, 1), by Simpson's rule over z in [-12, 12] (error < 1e-9)."""
    n, lo, hi = 2400, -12.0, 12.0
    h = (hi - lo) / n
    total = 0.0
    for i in range(n + 1):
        z = lo + i * h
        w = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += w * _sigmoid(z + bias) * math.exp(-0.5 * z * z)
    return total * h / 3 / math.sqrt(2 * math.pi)


def mean_gate(gate_bias: float, batch_norm: bool) -> float:
    """The mean gate g = sigmoid(W_g x + b_g) of a freshly initialised net, as training starts.

    With BN on the gate conv (the paper's units, `shortcut_bn`), BN in training mode (batch
    statistics) makes W_g x a unit-variance z around 0, so the gate starts at E[sigmoid(z + b_g)],
    z ~ N(0, 1): above sigmoid(b_g) where the sigmoid curves upward (b_g < 0), e.g. 0.0041 rather
    than 0.0025 at b_g = -6, which over ResNet-110's 54 units makes Π (1 - g) 0.80 rather than 0.87.
    Without BN the spread of W_g x depends on the input: this returns sigmoid(b_g), the gate at
    W_g x = 0 (the value evaluation mode gives BN's initial running statistics at that point)."""
    return _mean_sigmoid_of_normal(float(gate_bias)) if batch_norm else _sigmoid(gate_bias)


def _dropout_text(c) -> str:
    return f"dropout p={c.dropout_p:g}" + (" (rescaled)" if c.dropout_rescale else "")


SHORTCUTS: dict[str, Shortcut] = {
    s.name: s
    for s in [
        Shortcut("identity", "identity", "2(a)", "1", "1", (), False, describe=lambda c: "identity"),
        Shortcut(
            "constant",
            "constant scaling",
            "2(b)",
            "λ",
            "μ",
            ("shortcut_scale", "residual_scale"),
            False,
            describe=lambda c: f"constant λ={c.shortcut_scale:g}, F×{c.residual_scale:g}",
            factor=lambda c: c.shortcut_scale,
            symbols=(("λ", "shortcut_scale"), ("μ", "residual_scale")),
        ),
        # gates: h is scaled by 1 - g, g starting at mean_gate (BN in training mode: E[σ(z + b_g)]).
        # shortcut_bn: Fig. 2's caption puts BN after the gate conv as after every weight layer.
        Shortcut(
            "exclusive_gate",
            "exclusive gating",
            "2(c)",
            "1−g(x)",
            "g(x)",
            ("gate_bias", "gate_width", "shortcut_bn"),
            False,
            describe=lambda c: f"exclusive gate b_g={c.gate_bias:g}",
            factor=lambda c: 1.0 - mean_gate(c.gate_bias, c.shortcut_bn is True),
            has_gate=True,
        ),
        Shortcut(
            "shortcut_gate",
            "shortcut-only gating",
            "2(d)",
            "1−g(x)",
            "1",
            ("gate_bias", "gate_width", "shortcut_bn"),
            False,
            describe=lambda c: f"shortcut-only gate b_g={c.gate_bias:g}",
            factor=lambda c: 1.0 - mean_gate(c.gate_bias, c.shortcut_bn is True),
            has_gate=True,
        ),
        Shortcut(
            "conv1x1",
            "1x1 conv shortcut",
            "2(e)",
            "1x1 conv",
            "1",
            ("shortcut_bn",),
            True,
            describe=lambda c: "1x1 conv shortcut",
            factor=lambda c: None,
            layer=lambda c, cout, stride: (
                f"1x1 conv, {cout}"
                + (f", /{stride}" if stride > 1 else "")
                + (" → BN" if c.shortcut_bn is True else "")
            ),
        ),
        # the paper reasons about it as a scale with expectation 1-p (1 when rescaled)
        Shortcut(
            "dropout",
            "dropout shortcut",
            "2(f)",
            "dropout p",
            "1",
            ("dropout_p", "dropout_rescale"),
            False,
            describe=_dropout_text,
            factor=lambda c: 1.0 if c.dropout_rescale else 1.0 - c.dropout_p,
            layer=lambda c, cout, stride: _dropout_text(c),
            stochastic=True,
        ),
    ]
}


@dataclass(frozen=True)
class Param:
    """How the UI asks for a shortcut parameter (a RunConfig field named in `Shortcut.params`)."""

    label: str
    kind: str = "numbers"  # "numbers": comma-separated values; "choice": one of `choices`; "flag"
    default: str = ""  # the values offered first ("numbers")
    choices: tuple = ()
    help: str = ""
    choice_labels: dict = field(default_factory=dict)  # how a "choice" is shown, when not str(v)


PARAMS: dict[str, Param] = {
    "shortcut_scale": Param("λ on the shortcut", default="0.5"),
    "residual_scale": Param("factor on F", default="1"),
    "gate_bias": Param("initial gate bias b_g", default="-6"),
    "gate_width": Param(
        "gate width",
        "choice",
        choices=("channel", "single"),
        help="OPEN in the paper: one gate per channel and pixel, or one gate map per pixel",
    ),
    "dropout_p": Param("dropout ratio p", default="0.5"),
    "dropout_rescale": Param("dropout rescale", "flag"),
    # "auto" = the paper's choice for the ordering (trainers/core/config.py, _resolve_shortcut_bn)
    "shortcut_bn": Param(
        "BN after the shortcut path's 1x1 convs",
        "choice",
        choices=("auto", True, False),
        help="Fig. 2's caption: BN after the gate conv and the 1x1 shortcut conv (auto in "
        "the original orderings); auto leaves it out in pre-activation units",
        choice_labels={"auto": "as in the paper (auto)", True: "yes", False: "no"},
    ),
}
