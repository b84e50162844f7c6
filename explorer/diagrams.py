"""Unit diagrams (paper Fig. 2 and 4) as Graphviz DOT, drawn from the specs that build the models.

Every box comes from `trainers.core.layout.unit_specs(cfg)`, the very list `build_model` turns into
modules, and the shortcut's factors from `trainers.core.registry.SHORTCUTS`; a diagram therefore
cannot disagree with the network it depicts. Pure functions: config in, DOT text out.
"""

from __future__ import annotations

from trainers.core.config import RunConfig
from trainers.core.layout import Op, UnitSpec, unit_specs
from trainers.core.registry import BLOCKS, ORDERINGS, SHORTCUTS

# Colours after the paper's figures: weight layers grey, BN blue, ReLU orange.
STYLE = {
    "conv": 'shape=box, style="rounded,filled", fillcolor="#e6e6e6"',
    "bn": 'shape=box, style="rounded,filled", fillcolor="#cfe2f3"',
    "relu": 'shape=box, style="rounded,filled", fillcolor="#fce5cd"',
}


def representative_config(
    ordering: str = "original", shortcut: str = "identity", block: str = "basic", **params
) -> RunConfig:
    """The smallest net with two units per stage: unit (stage 1, index 1) is a typical unit."""
    depth = 3 * BLOCKS[block].layers_per_unit * 2 + 2
    return RunConfig(ordering=ordering, shortcut=shortcut, block=block, depth=depth, **params)


def typical_unit(cfg: RunConfig, first_of_stage: bool = False) -> UnitSpec:
    """A unit inside a stage (no dimension change), or the first unit of stage 2 (it changes them)."""
    specs = unit_specs(cfg)
    if first_of_stage:
        return next(s for s in specs if s.stage == 1 and s.index == 0)
    return next((s for s in specs if s.stage == 0 and s.index == 1), specs[-1])


# The shortcut path's BN (RunConfig.shortcut_bn, resolved per ordering): shown on the conv's box.
_BN = {True: " → BN", False: ""}


def _q(text: str) -> str:
    return '"' + text.replace('"', r"\"") + '"'


def _op_node(name: str, op: Op) -> str:
    return f"  {name} [label={_q(op.label())}, {STYLE[op.kind]}];"


def _factor_label(text: str, cfg: RunConfig, symbols: tuple[tuple[str, str], ...]) -> str:
    """'λ' -> '× λ=0.5' with the config's value; '1-g(x)' -> '× (1-g(x))'."""
    values = {sym: getattr(cfg, field) for sym, field in symbols}
    if text in values:
        return f"× {text}={values[text]:g}"
    return f"× ({text})" if any(ch in text for ch in "+-−") else f"× {text}"


def unit_dot(cfg: RunConfig, spec: UnitSpec | None = None, *, title: str | None = None) -> str:
    """One residual unit: x_l → [shared pre-act] → split → F | h → (+) → f → x_l+1."""
    spec = spec or typical_unit(cfg)
    entry = SHORTCUTS[spec.shortcut]
    lines = [
        "digraph unit {",
        '  graph [rankdir=TB, nodesep=0.35, ranksep=0.22, fontname="Helvetica", fontsize=12, '
        'labelloc=t' + (f", label={_q(title)}" if title else "") + "];",
        '  node [fontname="Helvetica", fontsize=11, height=0.3, margin="0.12,0.04"];',
        '  edge [arrowsize=0.6, color="#555555"];',
        f'  xin [label={_q(f"x_l  ({spec.cin} ch)")}, shape=plaintext];',
    ]
    prev = _chain(lines, spec.preact, "p", "xin")
    lines.append('  split [shape=point, width=0.06];')
    lines.append(f"  {prev} -> split [arrowhead=none];")
    # residual branch F
    prev_f = _chain(lines, spec.residual, "f", "split")
    if entry.on_residual != "1":
        lines.append(
            f'  fs [label={_q(_factor_label(entry.on_residual, cfg, entry.symbols))}, '
            'shape=ellipse, style=filled, fillcolor="#d9ead3"];'
        )
        lines.append(f"  {prev_f} -> fs;")
        prev_f = "fs"
    # shortcut branch h
    prev_h = "split"
    if spec.downsample in ("zeropad", "conv"):
        text = (
            "subsample + zero-pad channels"
            if spec.downsample == "zeropad"
            else f"1x1 conv, {spec.cout}, /{spec.stride}" + _BN[spec.shortcut_bn]
        )
        lines.append(f'  ds [label={_q(text)}, shape=box, style="dashed,rounded"];')
        lines.append(f"  {prev_h} -> ds;")
        prev_h = "ds"
    if entry.on_shortcut != "1":
        if entry.layer is not None:  # the shortcut is an operation (1x1 conv, dropout): a box
            label, box = entry.layer(cfg, spec.cout, spec.stride), "box"
        else:
            label, box = _factor_label(entry.on_shortcut, cfg, entry.symbols), "ellipse"
        lines.append(f'  hs [label={_q(label)}, shape={box}, style="filled,rounded", fillcolor="#d9ead3"];')
        lines.append(f"  {prev_h} -> hs;")
        prev_h = "hs"
    if entry.has_gate:
        conv = "BN(1x1 conv(x))" if spec.shortcut_bn else "1x1 conv(x)"
        gate = f"gate g(x) =\\nsigmoid({conv}\\n+ b_g), b_g from {cfg.gate_bias:g}"
        lines.append(f'  gate [label="{gate}", shape=box, style="dotted,rounded", fontsize=10];')
        lines.append('  split -> gate [style=dotted];')
        lines.append('  gate -> hs [style=dotted];')
        if entry.on_residual != "1":
            lines.append('  gate -> fs [style=dotted];')
    lines.append('  add [label="+", shape=circle, width=0.3, fixedsize=true, fontsize=14];')
    lines.append(f'  {prev_f} -> add [label=" F", fontsize=10];')
    lines.append(f'  {prev_h} -> add [label=" h", fontsize=10, style=bold];')
    prev = _chain(lines, spec.after_add, "a", "add")
    lines.append(f'  xout [label={_q(f"x_l+1  ({spec.cout} ch)")}, shape=plaintext];')
    lines.append(f"  {prev} -> xout;")
    lines.append("}")
    return "\n".join(lines)


def _chain(lines: list[str], ops, prefix: str, prev: str) -> str:
    """Append one node per op, each fed by the one before; return the last node's name."""
    for i, op in enumerate(ops):
        lines.append(_op_node(f"{prefix}{i}", op))
        lines.append(f"  {prev} -> {prefix}{i};")
        prev = f"{prefix}{i}"
    return prev


def ordering_diagrams(block: str = "basic") -> dict[str, str]:
    """Registry name -> DOT of a typical unit with that ordering and an identity shortcut (Fig. 4)."""
    return {
        name: unit_dot(representative_config(ordering=name, block=block), title=f"({o.figure[-2]}) {o.title}")
        for name, o in ORDERINGS.items()
    }


def shortcut_diagrams(ordering: str = "original", block: str = "basic", **params) -> dict[str, str]:
    """Registry name -> DOT of a typical unit with that shortcut type (Fig. 2)."""
    out = {}
    for name, s in SHORTCUTS.items():
        cfg = representative_config(ordering=ordering, shortcut=name, block=block, **params)
        out[name] = unit_dot(cfg, title=f"({s.figure[-2]}) {s.title}")
    return out
