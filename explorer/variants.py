"""Named variants for teaching (Learn page): each is a set of RunConfig overrides, nothing more.

They name the paper's cases (Table 1, Fig. 2 and 4); the numbers the paper reports for them live
in `trainers.core.presets` only."""

from __future__ import annotations

from trainers.core.config import RunConfig

TEACHING_VARIANTS: dict[str, dict] = {
    "original, identity (Fig. 2a)": {},
    "full pre-activation, identity (Fig. 4e)": {"ordering": "full_preact"},
    "constant scaling λ=0.5 (Fig. 2b)": {"shortcut": "constant", "shortcut_scale": 0.5},
    "exclusive gating b_g=0 (Fig. 2c)": {"shortcut": "exclusive_gate", "gate_bias": 0.0},
    "exclusive gating b_g=-6 (Fig. 2c)": {"shortcut": "exclusive_gate", "gate_bias": -6.0},
    "shortcut-only gating b_g=0 (Fig. 2d)": {"shortcut": "shortcut_gate", "gate_bias": 0.0},
    "1x1 conv shortcut (Fig. 2e)": {"shortcut": "conv1x1"},
    "dropout shortcut p=0.5 (Fig. 2f)": {"shortcut": "dropout", "dropout_p": 0.5},
}
DEFAULT_TEACHING = [
    "original, identity (Fig. 2a)",
    "full pre-activation, identity (Fig. 4e)",
    "constant scaling λ=0.5 (Fig. 2b)",
]


def teaching_config(name: str, depth: int = 110, block: str = "basic") -> RunConfig:
    return RunConfig(depth=depth, block=block, **TEACHING_VARIANTS[name])
